#!/usr/bin/python3
"""Streaming through the gateway: a GStreamer RTSP+HTTP camera behind the C++ agent, read by
ffprobe (RTSP, host form and path form) and curl (HTTP path and host form, CONNECT), in TLS
mode and in plain mode (a gateway without a certificate, plain agent listener only)."""

import os
import socket
import time
import unittest

import harness
from harness import Env, curl, start_camera, start_cpp_agent, start_gateway
from support import ffprobe_frames

AGENT = "cam-stream-1"
SECONDS = 5
FPS = 25
MIN_FRAMES, MAX_FRAMES = 100, 140     # 25 fps * 5 s = 125, with start-up slack


class _StreamBase:
    TLS = True

    @classmethod
    def setUpClass(cls):
        cls.env = Env("stream-%s" % ("tls" if cls.TLS else "plain"))
        try:
            cls.snapshot = cls.env.path("snapshot.jpg")
            cls.snapshot_sha = harness.write_snapshot(cls.snapshot)
            cls.gw = start_gateway(cls.env.procs, cls.env.path("gw"), tls=cls.TLS,
                                   plain=not cls.TLS)
            cls.cam = start_camera(cls.env.procs, snapshot=cls.snapshot, tcp_only=True)
            cls.agent = start_cpp_agent(
                cls.env.procs, cls.gw, AGENT,
                ["rtsp=127.0.0.1:%d" % cls.cam.rtsp_port,
                 "http=127.0.0.1:%d" % cls.cam.http_port])
        except BaseException:
            cls.env.close(check=False)
            raise

    @classmethod
    def tearDownClass(cls):
        cls.env.close()       # raises if the gateway, agent or camera did not exit with 0

    def setUp(self):
        self.assertTrue(self.gw.alive(), "gateway died")
        self.assertTrue(self.agent.alive(), "agent died")

    # -- helpers
    def counters(self):
        m = self.gw.metrics()
        return {"ok": m.get("camtunnel_tunnels_opened_total", result="ok"),
                "to_client": m.get("camtunnel_relay_bytes_total", direction="to_client"),
                "to_camera": m.get("camtunnel_relay_bytes_total", direction="to_camera")}

    def check_stream(self, url):
        before = self.counters()
        t0 = time.monotonic()
        info = ffprobe_frames(url, SECONDS)
        elapsed = time.monotonic() - t0
        self.assertEqual(info["codec_name"], "h264", info["stderr"])
        self.assertEqual((info["width"], info["height"]), (320, 240))
        self.assertGreaterEqual(info["nb_read_frames"], MIN_FRAMES, info)
        self.assertLessEqual(info["nb_read_frames"], MAX_FRAMES, info)
        self.assertGreaterEqual(elapsed, SECONDS * 0.9, "read %.1f s of a live stream" % elapsed)
        self.gw.wait_metric("camtunnel_tunnels_open", lambda v: v == 0)
        after = self.counters()
        self.assertGreaterEqual(after["ok"] - before["ok"], 1)
        # 5 s of 320x240 H.264 is well over 50 KB towards the client
        self.assertGreater(after["to_client"] - before["to_client"], 50_000)
        self.assertGreater(after["to_camera"] - before["to_camera"], 100)   # RTSP requests

    def check_curl(self, url, proxy=None):
        out = self.env.path("curl-%d.out" % time.monotonic_ns())
        code, err = curl(url, out, proxy=proxy)
        self.assertEqual(code, 200, "curl %s (proxy %s): %s" % (url, proxy, err))
        self.assertEqual(harness.sha256_file(out), self.snapshot_sha)
        self.assertEqual(os.path.getsize(out), os.path.getsize(self.snapshot))

    # -- tests
    def test_agent_listed(self):
        a = self.gw.agents()[AGENT]
        names = {s["name"]: s["port"] for s in a["services"]}
        self.assertEqual(names, {"rtsp": self.cam.rtsp_port, "http": self.cam.http_port})
        self.assertTrue(a["version"].startswith("camtunnel-agent/"), a)
        self.assertEqual(self.gw.metric("camtunnel_agents_connected"), 1)

    def test_rtsp_host_form(self):
        self.check_stream(self.gw.frontend_url("rtsp", AGENT, "/stream1", host_form=True))

    def test_rtsp_path_form(self):
        self.check_stream(self.gw.frontend_url("rtsp", AGENT, "/stream1"))

    def test_http_path_form_snapshot(self):
        self.check_curl(self.gw.frontend_url("http", AGENT, "/snapshot.jpg"))

    def test_http_host_form_snapshot(self):
        self.check_curl(self.gw.frontend_url("http", AGENT, "/snapshot.jpg", host_form=True))

    def test_connect_snapshot(self):
        # curl -p: CONNECT <agent>:<camera http port>, then GET /snapshot.jpg in the tunnel
        self.check_curl("http://%s:%d/snapshot.jpg" % (AGENT, self.cam.http_port),
                        proxy="http://127.0.0.1:%d" % self.gw.frontend_port)
        self.check_curl("http://%s:%d/snapshot.jpg" % (AGENT, self.cam.http_port),
                        proxy="http://[::1]:%d" % self.gw.frontend_port)

    def test_connect_by_service_name(self):
        before = self.gw.metric("camtunnel_frontend_requests_total", protocol="connect",
                                status="101")
        with socket.create_connection(("127.0.0.1", self.gw.frontend_port), timeout=10) as s:
            s.sendall(b"CONNECT %s:http HTTP/1.1\r\nHost: %s:http\r\n\r\n"
                      % (AGENT.encode(), AGENT.encode()))
            deadline = time.monotonic() + 10
            status, head, rest = harness.read_response_head(s, deadline)
            self.assertEqual(status, 200, head)
            self.assertEqual(rest, b"")
            s.sendall(b"GET /snapshot.jpg HTTP/1.1\r\nHost: cam\r\nConnection: close\r\n\r\n")
            status, head, rest = harness.read_response_head(s, deadline)
            self.assertEqual(status, 200, head)
            body, extra = harness.read_body(s, head, rest, deadline)
            self.assertEqual(harness.sha256_bytes(body), self.snapshot_sha)
            self.assertEqual(harness.wait_closed(s), b"")   # camera closed: tunnel ends
        self.gw.wait_metric("camtunnel_frontend_requests_total", lambda v: v == before + 1,
                            protocol="connect", status="101")


class StreamTLS(_StreamBase, unittest.TestCase):
    TLS = True


class StreamPlain(_StreamBase, unittest.TestCase):
    TLS = False

    def test_plain_gateway_has_no_tls_listener(self):
        self.assertEqual(self.gw.tls_port, 0)
        self.assertNotEqual(self.gw.plain_port, 0)
        with open(self.agent.err_path) as f:
            self.assertIn("connected gateway=http://127.0.0.1:%d" % self.gw.plain_port, f.read())


if __name__ == "__main__":
    unittest.main(verbosity=2)
