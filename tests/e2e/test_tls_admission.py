#!/usr/bin/python3
"""Admission of TLS agents at scale, seen from outside the gateway:

- handshake pacing: a burst of connections on the TLS agent port is admitted at
  agent_handshakes_per_second (the rest wait in the kernel's backlog, none is refused), and the
  pauses are counted in camtunnel_agent_accept_paced_total;
- session tickets: with a ticket keys file, a client resumes its TLS session on a restarted
  gateway (the restart storm costs a resumption, not a full handshake), a rotated key still
  resumes old tickets, and a gateway with other keys does not resume them;
- the kTLS probe's answer is exported (camtunnel_ktls_available), TLS works either way.
"""

import os
import signal
import socket
import ssl
import subprocess
import threading
import time
import unittest

import harness
from harness import Env, start_gateway


def tls_client_context():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE   # the gateway's identity is not what is tested here
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    return ctx


CLIENT_CONTEXT = tls_client_context()


def tls_session(port, session=None, timeout=15.0):
    """One TLS connection to the agent port: handshake, a request the gateway refuses (so its
    answer carries the session tickets to us), read to the end. Returns (session, reused)."""
    ctx = CLIENT_CONTEXT   # Python resumes a session only on the context that made it
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as raw:
        with ctx.wrap_socket(raw, session=session) as s:
            s.sendall(b"GET /camtunnel/v1/nothing HTTP/1.1\r\nHost: x\r\n\r\n")
            try:
                while s.recv(4096):
                    pass
            except (ssl.SSLError, OSError):
                pass
            return s.session, s.session_reused


class HandshakePacingTest(unittest.TestCase):

    def setUp(self):
        self.env = Env("pacing")
        # The budget is per shard (each shard's listener paces its own accepts): one shard here,
        # so the whole process admits exactly that rate.
        self.gw = start_gateway(self.env.procs, self.env.path("gw"), extra=[
            "--agent_handshakes_per_second=20", "--agent_handshake_burst=2", "--shards=1"])

    def tearDown(self):
        self.env.close()

    def test_burst_is_admitted_at_the_budget_and_none_refused(self):
        n = 24
        done = [None] * n
        start = time.monotonic()

        def one(i):
            try:
                tls_session(self.gw.tls_port, timeout=20)
                done[i] = time.monotonic() - start
            except OSError as e:
                done[i] = e

        threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        errors = [d for d in done if not isinstance(d, float)]
        self.assertEqual(errors, [], "every connection is admitted in the end, none refused")
        times = sorted(done)
        # 2 saved up, then one every 50 ms: about a dozen in the first half second, the last
        # after about a second (a loaded machine only makes it slower).
        self.assertLessEqual(sum(1 for t in times if t <= 0.5), 14, times)
        self.assertGreaterEqual(times[-1], 0.9, times)
        m = self.gw.metrics()
        self.assertGreater(m.get("camtunnel_agent_accept_paced_total"), 0)
        self.assertEqual(m.get("camtunnel_agent_connections_total", kind="control",
                               result="busy"), 0.0)


class SessionTicketTest(unittest.TestCase):

    def setUp(self):
        self.env = Env("tickets")
        self.keys = self.env.path("ticket.keys")

    def tearDown(self):
        self.env.close()

    def start(self, name, keys_file):
        return start_gateway(self.env.procs, self.env.path(name), name=name,
                             extra=["--ticket_keys=%s" % keys_file])

    def test_tickets_resume_after_a_restart_and_one_rotation(self):
        gw = self.start("gw1", self.keys)
        self.assertTrue(os.path.exists(self.keys), "the keys file is created on first start")
        self.assertEqual(os.stat(self.keys).st_mode & 0o777, 0o600)
        session, reused = tls_session(gw.tls_port)
        self.assertFalse(reused)
        self.assertEqual(tls_session(gw.tls_port, session)[1], True, "same process")
        self.assertEqual(gw.proc.stop(), 0)
        gw2 = self.start("gw2", self.keys)
        self.assertTrue(tls_session(gw2.tls_port, session)[1], "resumed after the restart")
        # Rotation: a new current key; the old one stays as previous and still resumes.
        r = subprocess.run([harness.gateway_binary(), "rotate-ticket-keys", self.keys],
                           capture_output=True, text=True, timeout=10)
        self.assertEqual(r.returncode, 0, r.stderr)
        gw2.proc.signal(signal.SIGHUP)
        gw2.wait_metric("camtunnel_config_reloads_total", lambda v: v == 1, 10, result="ok")
        self.assertTrue(tls_session(gw2.tls_port, session)[1], "previous key still resumes")
        # A gateway with keys of its own cannot open these tickets: a full handshake.
        gw3 = self.start("gw3", self.env.path("other.keys"))
        self.assertFalse(tls_session(gw3.tls_port, session)[1])

    def test_ktls_probe_is_exported(self):
        gw = self.start("gw", self.keys)
        with open("/proc/sys/net/ipv4/tcp_available_ulp") as f:
            listed = "tls" in f.read().split()
        self.assertEqual(gw.metrics().get("camtunnel_ktls_available"), 1.0 if listed else 0.0)


if __name__ == "__main__":
    unittest.main(verbosity=2)
