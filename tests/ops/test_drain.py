#!/usr/bin/python3
"""Draining a gateway (docs/operations.md "Draining"): SIGTERM and POST /api/v1/drain stop
accepting, turn /readyz to 503, send GOAWAY with the reconnect hint to every agent, and let open
tunnels finish up to drain_timeout_ms; SIGTERM then exits 0, the admin drain stays up, not ready.
"""

import json
import os
import signal
import re
import socket
import time
import unittest

import opslib
from opslib import wait_until

HINT_MS = 1500
WINDOW_MS = 2000


class DrainTest(unittest.TestCase):
    def setUp(self):
        self.node = opslib.Node(self, "ops-drain-")

    def start(self, drain_timeout_ms=20000):
        self.gw = self.node.start_gateway(drain_timeout_ms=drain_timeout_ms,
                                          drain_reconnect_ms=HINT_MS,
                                          reconnect_window_ms=WINDOW_MS)
        self.agent = self.node.start_agent("cam-1")

    def open_tunnel(self):
        s = socket.create_connection(("127.0.0.1", self.gw.frontend_port), timeout=10)
        self.addCleanup(s.close)
        s.sendall(b"CONNECT cam-1:%d HTTP/1.1\r\nHost: x\r\n\r\n" % self.node.echo.port)
        self.assertIn(b" 200 ", s.recv(4096))
        return s

    def echo(self, s, data):
        s.sendall(data)
        got = b""
        while len(got) < len(data):
            d = s.recv(262144)
            if not d:
                break
            got += d
        return got

    def readyz(self):
        return opslib.http("GET", self.gw.url("/readyz"))

    def assert_agent_got_goaway(self):
        """The hint is the least delay plus the agent's own share of the reconnect window, so a
        draining node's fleet does not come back all at once."""
        pattern = re.compile(r"GOAWAY reason=gateway draining reconnect_after_ms=(\d+)")

        def hint():
            with open(self.agent.err_path, encoding="utf-8", errors="replace") as f:
                m = pattern.search(f.read())
            return int(m.group(1)) if m else None
        wait_until(lambda: hint() is not None, 30, 0.05, "GOAWAY with the reconnect hint")
        self.assertGreaterEqual(hint(), HINT_MS)
        self.assertLessEqual(hint(), HINT_MS + WINDOW_MS)

    def assert_refuses_new_media(self):
        with self.assertRaises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", self.gw.frontend_port), timeout=2).close()

    def wait_exit(self, timeout):
        return self.gw.proc.popen.wait(timeout)

    def test_sigterm_lets_a_busy_tunnel_finish_with_every_byte(self):
        self.start()
        s = self.open_tunnel()
        first, second = os.urandom(300_000), os.urandom(300_000)
        self.assertEqual(self.echo(s, first), first)

        self.gw.proc.signal(signal.SIGTERM)
        wait_until(lambda: self.readyz()[0] == 503, 30, 0.05, "/readyz 503 while draining")
        self.assertEqual(self.readyz(), (503, b"draining\n"))
        self.assertEqual(opslib.http("GET", self.gw.url("/healthz"))[0], 200)
        self.assert_agent_got_goaway()
        self.assert_refuses_new_media()
        self.assertEqual(self.gw.scrape().get("camtunnel_draining"), 1)

        # The tunnel still carries data, both ways, to the last byte.
        self.assertEqual(self.echo(s, second), second)
        time.sleep(0.3)
        self.assertIsNone(self.gw.proc.popen.poll(), "the gateway left before the tunnel ended")
        s.close()
        self.assertEqual(self.wait_exit(30), 0)
        agents, tunnels, result, _ = opslib.drain_summary(self.gw.proc)
        self.assertEqual((agents, tunnels, result), (1, 1, "idle"))

    def test_sigterm_without_tunnels_exits_at_once(self):
        self.start()
        t0 = time.monotonic()
        self.gw.proc.signal(signal.SIGTERM)
        self.assertEqual(self.wait_exit(30), 0)
        self.assertLess(time.monotonic() - t0, 15.0)  # well short of the 20 s drain timeout
        self.assert_agent_got_goaway()

    def test_deadline_cuts_a_tunnel_that_does_not_end(self):
        self.start(drain_timeout_ms=1000)
        s = self.open_tunnel()
        t0 = time.monotonic()
        self.gw.proc.signal(signal.SIGTERM)
        self.assertEqual(self.wait_exit(30), 0)
        self.assertGreaterEqual(time.monotonic() - t0, 0.9)
        self.assertLess(time.monotonic() - t0, 25.0)  # the deadline cut it: bounds a hang
        s.settimeout(5)
        try:
            self.assertEqual(s.recv(10), b"")
        except ConnectionResetError:
            pass
        _, _, result, cut = opslib.drain_summary(self.gw.proc)
        self.assertEqual((result, cut), ("deadline", 1))

    def test_admin_drain_stays_up_not_ready(self):
        self.start()
        s = self.open_tunnel()
        status, body = opslib.http("POST", self.gw.url("/api/v1/drain"))
        self.assertEqual(status, 202)
        self.assertEqual(json.loads(body)["draining"], True)
        self.assertEqual(self.readyz(), (503, b"draining\n"))
        self.assert_agent_got_goaway()
        self.assert_refuses_new_media()
        self.assertEqual(self.echo(s, b"still here"), b"still here")
        s.close()

        def drained():
            st, b = opslib.http("GET", self.gw.url("/api/v1/drain"))
            return st == 200 and json.loads(b)["drained"]
        wait_until(drained, 30, 0.05, "drained")
        time.sleep(0.5)
        self.assertTrue(self.gw.proc.alive(), "an admin drain keeps the process up")
        self.assertEqual(self.readyz()[0], 503)
        self.assertEqual(opslib.http("POST", self.gw.url("/api/v1/drain"))[0], 202)  # idempotent
        self.assertEqual(opslib.http("DELETE", self.gw.url("/api/v1/drain"))[0], 405)
        # SIGTERM after an admin drain exits at once.
        self.gw.proc.signal(signal.SIGTERM)
        self.assertEqual(self.wait_exit(30), 0)


if __name__ == "__main__":
    unittest.main(verbosity=2)
