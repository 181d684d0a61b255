#!/usr/bin/python3
"""The gateway's TOML configuration (docs/configuration.md): --check_config explains errors with
file, line and key and exits non-zero; a gateway runs from the file alone; command-line flags
override the file; SIGHUP reloads live options (a frontend token, the log level) without
dropping a tunnel that is carrying data, keeps the running configuration when the new one is
bad, and says which changes need a restart.
"""

import os
import re
import socket
import threading
import unittest

import opslib
from opslib import wait_until


class CheckConfigTest(unittest.TestCase):
    def setUp(self):
        self.node = opslib.Node(self, "ops-config-")

    def check(self, text, *flags):
        path = self.node.path("check.toml")
        with open(path, "w") as f:
            f.write(text)
        r = opslib.run([self.node.gw_bin, "--config", path, "--check_config"] + list(flags))
        return r.returncode, r.stdout + r.stderr, path

    def base(self):
        return "".join("%s = %s\n" % (k, opslib.toml_value(v))
                       for k, v in self.node.base_options().items())

    def test_valid_file_passes(self):
        rc, out, _ = self.check(self.base() + "open_timeout_ms = 3000\nlog_level = \"debug\"\n")
        self.assertEqual((rc, out.strip()), (0, "camtunnel-gateway: configuration OK"))

    def test_errors_name_file_line_and_key(self):
        base = self.base()
        line = base.count("\n") + 1
        cases = {
            "open_timeout_ms = \"soon\"\n": r":%d:\d+: open_timeout_ms: expected an integer" % line,
            "open_timeout_ms = 0\n": r":%d:\d+: open_timeout_ms: out of range: 0" % line,
            "heartbeat_misses = 1.5\n": r":%d:\d+: heartbeat_misses: expected an integer" % line,
            "frontend_alow = [\"10.0.0.0/8\"]\n": r":%d:\d+: frontend_alow: unknown key" % line,
            "allow_plain_with_tls = \"yes\"\n":
                r":%d:\d+: allow_plain_with_tls: expected true or false" % line,
            "frontend_allow = [1]\n": r":%d:\d+: frontend_allow: expected an array of strings"
                                      % line,
            "host_suffix = \n": r":\d+:\d+: ",  # TOML syntax error
        }
        for extra, want in cases.items():
            rc, out, path = self.check(base + extra)
            self.assertEqual(rc, 2, (extra, out))
            self.assertRegex(out, "configuration error: " + re.escape(path) + want, extra)

    def test_cross_option_rules(self):
        base = self.base()
        cases = {
            "frontend_allow = [\"10.0.0.0/33\"]\n": "frontend_allow: bad prefix length",
            "frontend_allow = [\"ten.0.0.0/8\"]\n": "is not an address or CIDR",
            "log_level = \"loud\"\n": "log_level: 'loud' is not debug",
            "admin_token_file = \"/nonexistent/token\"\n": "admin_token_file: cannot read",
        }
        for extra, want in cases.items():
            rc, out, _ = self.check(base + extra)
            self.assertEqual(rc, 2, (extra, out))
            self.assertIn(want, out, extra)
        # A short token is refused, and its content is never echoed.
        short = self.node.path("short.token")
        with open(short, "w") as f:
            f.write("s3cr3t\n")
        rc, out, _ = self.check(base + "frontend_token_file = %s\n" % opslib.toml_value(short))
        self.assertEqual(rc, 2, out)
        self.assertIn("at least 16 characters", out)
        self.assertNotIn("s3cr3t", out)

    def test_listeners_beyond_loopback_need_their_guards(self):
        base = self.base()
        token, token_path = opslib.token_file(self.node.dir)
        # Checked without binding: --check_config never opens a socket.
        rc, out, _ = self.check(base, "--frontend_listen=0.0.0.0:8554")
        self.assertEqual(rc, 2)
        self.assertIn("frontend_listen 0.0.0.0:8554 is beyond loopback: set frontend_allow", out)
        rc, out, _ = self.check(base, "--frontend_listen=[::]:8554",
                                "--frontend_allow=10.0.0.0/8")
        self.assertEqual(rc, 2)
        self.assertIn("set frontend_token_file", out)
        rc, out, _ = self.check(base, "--frontend_listen=192.0.2.1:8554",
                                "--frontend_allow=10.0.0.0/8,2001:db8::/32",
                                "--frontend_token_file=" + token_path)
        self.assertEqual(rc, 0, out)
        self.assertNotIn(token, out)
        # 127.0.0.0/8 and [::1] are loopback: no guard needed.
        rc, out, _ = self.check(base, "--frontend_listen=127.0.0.2:8554,[::1]:8554")
        self.assertEqual(rc, 0, out)
        rc, out, _ = self.check(base, "--admin_listen=0.0.0.0:9310")
        self.assertEqual(rc, 2)
        self.assertIn("admin_listen 0.0.0.0:9310 is beyond loopback: set admin_token_file", out)

    def test_unreadable_files_are_reported(self):
        rc, out, _ = self.check(self.base().replace(self.node.keys, "/nonexistent/keys"))
        self.assertEqual(rc, 2)
        self.assertIn("streamer_keys", out)
        rc, out, _ = self.check(self.base().replace(self.node.cert, self.node.keys))
        self.assertEqual(rc, 2)
        self.assertIn("cert/key", out)


class ConfigFileServeTest(unittest.TestCase):
    def setUp(self):
        self.node = opslib.Node(self, "ops-config-")

    def test_serves_from_the_file_and_flags_override_it(self):
        # The file asks for errors only; the flag says info: the info "ready" event appears.
        gw = self.node.start_gateway(extra=["--log_level=info"], log_level="error",
                                     open_timeout_ms=3000)
        self.assertEqual(opslib.http("GET", gw.url("/readyz"))[0], 200)
        wait_until(lambda: opslib.log_events(gw.proc, "ready"), 5, 0.05, "ready event")
        self.node.start_agent("cam-1")
        self.assertEqual(opslib.log_events(gw.proc, "agent_connected")[0]["agent"], "cam-1")

    def test_file_alone_quiet_log_level(self):
        gw = self.node.start_gateway(log_level="error")
        self.node.start_agent("cam-1")
        self.assertEqual(opslib.log_events(gw.proc, "agent_connected"), [])


class ReloadTest(unittest.TestCase):
    def setUp(self):
        self.node = opslib.Node(self, "ops-reload-")
        self.gw = self.node.start_gateway()
        self.node.start_agent("cam-1")
        self.target = "cam-1:%d" % self.node.echo.port

    def connect_status(self, token=None):
        head = "CONNECT %s HTTP/1.1\r\nHost: %s\r\n" % (self.target, self.target)
        if token:
            head += "Proxy-Authorization: Bearer %s\r\n" % token
        return opslib.frontend_head(self.gw.frontend_port, (head + "\r\n").encode())[0]

    def reloads(self, result):
        return self.gw.scrape().get("camtunnel_config_reloads_total", result=result)

    def test_live_reload_keeps_a_busy_tunnel_and_applies_the_token(self):
        # A tunnel that carries data across the reload.
        s = socket.create_connection(("127.0.0.1", self.gw.frontend_port), timeout=10)
        self.addCleanup(s.close)
        s.sendall(("CONNECT %s HTTP/1.1\r\nHost: x\r\n\r\n" % self.target).encode())
        self.assertIn(b" 200 ", s.recv(4096))
        s.sendall(b"before")
        self.assertEqual(s.recv(100), b"before")

        token, token_path = opslib.token_file(self.node.dir)
        self.node.config(frontend_token_file=token_path, open_timeout_ms=4000)
        opslib.sighup(self.gw.proc)
        self.assertEqual(self.reloads("ok"), 1)

        s.sendall(b"after")  # the old tunnel still relays
        self.assertEqual(s.recv(100), b"after")
        self.assertIn(" 407 ", self.connect_status())
        self.assertIn(" 407 ", self.connect_status("x" * 48))
        self.assertIn(" 200 ", self.connect_status(token))
        self.assertEqual(opslib.agent_ids(self.gw), {"cam-1"})

    def test_bad_reload_keeps_the_running_configuration(self):
        token, token_path = opslib.token_file(self.node.dir)
        self.node.config(frontend_token_file=token_path)
        opslib.sighup(self.gw.proc)
        path = self.node.config(frontend_token_file=token_path, open_timeout_ms="soon")
        opslib.sighup(self.gw.proc, expect_ok=False)
        (failed,) = opslib.log_events(self.gw.proc, "config_reload_failed")
        self.assertRegex(failed["error"], re.escape(path) + r":\d+:\d+: open_timeout_ms: "
                         "expected an integer")
        self.assertEqual((self.reloads("ok"), self.reloads("failed")), (1, 1))
        self.assertIn(" 407 ", self.connect_status())  # the token still applies
        self.assertIn(" 200 ", self.connect_status(token))
        with open(self.gw.proc.err_path) as f:
            self.assertNotIn(token, f.read())

    def test_tls_listener_keeps_its_certificate(self):
        # A file that drops TLS (listener, cert, key) passes its own checks, but the running TLS
        # listener stays until a restart and must not lose its certificate: refused.
        path = self.node.path("gateway.toml")
        options = self.node.base_options()
        for k in ("agent_tls_listen", "cert", "key"):
            del options[k]
        opslib.write_config(path, agent_plain_listen=["127.0.0.1:0"], **options)
        opslib.sighup(self.gw.proc, expect_ok=False)
        (failed,) = opslib.log_events(self.gw.proc, "config_reload_failed")
        self.assertIn("the running agent_tls_listen needs them", failed["error"])
        self.assertEqual(opslib.agent_ids(self.gw), {"cam-1"})

    def test_listener_changes_wait_for_a_restart(self):
        self.node.config(frontend_listen=["127.0.0.1:1"], open_timeout_ms=4000)
        opslib.sighup(self.gw.proc)
        events = opslib.log_events(self.gw.proc, "config_needs_restart")
        self.assertEqual([e["key"] for e in events], ["frontend_listen"])
        self.assertIn(" 200 ", self.connect_status())  # still served on the old port


if __name__ == "__main__":
    unittest.main(verbosity=2)
