#!/usr/bin/python3
"""Acceptance: real RTSP clients (ffmpeg, GStreamer rtspsrc, an RTSP client of our own through
CONNECT) reach a Digest-protected camera with short sessions through the gateway, over TLS and
plain agent links, in every frontend form.

The camera (digest_camera.py) announces a 6 s session timeout and expires a session 6 + 2 s
after its last keepalive (a request carrying the session, or RTCP from the client), even while
its RTP flows; so a stream that lasts 13 s proves the keepalives went through the tunnel (and,
in path form, were rewritten); a control client without keepalives is cut at 8 s. The long
streams (17 clients) run side by side, started once in setUpClass; each test checks its own.
"""

import os
import random
import re
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from media_env import (FPS, PASSWORD, SESSION_GRACE, SESSION_TIMEOUT, USER,  # noqa: E402
                       Background, MediaEnv, ffmpeg_read, ffprobe, module_tmpdir, rtspsrc_read)
from rtsp_client import RtspClient, connect_tcp, connect_via_proxy  # noqa: E402

AGENTS = (("cam-tls", True, ["rtsp", "http"]), ("cam-plain", False, ["rtsp", "http"]))
LINKS = ("cam-tls", "cam-plain")
LONG = 2 * SESSION_TIMEOUT + 1          # seconds of stream: more than twice the timeout
assert LONG > SESSION_TIMEOUT + SESSION_GRACE + 3, "a stream must outlive any expiry"
MIN_FRAMES = int(0.8 * FPS * LONG)      # 25 fps, 20 % slack for start-up and a loaded box
CRED = "%s:%s" % (USER, PASSWORD)


class MediaRtspTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        tmp, cleanup = module_tmpdir("e2e-media-rtsp-")
        cls.addClassCleanup(cleanup)
        cls.env = MediaEnv(tmp, AGENTS, anchors=("/stream1", "/strict", "/open", "/live")).start()
        cls.addClassCleanup(cls.env.stop_and_check)
        env = cls.env
        cls.mark = env.camera_mark()
        jobs = cls.jobs = {}
        # Everything long starts now and runs side by side (about 15 s in all).
        for agent in LINKS:
            jobs["ffmpeg_host", agent] = Background(
                ffmpeg_read, env.host_url(agent, "/strict", CRED), LONG)
            jobs["connect", agent] = Background(cls._connect_session, agent)
            jobs["ffmpeg_path", agent] = Background(
                ffmpeg_read, env.path_url(agent, "/open"), LONG)
            jobs["path_requests", agent] = Background(cls._path_session, agent, keepalive=True)
            jobs["path_rtcp", agent] = Background(cls._path_session, agent, keepalive=False)
            jobs["http_tunnel", agent] = Background(
                ffmpeg_read, env.host_url(agent, "/strict", CRED), LONG, transport="http")
            jobs["rtspsrc_http_tunnel", agent] = Background(
                rtspsrc_read, env.host_url(agent, "/strict", CRED, scheme="rtsph"), LONG)
            jobs["rtspsrc_path", agent] = Background(
                rtspsrc_read, env.path_url(agent, "/live"), LONG)
            jobs["rtspsrc_host", agent] = Background(
                rtspsrc_read, env.host_url(agent, "/strict", CRED), LONG)
        jobs["no_keepalive"] = Background(cls._session, connect_tcp("127.0.0.1", env.fp),
                                          env.host_url("cam-tls", "/open"), keepalive=None)

    @classmethod
    def tearDownClass(cls):
        # One line per long job in the test log: what each client achieved.
        for key, job in sorted(cls.jobs.items(), key=lambda kv: str(kv[0])):
            try:
                r = job.result(timeout=60)
            except Exception as e:  # reported by its test
                r = repr(e)
            if isinstance(r, dict) and "errors" in r:
                r = {k: r[k] for k in ("frames", "status", "errors", "eos", "last_frame_at")}
            elif isinstance(r, dict):
                r = {k: r[k] for k in ("frames", "rc", "wall", "played_seconds", "rtcp_sent",
                                       "keepalive_status", "ended_by_camera") if k in r}
            sys.stderr.write("media job %s: %s\n" % (key, r))

    # ------------------------------------------------------------------ our own RTSP client

    @classmethod
    def _session(cls, sock, url, user=None, keepalive=SESSION_TIMEOUT / 2, rtcp=None, **kw):
        c = RtspClient(sock, user, PASSWORD if user else None)
        ssrc = random.getrandbits(32) if rtcp else None
        try:
            return c.stream(url, LONG, keepalive=keepalive, rtcp_interval=rtcp, ssrc=ssrc, **kw)
        finally:
            c.close()

    @classmethod
    def _connect_session(cls, agent):
        # CONNECT by service name over one link, by the camera's port number over the other.
        tls = agent == "cam-tls"
        target = "%s:rtsp" % agent if tls else "%s:%d" % (agent, cls.env.rtsp_port)
        sock = connect_via_proxy("127.0.0.1", cls.env.fp, target)
        return cls._session(sock, "rtsp://%s/strict" % agent, user=USER, rtcp=1.0)

    @classmethod
    def _path_session(cls, agent, keepalive):
        # A client that ignores Content-Base: every request (SETUP, PLAY, the GET_PARAMETER
        # keepalives, TEARDOWN) names the gateway URL, so the gateway must rewrite each one.
        # Kept alive either by keepalive requests only or by RTCP receiver reports only.
        sock = connect_tcp("127.0.0.1", cls.env.fp)
        if keepalive:
            return cls._session(sock, cls.env.path_url(agent, "/open"), use_content_base=False)
        return cls._session(sock, cls.env.path_url(agent, "/open"), keepalive=None, rtcp=1.0,
                            use_content_base=False)

    # ------------------------------------------------------------------ helpers

    def job(self, *key):
        return self.jobs[key if len(key) > 1 else key[0]].result(timeout=120)

    def camera_lines(self, pattern, wait=0):
        """The camera's log lines matching `pattern` since the module started; with `wait`,
        first wait (up to 5 s) until at least that many matched: the camera logs a request
        before answering it, but its log reaches this process a moment later."""
        if wait:
            return self.env.wait_camera_events(self.mark, pattern, wait)
        return self.env.camera_events(self.mark, pattern)

    def assert_rtspsrc_ok(self, r):
        """rtspsrc streamed LONG seconds without an error or an early end of stream."""
        self.assertEqual(r["status"], 0, r)
        self.assertEqual(r["errors"], [], r)
        self.assertIsNone(r["eos"], r)
        self.assertGreaterEqual(r["frames"], MIN_FRAMES, r)
        self.assertGreaterEqual(r["last_frame_at"], LONG - 1, r)

    def assert_long_client_session(self, res, mount):
        """Checks a session of our client: it streamed LONG seconds and the camera never
        expired it; every keepalive request was answered 200 and reached the camera; every
        RTCP RR sent ($ channel 1) reached the camera on the session's connection and its RTP
        stack."""
        sid = res["session"]
        self.assertEqual(res["session_timeout"], SESSION_TIMEOUT, res)
        self.assertFalse(res["ended_by_camera"], res)
        self.assertGreaterEqual(res["played_seconds"], LONG - 0.1, res)
        self.assertGreaterEqual(res["frames"], MIN_FRAMES, res)
        self.assertEqual(res.get("teardown_status"), 200, res)
        self.assertEqual(self.camera_lines(r"^rtsp session-expired id=%s$" % re.escape(sid)),
                         [], "the camera expired a session that was kept alive")
        sess_lines = self.camera_lines(r"^rtsp request method=(\S+) uri=(\S+) session=%s "
                                       % re.escape(sid))
        # Every request of the session reached the camera addressed to the camera's own path
        # (path form: rewritten; host form and CONNECT: as sent).
        for m in sess_lines:
            self.assertTrue(m.group(2).startswith("rtsp://") and
                            ("/%s/" % mount.strip("/")) in m.group(2) + "/", m.group(0))
        kept = [m for m in sess_lines if m.group(1) == "GET_PARAMETER"]
        self.assertEqual(len(kept), len(res["keepalive_status"]), [m.group(0) for m in kept])
        self.assertTrue(all(st == 200 for st in res["keepalive_status"]), res)
        if res["ssrc"] is not None:
            self.assertGreaterEqual(res["rtcp_sent"], LONG - 2, res)
            tap = self.camera_lines(r"^rtcp conn=\d+ channel=1 pt=201 ssrc=%08x session=%s "
                                    r"via=rtsp$" % (res["ssrc"], re.escape(sid)))
            rtpbin = self.camera_lines(r"^rtpbin-rtcp mount=%s pt=201 ssrc=%08x$"
                                       % (mount, res["ssrc"]))
            for seen in (len(tap), len(rtpbin)):
                self.assertGreaterEqual(seen, res["rtcp_sent"] - 1, "RTCP RRs sent %d, seen by "
                                        "the camera %d (tap) %d (rtpbin)"
                                        % (res["rtcp_sent"], len(tap), len(rtpbin)))

    # ------------------------------------------------------------------ host form

    def test_ffmpeg_host_form_digest_outlives_session_timeout(self):
        """ffmpeg, credentials in the URL, strict-Digest mount, host form: 2x timeout."""
        for agent in LINKS:
            with self.subTest(link=agent):
                r = self.job("ffmpeg_host", agent)
                self.assertEqual(r["rc"], 0, r["stderr"])
                self.assertGreaterEqual(r["frames"], MIN_FRAMES, r)
                self.assertGreaterEqual(r["wall"], LONG - 1, r)

    def test_wrong_credentials_get_cameras_401(self):
        """The camera's 401 comes back through the tunnel (ffprobe and our client)."""
        for agent in LINKS:
            with self.subTest(link=agent, client="ffprobe"):
                rc, out, err = ffprobe(self.env.host_url(agent, "/strict", USER + ":wrong"))
                self.assertNotEqual(rc, 0, out)
                self.assertIn("401", err)
            with self.subTest(link=agent, client="connect"):
                sock = connect_via_proxy("127.0.0.1", self.env.fp, "%s:rtsp" % agent)
                c = RtspClient(sock, USER, "wrong")
                try:
                    r = c.request("OPTIONS", "rtsp://%s/strict" % agent)
                finally:
                    c.close()
                self.assertEqual(r.status, 401, r.head)
                self.assertIn("Digest", r.header("www-authenticate", ""))
        # The camera itself judged (and refused) the credentials.
        refused = self.camera_lines(r"^rtsp request method=OPTIONS .* auth=bad-response$",
                                    wait=2 * len(LINKS))
        self.assertGreaterEqual(len(refused), 2 * len(LINKS))

    def test_rtsp_over_http_host_form(self):
        """ffmpeg -rtsp_transport http and rtspsrc rtsph:// (GET/POST pair with
        x-sessioncookie): two tunnels to the same camera, Digest inside, 2x the session
        timeout (ffmpeg keeps it with GET_PARAMETER, rtspsrc with RTCP in the POST body)."""
        for agent in LINKS:
            with self.subTest(link=agent):
                r = self.job("http_tunnel", agent)
                self.assertEqual(r["rc"], 0, r["stderr"])
                self.assertGreaterEqual(r["frames"], MIN_FRAMES, r)
        for agent in LINKS:
            with self.subTest(link=agent, client="rtspsrc rtsph://"):
                self.assert_rtspsrc_ok(self.job("rtspsrc_http_tunnel", agent))
        # rtspsrc kept its tunnelled sessions alive with RTCP in the POST body: two sessions
        # (one per link) whose receiver reports reached the camera through the tunnel.
        tunnelled = {m.group(1) for m in self.camera_lines(
            r"^rtcp conn=\d+ channel=1 pt=201 ssrc=\w+ session=(\S+) via=http$")}
        self.assertEqual(len(tunnelled), len(LINKS), tunnelled)
        for sid in tunnelled:
            self.assertEqual(self.camera_lines(r"^rtsp session-expired id=%s$" % re.escape(sid)),
                             [])
        # Each client needed two tunnels (GET and POST); in this module only RTSP over HTTP
        # uses HTTP on the frontend.
        m = self.env.metrics()
        self.assertEqual(self.env.metric_sum(m, "camtunnel_frontend_requests_total",
                                             protocol="http", status="101"), 4 * len(LINKS))

    def test_rtspsrc_host_form_digest(self):
        """GStreamer rtspsrc with credentials, host form, strict-Digest mount, 2x the
        timeout."""
        for agent in LINKS:
            with self.subTest(link=agent):
                self.assert_rtspsrc_ok(self.job("rtspsrc_host", agent))

    # ------------------------------------------------------------------ CONNECT

    def test_connect_digest_session_with_keepalives(self):
        """Our RTSP client through CONNECT, Digest on the strict mount, GET_PARAMETER
        keepalives and RTCP RRs, for 2x the session timeout."""
        for agent in LINKS:
            with self.subTest(link=agent):
                res = self.job("connect", agent)
                statuses = [st for (_, _, st) in res["requests"]]
                self.assertEqual(statuses[:2], [401, 200], res["requests"])
                self.assert_long_client_session(res, "/strict")

    # ------------------------------------------------------------------ path form

    def test_ffmpeg_path_form_outlives_session_timeout(self):
        for agent in LINKS:
            with self.subTest(link=agent):
                r = self.job("ffmpeg_path", agent)
                self.assertEqual(r["rc"], 0, r["stderr"])
                self.assertGreaterEqual(r["frames"], MIN_FRAMES, r)
                self.assertGreaterEqual(r["wall"], LONG - 1, r)

    def test_path_form_rewritten_keepalive_requests(self):
        """A path-form client kept alive by GET_PARAMETER only, every request addressed to the
        gateway URL: each reaches the camera rewritten to the camera's URL, and the session
        outlives 2x the timeout."""
        for agent in LINKS:
            with self.subTest(link=agent):
                res = self.job("path_requests", agent)
                gateway_url = self.env.path_url(agent, "/open")
                sent = [u for (meth, u, _) in res["requests"] if meth == "GET_PARAMETER"]
                self.assertGreaterEqual(len(sent), 3, res["requests"])
                self.assertTrue(all(u.startswith(gateway_url) for u in sent), sent)
                self.assert_long_client_session(res, "/open")
                lines = self.camera_lines(r"^rtsp request method=(\w+) uri=(\S+) "
                                          r"session=%s " % re.escape(res["session"]))
                self.assertTrue(lines)
                for m in lines:
                    self.assertTrue(m.group(2).startswith(self.env.camera_rtsp_url("/open")),
                                    m.group(0))

    def test_path_form_rtcp_reaches_camera(self):
        """A path-form client kept alive by interleaved RTCP receiver reports only: each RR
        reaches the camera, and the session outlives 2x the timeout."""
        for agent in LINKS:
            with self.subTest(link=agent):
                res = self.job("path_rtcp", agent)
                self.assertEqual(res["keepalive_status"], [], res)
                self.assert_long_client_session(res, "/open")

    def test_rtspsrc_path_form_and_its_rtcp(self):
        """GStreamer rtspsrc through path form for 2x the timeout; its interleaved RTCP reaches
        the camera."""
        for agent in LINKS:
            with self.subTest(link=agent):
                self.assert_rtspsrc_ok(self.job("rtspsrc_path", agent))
        # /live is used by these two clients only. rtspsrc keeps its session alive with RTCP
        # receiver reports (it sends no keepalive request while it sends RTCP), so both
        # sessions lived through 2x the timeout on RTCP that went through the path form.
        sessions = {m.group(1) for m in self.camera_lines(
            r"^rtsp request method=PLAY uri=\S+/live/ session=(\S+) ")}
        self.assertEqual(len(sessions), len(LINKS), sessions)
        for sid in sessions:
            rr = self.camera_lines(r"^rtcp conn=\d+ channel=1 pt=201 ssrc=\w+ session=%s "
                                   r"via=rtsp$" % re.escape(sid))
            self.assertGreaterEqual(len(rr), 2, sid)
            self.assertEqual(self.camera_lines(r"^rtsp session-expired id=%s$" % re.escape(sid)),
                             [])

    def test_path_form_breaks_strict_digest(self):
        """Documented limitation: path form rewrites the request line, so a camera that checks
        the Digest uri against it refuses; GStreamer's lenient check accepts."""
        for agent in LINKS:
            with self.subTest(link=agent, mount="/strict"):
                rc, out, err = ffprobe(self.env.path_url(agent, "/strict", CRED))
                self.assertNotEqual(rc, 0, out)
                self.assertIn("401", err)
            with self.subTest(link=agent, mount="/stream1"):
                rc, out, err = ffprobe(self.env.path_url(agent, "/stream1", CRED))
                self.assertEqual(rc, 0, err)
                self.assertIn("h264", out)
        bad = self.camera_lines(r"^rtsp request method=\w+ uri=(\S+) session=- auth=bad-uri "
                                r"digest_uri=(\S+)$", wait=len(LINKS))
        self.assertGreaterEqual(len(bad), len(LINKS))
        for m in bad:
            self.assertEqual(m.group(1), self.env.camera_rtsp_url("/strict"))
            self.assertRegex(m.group(2), r"/cam-(tls|plain)/strict$")

    # ------------------------------------------------------------------ the control

    def test_control_session_without_keepalive_expires(self):
        """Control: a client that sends no keepalive is cut by the camera after the timeout,
        so the long streams above really depended on their keepalives."""
        res = self.job("no_keepalive")
        self.assertTrue(res["ended_by_camera"], res)
        self.assertGreaterEqual(res["played_seconds"], SESSION_TIMEOUT + SESSION_GRACE - 0.5, res)
        # Cut short of what the long streams played: theirs lived on their keepalives. (Not a
        # tighter bound: a busy machine runs the camera's expiry timer late.)
        self.assertLess(res["played_seconds"], LONG, res)
        self.assertTrue(self.camera_lines(r"^rtsp session-expired id=%s$"
                                          % re.escape(res["session"]), wait=1))


if __name__ == "__main__":
    unittest.main()
