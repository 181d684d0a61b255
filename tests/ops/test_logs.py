#!/usr/bin/python3
"""The gateway's log (docs/operations.md "Logs"): one key=value line per event with a level;
a syslog priority prefix instead of the timestamp when stderr is the journal (JOURNAL_STREAM);
a per-event rate limit that counts what it drops; and no secret, ever.
"""

import os
import re
import signal
import socket
import unittest

import opslib
from opslib import wait_until

LINE = re.compile(r'^ts=\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z level=(debug|info|warning|error) '
                  r'event=[a-z_]+( [a-z_]+=("(?:[^"\\]|\\.)*"|[^ "]+))*$')


class LogsTest(unittest.TestCase):
    def setUp(self):
        self.node = opslib.Node(self, "ops-logs-")

    def lines(self, proc):
        with open(proc.err_path) as f:
            return f.read().splitlines()

    def test_every_line_is_structured(self):
        gw = self.node.start_gateway(log_level="debug")
        self.node.start_agent("cam-1")
        opslib.connect_tunnel(gw.frontend_port, "nobody:554")
        opslib.sighup(gw.proc)
        lines = self.lines(gw.proc)
        self.assertGreaterEqual(len(lines), 3)
        for line in lines:
            self.assertRegex(line, LINE)
        events = [e["event"] for e in opslib.log_events(gw.proc)]
        # Start-up facts (the kernel TLS probe), then ready.
        self.assertEqual(events[:2], ["ktls_probe", "ready"])
        self.assertIn("agent_connected", events)
        self.assertIn("config_reloaded", events)

    def test_journal_priority_prefix(self):
        # Processes names the first process's stderr file logs/gateway.0.err and truncates it in
        # place: create it first, so JOURNAL_STREAM can name its device and inode.
        err = os.path.join(self.node.dir, "logs", "gateway.0.err")
        open(err, "w").close()
        st = os.stat(err)
        gw = self.node.start_gateway(env={"JOURNAL_STREAM": "%d:%d" % (st.st_dev, st.st_ino)})
        self.assertEqual(gw.proc.err_path, err)
        self.node.start_agent("cam-1")
        opslib.connect_tunnel(gw.frontend_port, "cam-1:1")  # not exposed: an info line or none
        gw.proc.signal(signal.SIGTERM)
        self.assertEqual(gw.proc.popen.wait(5), 0)
        lines = self.lines(gw.proc)
        self.assertTrue(lines)
        for line in lines:
            self.assertRegex(line, r"^<[3467]>level=(debug|info|warning|error) event=[a-z_]+")
        self.assertTrue(any(line.startswith("<6>level=info event=ready ") for line in lines))

    def test_a_flood_of_bad_handshakes_is_rate_limited_and_counted(self):
        gw = self.node.start_gateway(agent_plain_listen=["127.0.0.1:0"], allow_plain_with_tls=True,
                                     log_burst=5)
        for _ in range(60):
            with socket.create_connection(("127.0.0.1", gw.plain_port), timeout=5) as s:
                s.sendall(b"NOT A REQUEST\r\n\r\n")
                self.assertIn(b" 400 ", s.recv(4096))
        wait_until(lambda: gw.scrape().get("camtunnel_agent_connections_total", kind="control",
                                           result="bad_request") == 60, 5, 0.05, "60 counted")
        refused = opslib.log_events(gw.proc, "agent_refused")
        # 5 per 10 s window: one window unless this machine took over 10 s for the 60.
        self.assertIn(len(refused), (5, 10))
        self.assertEqual(refused[0]["status"], "400")
        self.assertEqual(gw.scrape().get("camtunnel_log_lines_suppressed_total"),
                         60 - len(refused))

    def test_no_secret_in_the_log(self):
        admin_token, admin_path = opslib.token_file(self.node.dir, "admin.token")
        front_token, front_path = opslib.token_file(self.node.dir, "frontend.token")
        gw = self.node.start_gateway(log_level="debug", admin_token_file=admin_path,
                                     frontend_token_file=front_path, token=admin_token)
        agent = self.node.start_agent("cam-1", wait=False)
        wait_until(lambda: opslib.http("GET", gw.url("/api/v1/agents/cam-1"),
                                       token=admin_token)[0] == 200, 10, 0.05, "cam-1")
        # Wrong tokens and right ones, a reload with a broken keys file, a drain.
        opslib.http("GET", gw.url("/metrics"), token="z" * 32)
        head = ("CONNECT cam-1:%d HTTP/1.1\r\nHost: x\r\nProxy-Authorization: Bearer %s\r\n\r\n"
                % (self.node.echo.port, front_token))
        opslib.frontend_head(gw.frontend_port, head.encode())
        with open(self.node.keys) as f:
            streamer_key = f.read().split()[1]
        with open(self.node.keys, "w") as f:
            f.write("k1 %s\n" % streamer_key[:-2])
        opslib.sighup(gw.proc, expect_ok=False)
        with open(self.node.path("cam-1.key")) as f:
            agent_key = f.read().strip()
        gw.proc.signal(signal.SIGTERM)
        self.assertEqual(gw.proc.popen.wait(5), 0)
        with open(gw.proc.err_path) as f:
            log = f.read()
        self.assertIn("event=config_reload_failed", log)
        for secret in (admin_token, front_token, "z" * 32, streamer_key, streamer_key[:-2],
                       agent_key):
            self.assertNotIn(secret, log)
        with open(agent.err_path) as f:
            self.assertNotIn(agent_key, f.read())


if __name__ == "__main__":
    unittest.main(verbosity=2)
