#!/usr/bin/python3
"""A media server that stops reading must not make the gateway buffer the camera's stream.

Four tunnels (CONNECT through the frontend, TLS agent, two shards) to a service that sends as
fast as it can, forever, a stream whose every byte is known (byte at offset o is o % 251). The
clients read nothing for a while: the service's sends must stall (backpressure all the way from
the client's socket through the gateway and the agent to the service), and the gateway's memory
must stay flat while it does. Then the clients read again: the stream resumes, every byte in
order."""

import os
import socket
import threading
import time
import unittest

import harness
from harness import Env, TcpService, start_cpp_agent, start_gateway

AGENT = "cam-slow-consumer"
TUNNELS = 4
PERIOD = 251
CHUNK = 64 * 1024
PATTERN = bytes(i % PERIOD for i in range(PERIOD + CHUNK))
STALL_S = 3.0
# What the gateway may grow by with every tunnel stalled: each relay queues at most 256 KiB
# before it pauses its source (runtime::Stream::kHighWatermark), plus TLS records. Without
# backpressure the service would push gigabytes into it during the stall.
MAX_RSS_GROWTH = 8 * 1024 * 1024


def sanitizer_build():
    """AddressSanitizer keeps freed memory in quarantine: RSS says nothing there."""
    cache = os.path.join(os.environ.get("CAMTUNNEL_BUILD_DIR", ""), "CMakeCache.txt")
    try:
        with open(cache) as f:
            return "CAMTUNNEL_SANITIZE:BOOL=ON" in f.read()
    except OSError:
        return False


def rss_bytes(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


class EndlessService:
    """Sends the known stream until the connection fails; counts what it handed to the kernel."""

    def __init__(self):
        self.sent = {}  # connection number -> bytes sent, live connections only
        self.accepted = 0
        self.counted_from = 0  # totals() counts connections from this number on
        self.lock = threading.Lock()
        self.svc = TcpService(self.handle)

    def handle(self, conn):
        with self.lock:
            key = self.accepted
            self.accepted += 1
        offset = 0
        conn.settimeout(60)
        try:
            while True:
                start = offset % PERIOD
                n = conn.send(PATTERN[start:start + CHUNK])
                offset += n
                with self.lock:
                    self.sent[key] = offset
        except OSError:
            pass
        finally:
            with self.lock:
                self.sent.pop(key, None)  # only live connections count

    def totals(self):
        with self.lock:
            return sorted(v for k, v in self.sent.items() if k >= self.counted_from)

    def count_from_now(self):
        with self.lock:
            self.counted_from = self.accepted


class SlowConsumer(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.env = Env("slow-consumer")
        try:
            cls.service = EndlessService()
            cls.gw = start_gateway(cls.env.procs, cls.env.path("gw"), extra=["--shards=2"])
            start_cpp_agent(cls.env.procs, cls.gw, AGENT,
                            ["endless=127.0.0.1:%d" % cls.service.svc.port])
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            cls.env.close()
        finally:
            if getattr(cls, "service", None) is not None:
                cls.service.svc.close()

    def open_tunnel(self):
        s = socket.create_connection(("127.0.0.1", self.gw.frontend_port), timeout=30)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        s.sendall(b"CONNECT %s:endless HTTP/1.1\r\nHost: x\r\n\r\n" % AGENT.encode())
        status, head, rest = harness.read_response_head(s, time.monotonic() + 15)
        self.assertEqual(status, 200, head)
        return s, rest

    def read_checked(self, sock, offset, first, seconds):
        """Reads for `seconds`; every byte must be the stream's next. Returns the new offset."""
        data = first
        deadline = time.monotonic() + seconds
        sock.settimeout(1)
        while True:
            while data:
                start = offset % PERIOD
                n = min(len(data), CHUNK)
                self.assertEqual(data[:n], PATTERN[start:start + n], "byte %d" % offset)
                offset += n
                data = data[n:]
            if time.monotonic() >= deadline:
                return offset
            try:
                data = sock.recv(1 << 20)
            except socket.timeout:
                continue
            self.assertTrue(data, "EOF at byte %d" % offset)

    def test_stalled_clients_stall_the_camera_not_the_gateways_memory(self):
        pid = self.gw.proc.pid
        # Warm up: one tunnel read at full speed cycles the home shard's whole provided-buffer
        # ring, whose pages count in RSS once touched (a fixed 16 MiB per shard, not growth).
        s, first = self.open_tunnel()
        self.read_checked(s, 0, first, 1.5)
        s.close()
        self.gw.wait_metric("camtunnel_tunnels_open", lambda v: v == 0, timeout=15)
        self.service.count_from_now()  # the warm-up connection may take a while to end
        rss_before = rss_bytes(pid)
        tunnels = [self.open_tunnel() for _ in range(TUNNELS)]
        deadline = time.monotonic() + 15
        while len(self.service.totals()) < TUNNELS and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertEqual(len(self.service.totals()), TUNNELS)

        time.sleep(STALL_S)
        stalled = self.service.totals()
        time.sleep(1.0)
        later = self.service.totals()
        rss_stalled = rss_bytes(pid)
        # Backpressure reached the service: nothing more leaves it while nobody reads (a late
        # socket-buffer autotune may let a little through; a flowing tunnel moves ~1 GB/s).
        self.assertLess(sum(later) - sum(stalled), 1024 * 1024,
                        "the service kept sending into stalled tunnels: %s then %s"
                        % (stalled, later))
        # What it did send sits in bounded socket and relay buffers, not in the gateway.
        if not sanitizer_build():
            self.assertLess(rss_stalled - rss_before, MAX_RSS_GROWTH,
                            "gateway grew %d bytes with %s bytes sent into stalled tunnels"
                            % (rss_stalled - rss_before, stalled))
        self.assertEqual(self.gw.metrics().get("camtunnel_tunnels_open"), TUNNELS)

        # The clients read again: every byte arrives, in order, and the stream goes on.
        for s, first in tunnels:
            got = self.read_checked(s, 0, first, 1.0)
            self.assertGreater(got, 1024 * 1024)
        self.assertGreater(sum(self.service.totals()), sum(stalled))
        for s, _ in tunnels:
            s.close()
        self.gw.wait_metric("camtunnel_tunnels_open", lambda v: v == 0, timeout=15)


if __name__ == "__main__":
    unittest.main()
