#!/usr/bin/python3
"""Data integrity through one tunnel: 100 MiB of random bytes each way, at the same time,
between a client that reaches a raw TCP service behind the C++ agent with
`CONNECT <agent>:<port>` on the gateway's frontend, and that service (the test's own).
Checksums must match in both directions, and a half-close must travel in both directions
without ending the other one: the client's shutdown(SHUT_WR) reaches the service as EOF while
the service keeps sending; the service's shutdown reaches the client as EOF (not a reset).
TLS mode and plain mode."""

import hashlib
import os
import socket
import threading
import time
import unittest

import harness
from harness import Env, TcpService, start_cpp_agent, start_gateway

AGENT = "cam-integrity"
SIZE = 100 * 1024 * 1024
TAIL = 1024 * 1024            # what the service sends only after it has seen the client's EOF
CHUNK = 256 * 1024
TIMEOUT = 120.0


def random_chunks(total):
    left = total
    while left:
        n = min(CHUNK, left)
        yield os.urandom(n)
        left -= n


def send_stream(sock, total, h):
    for chunk in random_chunks(total):
        h.update(chunk)
        sock.sendall(chunk)


def recv_to_eof(sock, h, first=b""):
    """Read until EOF; returns the byte count. A reset raises ConnectionResetError."""
    n = len(first)
    h.update(first)
    while True:
        d = sock.recv(1 << 20)
        if not d:
            return n
        h.update(d)
        n += len(d)


class BulkService:
    """The service: receives to EOF (hashing), sends SIZE - TAIL bytes meanwhile, and the last
    TAIL bytes only after it has seen EOF, then shuts its write side down."""

    def __init__(self):
        self.result = {}
        self.done = threading.Event()
        self.svc = TcpService(self.handle)

    def handle(self, conn):
        conn.settimeout(TIMEOUT)
        r = self.result
        rx_h, tx_h = hashlib.sha256(), hashlib.sha256()
        eof = threading.Event()

        def rx():
            try:
                r["rx_bytes"] = recv_to_eof(conn, rx_h)
                r["rx_sha"] = rx_h.hexdigest()
                r["rx_eof_at"] = time.monotonic()
            except Exception as e:
                r["rx_error"] = repr(e)
            eof.set()
        t = threading.Thread(target=rx, daemon=True)
        t.start()
        try:
            send_stream(conn, SIZE - TAIL, tx_h)
            if not eof.wait(TIMEOUT):
                r["tx_error"] = "no EOF from the client"
                return
            r["tail_sent_after_eof"] = "rx_eof_at" in r
            send_stream(conn, TAIL, tx_h)       # still writable after the peer's half-close
            r["tx_sha"] = tx_h.hexdigest()
            r["tx_bytes"] = SIZE
            conn.shutdown(socket.SHUT_WR)
        except Exception as e:
            r["tx_error"] = repr(e)
        finally:
            t.join(TIMEOUT)
            self.done.set()


class ReverseHalfCloseService:
    """The service half-closes first: sends a message, shuts down its write side, then keeps
    reading what the client sends after it has seen EOF."""

    MESSAGE = b"service says goodbye first\n" * 1000

    def __init__(self):
        self.result = {}
        self.done = threading.Event()
        self.svc = TcpService(self.handle)

    def handle(self, conn):
        conn.settimeout(30)
        try:
            conn.sendall(self.MESSAGE)
            conn.shutdown(socket.SHUT_WR)
            buf = b""
            while True:
                d = conn.recv(65536)
                if not d:
                    break
                buf += d
            self.result["received"] = buf
        except Exception as e:
            self.result["error"] = repr(e)
        finally:
            self.done.set()


class _IntegrityBase:
    TLS = True

    @classmethod
    def setUpClass(cls):
        cls.env = Env("integrity-%s" % ("tls" if cls.TLS else "plain"))
        cls.services = []
        try:
            cls.bulk = BulkService()
            cls.reverse = ReverseHalfCloseService()
            # No spares: the test counts the gateway's connections before and after a tunnel.
            cls.gw = start_gateway(cls.env.procs, cls.env.path("gw"), tls=cls.TLS,
                                   plain=not cls.TLS, extra=["--spare_data_connections=0"])
            cls.agent = start_cpp_agent(
                cls.env.procs, cls.gw, AGENT,
                ["bulk=127.0.0.1:%d" % cls.bulk.svc.port,
                 "reverse=127.0.0.1:%d" % cls.reverse.svc.port])
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            cls.env.close()
        finally:
            for s in (getattr(cls, "bulk", None), getattr(cls, "reverse", None)):
                if s is not None:
                    s.svc.close()

    def connect_tunnel(self, port):
        s = socket.create_connection(("127.0.0.1", self.gw.frontend_port), timeout=TIMEOUT)
        s.sendall(b"CONNECT %s:%d HTTP/1.1\r\nHost: %s:%d\r\n\r\n"
                  % (AGENT.encode(), port, AGENT.encode(), port))
        status, head, rest = harness.read_response_head(s, time.monotonic() + 15)
        self.assertEqual(status, 200, head)
        return s, rest

    def test_100mib_each_way_with_half_close(self):
        m0 = self.gw.metrics()
        conns0 = m0.get("camtunnel_shard_connections")
        s, first = self.connect_tunnel(self.bulk.svc.port)
        res = {}
        tx_h, rx_h = hashlib.sha256(), hashlib.sha256()

        def sender():
            try:
                send_stream(s, SIZE, tx_h)
                s.shutdown(socket.SHUT_WR)
                res["tx_done_at"] = time.monotonic()
            except Exception as e:
                res["tx_error"] = repr(e)
        t0 = time.monotonic()
        t = threading.Thread(target=sender, daemon=True)
        t.start()
        try:
            res["rx_bytes"] = recv_to_eof(s, rx_h, first)   # EOF, not a reset
        except Exception as e:
            res["rx_error"] = repr(e)
        t.join(TIMEOUT)
        elapsed = time.monotonic() - t0
        s.close()
        self.assertTrue(self.bulk.done.wait(30), "service did not finish")
        svc = self.bulk.result
        self.assertNotIn("tx_error", res)
        self.assertNotIn("rx_error", res)
        self.assertNotIn("tx_error", svc)
        self.assertNotIn("rx_error", svc)
        # client -> service
        self.assertEqual(svc["rx_bytes"], SIZE)
        self.assertEqual(svc["rx_sha"], tx_h.hexdigest())
        # service -> client, including the TAIL sent after the service saw the client's EOF
        self.assertTrue(svc["tail_sent_after_eof"])
        self.assertEqual(res["rx_bytes"], SIZE)
        self.assertEqual(rx_h.hexdigest(), svc["tx_sha"])
        self.assertEqual(self.bulk.svc.accepted, 1)
        # the gateway relayed exactly these bytes and let go of the tunnel
        self.gw.wait_metric("camtunnel_tunnels_open", lambda v: v == 0)
        self.gw.wait_metric("camtunnel_shard_connections", lambda v: v == conns0)
        m1 = self.gw.metrics()
        for d in ("to_camera", "to_client"):
            grew = (m1.get("camtunnel_relay_bytes_total", direction=d)
                    - m0.get("camtunnel_relay_bytes_total", direction=d))
            self.assertEqual(grew, SIZE, d)
        self.assertEqual(m1.get("camtunnel_tunnels_opened_total", result="ok")
                         - m0.get("camtunnel_tunnels_opened_total", result="ok"), 1)
        print("\n  %s: 2 x 100 MiB in %.2f s" % ("tls" if self.TLS else "plain", elapsed),
              end=" ", flush=True)

    def test_service_half_closes_first(self):
        s, first = self.connect_tunnel(self.reverse.svc.port)
        with s:
            s.settimeout(30)
            got = first
            while True:
                d = s.recv(65536)        # EOF (b""), not a reset
                if not d:
                    break
                got += d
            self.assertEqual(got, ReverseHalfCloseService.MESSAGE)
            # the client's direction is still open after it has seen EOF
            after = b"client keeps talking after EOF\n" * 5000
            s.sendall(after)
            s.shutdown(socket.SHUT_WR)
            self.assertTrue(self.reverse.done.wait(30))
            self.assertNotIn("error", self.reverse.result)
            self.assertEqual(self.reverse.result["received"], after)
            self.assertEqual(harness.wait_closed(s, 10), b"")
        self.gw.wait_metric("camtunnel_tunnels_open", lambda v: v == 0)


class IntegrityTLS(_IntegrityBase, unittest.TestCase):
    TLS = True


class IntegrityPlain(_IntegrityBase, unittest.TestCase):
    TLS = False


if __name__ == "__main__":
    unittest.main(verbosity=2)
