#!/usr/bin/python3
"""The C++ gateway against the independent Python implementation of camtunnel/1
(camtunnel_client.py, written from PROTOCOL.md only): control handshake (gateway proof checked
by the client, agent proof by the gateway), WELCOME contents, PING/PONG, and OPEN answered with a
data connection through which ffprobe and curl read a real camera. TLS mode (the acceptance
case) and plain mode (frame MACs computed independently on both sides)."""

import json
import os
import subprocess
import time
import unittest

import harness
from harness import Env, curl, start_camera, start_gateway
from support import CLIENT, PYTHON, ffprobe_frames, start_client_agent

AGENT = "py-cam-1"
HEARTBEAT_MS = 3000
RECONNECT_WINDOW_MS = 7000


class _IndependentBase:
    TLS = True

    @classmethod
    def setUpClass(cls):
        cls.env = Env("independent-%s" % ("tls" if cls.TLS else "plain"))
        try:
            cls.snapshot = cls.env.path("snapshot.jpg")
            cls.snapshot_sha = harness.write_snapshot(cls.snapshot)
            cls.gw = start_gateway(cls.env.procs, cls.env.path("gw"), tls=cls.TLS,
                                   plain=not cls.TLS,
                                   extra=["--heartbeat_ms=%d" % HEARTBEAT_MS,
                                          "--reconnect_window_ms=%d" % RECONNECT_WINDOW_MS])
            cls.cam = start_camera(cls.env.procs, snapshot=cls.snapshot, tcp_only=True)
            port = cls.gw.tls_port if cls.TLS else cls.gw.plain_port
            cls.agent = start_client_agent(
                cls.env.procs, "127.0.0.1", port, AGENT, cls.gw.key_ref(),
                cls.gw.agent_key(AGENT).hex(),
                ["rtsp=127.0.0.1:%d" % cls.cam.rtsp_port,
                 "http=127.0.0.1:%d" % cls.cam.http_port],
                tls=cls.TLS, ca=cls.gw.cert[0] if cls.TLS else None)
            cls.gw.wait_agent(AGENT)
        except BaseException:
            cls.env.close(check=False)
            raise

    @classmethod
    def tearDownClass(cls):
        cls.env.close()

    def setUp(self):
        self.assertTrue(self.gw.alive(), "gateway died")
        self.assertTrue(self.agent.alive(), "independent agent died:\n" + self.agent.stderr_tail())

    def test_ready_line_and_listing(self):
        self.assertEqual(self.agent.lines[0], "ready agent=%s transport=%s"
                         % (AGENT, "tls" if self.TLS else "plain"))
        a = self.gw.agents()[AGENT]
        self.assertEqual(a["version"], "camtunnel-pyclient/1.0")
        self.assertEqual({s["name"]: s["port"] for s in a["services"]},
                         {"rtsp": self.cam.rtsp_port, "http": self.cam.http_port})

    def test_handshake_only_cli(self):
        """A second agent id: one handshake with PING/PONG, reported by the CLI as JSON."""
        port = self.gw.tls_port if self.TLS else self.gw.plain_port
        argv = [PYTHON, CLIENT, "handshake-only", "--gateway", "127.0.0.1:%d" % port,
                "--tls" if self.TLS else "--plain", "--agent-id", "py-cam-2",
                "--key-ref", self.gw.key_ref(), "--key-hex", self.gw.agent_key("py-cam-2").hex(),
                "--ping"]
        if self.TLS:
            argv += ["--ca", self.gw.cert[0]]
        r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           timeout=30)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        res = json.loads(r.stdout)
        self.assertEqual(res["status"], 101)
        self.assertEqual(res["transport"], "tls" if self.TLS else "plain")
        self.assertEqual(res["welcome"]["heartbeat_ms"], HEARTBEAT_MS)
        self.assertEqual(res["welcome"]["reconnect_window_ms"], RECONNECT_WINDOW_MS)
        self.assertLess(abs(res["welcome"]["server_time_ms"] - time.time() * 1000), 60_000)
        self.assertIn("rtt_ms", res)
        if self.TLS:
            self.assertIn(res["tls_version"], ("TLSv1.3", "TLSv1.2"))
            self.assertEqual(len(bytes.fromhex(res["exporter"])), 32)

    def test_wrong_key_is_refused_by_the_client(self):
        """The client checks the gateway proof: with a K the gateway did not derive, the
        gateway's proof cannot verify (and the gateway rejects the agent proof)."""
        cfg = self.gw.agent_config("py-cam-3", key=bytes(32))
        with self.assertRaises(harness.ctc.BadGatewayProof):
            harness.ctc.connect_control(cfg)

    def test_newer_session_replaces_older(self):
        """A second verified session of one agent id replaces the first, which gets GOAWAY
        (reason replaced) and is closed."""
        m0 = self.gw.metrics()
        first = harness.ctc.connect_control(self.gw.agent_config("py-cam-5"))
        try:
            self.gw.wait_agent("py-cam-5")
            remote1 = self.gw.agents()["py-cam-5"]["remote"]
            second = harness.ctc.connect_control(self.gw.agent_config("py-cam-5"))
            try:
                deadline = time.monotonic() + 5
                frames = []
                while True:
                    f = first.recv(deadline)
                    if f is None:
                        break
                    frames.append(f)
                goaway = [f for f in frames if f.type == harness.ctc.GOAWAY]
                self.assertEqual(len(goaway), 1, [f.describe() for f in frames])
                self.assertIn("replaced", goaway[0].text(harness.ctc.T_TEXT, ""))
                self.assertEqual(frames[-1].type, harness.ctc.GOAWAY)
                harness.wait_until(
                    lambda: self.gw.agents().get("py-cam-5", {}).get("remote") not in
                    (None, remote1), 5, what="the new session listed")
                self.assertEqual(self.gw.metric("camtunnel_sessions_replaced_total")
                                 - m0.get("camtunnel_sessions_replaced_total"), 1)
                # the new session is the live one: it answers a PING
                second.send(harness.ctc.PING, [(harness.ctc.T_SEQUENCE, harness.ctc.u64(9))])
                while True:
                    f = second.recv(time.monotonic() + 5)
                    if f.type == harness.ctc.PONG:
                        self.assertEqual(f.uint(harness.ctc.T_SEQUENCE), 9)
                        break
            finally:
                second.close()
        finally:
            first.close()
        self.gw.wait_agent("py-cam-5", online=False)

    def test_curl_http_path_form(self):
        out = self.env.path("path.out")
        code, err = curl(self.gw.frontend_url("http", AGENT, "/snapshot.jpg"), out)
        self.assertEqual(code, 200, err)
        self.assertEqual(harness.sha256_file(out), self.snapshot_sha)

    def test_curl_connect(self):
        out = self.env.path("connect.out")
        code, err = curl("http://%s:%d/snapshot.jpg" % (AGENT, self.cam.http_port), out,
                         proxy="http://127.0.0.1:%d" % self.gw.frontend_port)
        self.assertEqual(code, 200, err)
        self.assertEqual(harness.sha256_file(out), self.snapshot_sha)

    def test_ffprobe_path_form(self):
        info = ffprobe_frames(self.gw.frontend_url("rtsp", AGENT, "/stream1"), 5)
        self.assertEqual(info["codec_name"], "h264", info["stderr"])
        self.assertGreaterEqual(info["nb_read_frames"], 100, info)
        self.assertLessEqual(info["nb_read_frames"], 140, info)

    def test_in_process_agent_tunnel_counts(self):
        """An in-process independent agent: one OPEN per request, one data connection each,
        bytes counted on the agent side equal to what curl received."""
        a = harness.InProcessAgent(self.gw.agent_config(
            "py-cam-4", ["http=127.0.0.1:%d" % self.cam.http_port])).start()
        try:
            self.gw.wait_agent("py-cam-4")
            self.assertEqual(a.session.welcome.heartbeat_ms, HEARTBEAT_MS)
            for i in range(3):
                out = self.env.path("inproc-%d.out" % i)
                code, err = curl(self.gw.frontend_url("http", "py-cam-4", "/snapshot.jpg"), out)
                self.assertEqual(code, 200, err)
                self.assertEqual(harness.sha256_file(out), self.snapshot_sha)
            harness.wait_until(lambda: a.stats["tunnels_ok"] == 3, 10, what="3 tunnels done")
            self.assertEqual(a.stats["opens"], 3)
            self.assertEqual(a.stats["tunnels_failed"], 0)
            # bytes_up: camera -> gateway (relay(local, data) counts local's bytes first)
            self.assertGreaterEqual(a.stats["bytes_up"], 3 * os.path.getsize(self.snapshot))
        finally:
            a.close()
        self.gw.wait_agent("py-cam-4", online=False)


class IndependentClientTLS(_IndependentBase, unittest.TestCase):
    TLS = True

    def test_tls12_control_and_data_connections(self):
        """TLS 1.2 end to end: the proofs bind the TLS 1.2 exporter on the control and the
        data connection alike, and a snapshot passes byte for byte."""
        a = harness.InProcessAgent(self.gw.agent_config(
            "py-cam-12", ["http=127.0.0.1:%d" % self.cam.http_port], tls_max="1.2")).start()
        try:
            self.gw.wait_agent("py-cam-12")
            self.assertEqual(a.session.stream.tls_version(), "TLSv1.2")
            out = self.env.path("tls12.out")
            code, err = curl(self.gw.frontend_url("http", "py-cam-12", "/snapshot.jpg"), out)
            self.assertEqual(code, 200, err)
            self.assertEqual(harness.sha256_file(out), self.snapshot_sha)
            harness.wait_until(lambda: a.stats["tunnels_ok"] == 1, 10, what="tunnel done")
        finally:
            a.close()
        self.gw.wait_agent("py-cam-12", online=False)


class IndependentClientPlain(_IndependentBase, unittest.TestCase):
    TLS = False


if __name__ == "__main__":
    unittest.main(verbosity=2)
