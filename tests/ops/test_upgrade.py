#!/usr/bin/python3
"""Upgrading a gateway without dropping cameras (docs/operations.md "Upgrading").

Gateway A serves three agents and a steady stream of media requests (HTTP GETs in path form
through the frontend, each checked byte for byte). Gateway B starts with --takeover on the same
ports: it joins A's SO_REUSEPORT listeners. A is sent SIGTERM: it stops accepting (connections
still in its accept queue move to B: net.ipv4.tcp_migrate_req=1), GOAWAYs its agents, which
reconnect to the only listener left, B's. Requests that reach B before their agent does wait for
it (takeover_hold_ms); requests that A can no longer serve during its drain are redirected (HTTP
307) to the same address, which B answers. No request may fail, A exits 0, B ends up with every
agent.

ctest runs this in a network namespace of its own (unshare), where it may set
net.ipv4.tcp_migrate_req without touching the host."""

import hashlib
import http.server
import os
import re
import signal
import socket
import socketserver
import threading
import time
import unittest

import opslib
from opslib import wait_until

AGENTS = ["cam-1", "cam-2", "cam-3"]
LOAD_THREADS = 4
BODY = 20_000


def body_for(path):
    """The service's answer to `path`: BODY bytes derived from it (any mix-up shows)."""
    seed = hashlib.sha256(path.encode()).digest()
    return (seed * (BODY // len(seed) + 1))[:BODY]


class BlobHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        data = body_for(self.path)
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


class BlobServer(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(port, path, deadline):
    """GET through the frontend, following 307s; returns (status, body)."""
    host = "127.0.0.1:%d" % port
    for _ in range(5):
        s = socket.create_connection(("127.0.0.1", port), timeout=20)
        try:
            s.sendall(("GET %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (path, host)).encode())
            status, head, rest = opslib_read_head(s, deadline)
            if status == 307:
                m = re.search(rb"\r\nLocation: http://([^/\r]+)(/[^\r]*)\r\n", head)
                host, path = m.group(1).decode(), m.group(2).decode()
                port = int(host.rsplit(":", 1)[1])
                continue
            length = int(re.search(rb"\r\nContent-Length: (\d+)\r\n", head).group(1))
            body = rest
            while len(body) < length:
                d = s.recv(65536)
                if not d:
                    break
                body += d
            return status, body
        finally:
            s.close()
    return 0, b"redirect loop"


def opslib_read_head(s, deadline):
    buf = b""
    while b"\r\n\r\n" not in buf:
        s.settimeout(max(0.1, deadline - time.monotonic()))
        d = s.recv(65536)
        if not d:
            raise ConnectionError("closed before the head: %r" % buf[:200])
        buf += d
    head, rest = buf.split(b"\r\n\r\n", 1)
    return int(head.split(b" ", 2)[1]), head + b"\r\n", rest


class UpgradeTest(unittest.TestCase):
    def setUp(self):
        with open("/proc/sys/net/ipv4/tcp_migrate_req") as f:
            if f.read().strip() != "1":
                self.skipTest("needs net.ipv4.tcp_migrate_req=1 (ctest runs it in a namespace)")
        self.node = opslib.Node(self, "ops-upgrade-")
        self.blobs = BlobServer(("127.0.0.1", 0), BlobHandler)
        threading.Thread(target=self.blobs.serve_forever, daemon=True).start()
        self.addCleanup(self.blobs.shutdown)
        self.agent_port, self.frontend_port = free_port(), free_port()
        self.fixed = {"agent_tls_listen": ["127.0.0.1:%d" % self.agent_port],
                      "frontend_listen": ["127.0.0.1:%d" % self.frontend_port],
                      "drain_reconnect_ms": 200, "reconnect_window_ms": 1000,
                      "drain_timeout_ms": 10000}

    def load(self, stop, results, worker):
        n = 0
        while not stop.is_set():
            agent = AGENTS[n % len(AGENTS)]
            path = "/%s/blob/%d/%d" % (agent, worker, n)
            n += 1
            try:
                status, body = http_get(self.frontend_port, path, time.monotonic() + 30)
                ok = status == 200 and body == body_for(path[len(agent) + 1:])
                results.append((time.monotonic(), ok, "" if ok else "status %d" % status))
            except Exception as e:  # a refused or reset connection is a lost request
                results.append((time.monotonic(), False, repr(e)))

    def test_takeover_under_load_loses_no_request(self):
        a = self.node.start_gateway(**self.fixed)
        services = ["http=127.0.0.1:%d" % self.blobs.server_address[1]]
        agents = [self.node.start_agent(x, services=services) for x in AGENTS]

        stop = threading.Event()
        results = []
        workers = [threading.Thread(target=self.load, args=(stop, results, i), daemon=True)
                   for i in range(LOAD_THREADS)]
        for w in workers:
            w.start()
        wait_until(lambda: sum(1 for r in results if r[1]) >= 20, 15, 0.05, "load through A")

        b_config = self.node.config("b.toml", **self.fixed)
        b = opslib.start_gateway_with_config(self.node.procs, self.node.gw_bin, b_config,
                                             extra=["--takeover"], name="gateway-b")
        self.assertEqual(b.frontend_port, self.frontend_port)  # agent port: once A lets go
        time.sleep(0.5)  # both serve the ports now
        t_term = time.monotonic()
        a.proc.signal(signal.SIGTERM)
        self.assertEqual(a.proc.popen.wait(15), 0, "the old gateway exits 0 once drained")
        wait_until(lambda: sorted(opslib.agent_ids(b)) == AGENTS, 15, 0.1, "every agent on B")
        served_after = lambda: sum(1 for r in results if r[1] and r[0] > t_term + 1)
        wait_until(lambda: served_after() >= 30, 20, 0.05, "load through B")
        stop.set()
        for w in workers:
            w.join(40)

        failed = [r for r in results if not r[1]]
        self.assertEqual(failed, [], "%d of %d requests lost" % (len(failed), len(results)))
        self.assertGreater(len(results), 60)
        for p in agents:
            self.assertIsNone(p.popen.poll(), "agent %s exited" % p.name)
        m = opslib.scrape(b.admin_port)
        self.assertEqual(m.get("camtunnel_agents_connected"), len(AGENTS))
        held = m.get("camtunnel_frontend_held_total", result="arrived") or 0
        timeouts = m.get("camtunnel_frontend_held_total", result="timeout") or 0
        self.assertEqual(timeouts, 0)
        print("requests %d, held for their agent on B %d" % (len(results), held))


if __name__ == "__main__":
    unittest.main()
