#!/usr/bin/python3
"""The on-demand camera health probe of the admin API (POST /api/v1/agents/{id}/probe): through
a real tunnel to a GStreamer camera behind the C++ agent, RTSP OPTIONS and HTTP HEAD report the
camera's status and latencies; a stopped camera, an unknown agent and an unexposed service are
reported as such."""

import http.client
import json
import unittest

from harness import Env, start_camera, start_cpp_agent, start_gateway

AGENT = "cam-probe-1"


class ProbeTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.env = Env("probe")
        try:
            cls.gw = start_gateway(cls.env.procs, cls.env.path("gw"), tls=True)
            cls.cam = start_camera(cls.env.procs, tcp_only=True)
            cls.agent = start_cpp_agent(
                cls.env.procs, cls.gw, AGENT,
                ["rtsp=127.0.0.1:%d" % cls.cam.rtsp_port,
                 "http=127.0.0.1:%d" % cls.cam.http_port])
        except BaseException:
            cls.env.close(check=False)
            raise

    @classmethod
    def tearDownClass(cls):
        cls.env.close()

    def probe(self, agent, query=""):
        c = http.client.HTTPConnection("127.0.0.1", self.gw.admin_port, timeout=15)
        try:
            c.request("POST", "/api/v1/agents/%s/probe%s" % (agent, query))
            r = c.getresponse()
            return r.status, json.loads(r.read())
        finally:
            c.close()

    def test_1_live_camera_answers_rtsp_and_http(self):
        status, rtsp = self.probe(AGENT, "?service=rtsp&path=/stream1")
        self.assertEqual(status, 200)
        self.assertEqual(rtsp["result"], "ok")
        self.assertEqual(rtsp["camera_status"], 200)
        self.assertGreater(rtsp["open_ms"], 0)
        self.assertGreaterEqual(rtsp["total_ms"], rtsp["open_ms"])
        status, http = self.probe(AGENT, "?service=http&path=/snapshot.jpg")
        self.assertEqual((status, http["result"], http["camera_status"]), (200, "ok", 200))
        status, missing = self.probe(AGENT, "?service=http&path=/no-such-file")
        self.assertEqual((missing["result"], missing["camera_status"]), ("ok", 404))

    def test_2_unknown_agent_and_unexposed_service(self):
        status, body = self.probe("cam-nobody")
        self.assertEqual((status, body["result"]), (404, "unknown_agent"))
        status, body = self.probe(AGENT, "?service=ftp")
        self.assertEqual((status, body["result"]), (403, "not_exposed"))
        c = http.client.HTTPConnection("127.0.0.1", self.gw.admin_port, timeout=5)
        c.request("POST", "/api/v1/agents/Cam_1/probe")
        self.assertEqual(c.getresponse().status, 400)
        c.close()

    def test_3_stopped_camera_is_reported_refused(self):
        self.cam.proc.stop()
        status, body = self.probe(AGENT, "?service=rtsp&path=/stream1")
        self.assertEqual(status, 200)
        self.assertEqual(body["result"], "camera_refused")
        self.assertIn("111", body["reason"])  # ECONNREFUSED from the agent's OPEN_FAILED
        self.assertTrue(self.gw.alive())


if __name__ == "__main__":
    unittest.main()
