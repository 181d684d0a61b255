#!/usr/bin/python3
"""Acceptance: snapshots with curl (Digest, keep-alive) through host form and CONNECT; refusals a
media server may meet: a later request naming another agent (403), a service or port the agent
did not expose (403, no OPEN sent), and the error statuses real clients show (404, 502, 503).
TLS and plain agent links.
"""

import os
import re
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from media_env import (PASSWORD, USER, MediaEnv, RawConn, ffprobe, module_tmpdir,  # noqa: E402
                       run)
import support  # noqa: E402  (tests/e2e/support.py: media_env put it on the path)

CRED = "%s:%s" % (USER, PASSWORD)
LINKS = ("cam-tls", "cam-plain")


class MediaHttpTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        tmp, cleanup = module_tmpdir("e2e-media-http-")
        cls.addClassCleanup(cleanup)
        cls.tmp = tmp
        dead_port = cls.dead_port = support.free_port()   # nothing listens: the camera refuses
        cls.env = MediaEnv(tmp, [
            ("cam-tls", True, ["rtsp", "http"]),
            ("cam-plain", False, ["rtsp", "http"]),
            ("rtsponly-tls", True, ["rtsp"]),          # no http service
            ("httponly-plain", False, ["http"]),       # no rtsp service
            ("deadcam-plain", False, ["rtsp=%d" % dead_port, "http=%d" % dead_port]),
            ("gone-tls", True, ["rtsp", "http"]),      # stopped below: seen, then offline
        ]).start()
        cls.addClassCleanup(cls.env.stop_and_check)
        cls.env.agents["gone-tls"].proc.stop()
        support.wait_until(lambda: "gone-tls" not in {
            a["id"] for a in cls.env.admin_json("/api/v1/agents")["agents"]}, 15, 0.1,
            "gone-tls offline")

    # ------------------------------------------------------------------ helpers

    def metrics_delta(self, before, name, **labels):
        return (self.env.metric_sum(self.env.metrics(), name, **labels)
                - self.env.metric_sum(before, name, **labels))

    def curl_twice(self, url, proxy=None):
        """curl --digest fetching `url` twice on one connection; returns (stderr, [bodies])."""
        d = os.path.join(self.tmp, "curl-%d" % time.monotonic_ns())
        os.makedirs(d)
        outs = [os.path.join(d, "1.jpg"), os.path.join(d, "2.jpg")]
        argv = ["curl", "-sS", "-v", "--max-time", "20", "--digest", "-u", CRED]
        if proxy:
            argv += ["-p", "-x", proxy]
        argv += ["-o", outs[0], "-o", outs[1], url, url]
        rc, _, err, _ = run(argv, 30)
        self.assertEqual(rc, 0, err)
        bodies = []
        for o in outs:
            with open(o, "rb") as f:
                bodies.append(f.read())
        return err, bodies

    def assert_one_connection_two_snapshots(self, err, bodies, mark):
        for b in bodies:
            self.assertEqual(support.sha256_bytes(b), self.env.snapshot_sha256)
        self.assertEqual(len(re.findall(r"^\* Connected to ", err, re.M)), 1, err)
        self.assertIn("Re-using existing connection", err)
        # The camera answered challenge, snapshot, challenge, snapshot on one connection.
        seen = self.env.wait_camera_events(mark, r"^http conn=(\d+) method=GET "
                                                 r"path=/snapshot\.jpg status=(\d+) auth=(\S+)$", 4)
        self.assertEqual([m.group(2) for m in seen], ["401", "200", "401", "200"],
                         [m.group(0) for m in seen])
        self.assertEqual(len({m.group(1) for m in seen}), 1, [m.group(0) for m in seen])

    # ------------------------------------------------------------------ snapshots

    def test_snapshot_digest_keepalive_host_form(self):
        for agent in LINKS:
            with self.subTest(link=agent):
                before, mark = self.env.metrics(), self.env.camera_mark()
                err, bodies = self.curl_twice(self.env.host_url(agent, "/snapshot.jpg",
                                                                scheme="http"))
                self.assert_one_connection_two_snapshots(err, bodies, mark)
                self.assertEqual(self.metrics_delta(before, "camtunnel_frontend_requests_total",
                                                    protocol="http", status="101"), 1)

    def test_snapshot_digest_keepalive_connect(self):
        for agent in LINKS:
            with self.subTest(link=agent):
                before, mark = self.env.metrics(), self.env.camera_mark()
                # CONNECT <agent>:<camera http port>: the port selects the agent's service.
                err, bodies = self.curl_twice(
                    "http://%s:%d/snapshot.jpg" % (agent, self.env.http_port),
                    proxy="http://127.0.0.1:%d" % self.env.fp)
                self.assertIn("CONNECT %s:%d HTTP/1.1" % (agent, self.env.http_port), err)
                self.assert_one_connection_two_snapshots(err, bodies, mark)
                self.assertEqual(self.metrics_delta(before, "camtunnel_frontend_requests_total",
                                                    protocol="connect", status="101"), 1)

    def test_http_path_form_rewrites_and_breaks_strict_digest(self):
        """Path form: the request-target loses its /<agent> prefix, so an open snapshot works
        (twice on one connection), while a Digest check of the uri refuses (documented)."""
        for agent in LINKS:
            with self.subTest(link=agent):
                c = RawConn(self.env.fp)
                try:
                    for _ in range(2):
                        c.send("GET /%s/open.jpg HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n"
                               % (agent, self.env.fp))
                        status, head, body = c.read_message()
                        self.assertEqual(status, 200, head)
                        self.assertEqual(support.sha256_bytes(body), self.env.snapshot_sha256)
                finally:
                    c.close()
                mark = self.env.camera_mark()
                rc, out, err, _ = run(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}",
                                       "--digest", "-u", CRED,
                                       self.env.path_url(agent, "/snapshot.jpg", scheme="http")],
                                      30)
                self.assertEqual(out, "401", err)
                self.assertTrue(self.env.wait_camera_events(
                    mark, r"^http conn=\d+ method=GET path=/snapshot\.jpg status=401 "
                          r"auth=bad-uri$", 1))

    def test_http_path_form_request_bodies_on_one_connection(self):
        """Path form over one keep-alive connection: a POST with a Content-Length body, a
        chunked POST and a GET, each rewritten; the bodies (which look like request heads
        naming the agent) reach the camera byte for byte, unrewritten."""
        for agent in LINKS:
            with self.subTest(link=agent):
                mark = self.env.camera_mark()
                fake_head = ("GET /%s/open.jpg HTTP/1.1\r\nHost: x\r\n\r\n" % agent).encode()
                body1 = fake_head + os.urandom(3000)
                body2 = os.urandom(5000) + fake_head
                chunks = [body2[:1], body2[1:4097], body2[4097:]]
                chunked = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks) + b"0\r\n\r\n"
                host = "Host: 127.0.0.1:%d\r\n" % self.env.fp
                c = RawConn(self.env.fp)
                try:
                    c.send(("POST /%s/echo HTTP/1.1\r\n%sContent-Type: application/soap+xml\r\n"
                            "Content-Length: %d\r\n\r\n" % (agent, host, len(body1))).encode()
                           + body1)
                    c.send(("POST /%s/echo HTTP/1.1\r\n%sTransfer-Encoding: chunked\r\n\r\n"
                            % (agent, host)).encode() + chunked)
                    c.send("GET /%s/open.jpg HTTP/1.1\r\n%s\r\n" % (agent, host))
                    answers = [c.read_message() for _ in range(3)]
                finally:
                    c.close()
                for status, head, _ in answers:
                    self.assertEqual(status, 200, head)
                for (_, _, body), sent in zip(answers[:2], (body1, body2)):
                    self.assertEqual(body.decode(), "sha256=%s length=%d\n"
                                     % (support.sha256_bytes(sent), len(sent)))
                self.assertEqual(support.sha256_bytes(answers[2][2]), self.env.snapshot_sha256)
                seen = self.env.wait_camera_events(
                    mark, r"^http conn=(\d+) method=(\S+) path=(\S+) status=200 ", 3)
                self.assertEqual([(m.group(2), m.group(3)) for m in seen],
                                 [("POST", "/echo"), ("POST", "/echo"), ("GET", "/open.jpg")])
                self.assertEqual(len({m.group(1) for m in seen}), 1, "one camera connection")

    def test_digest_post_with_chunked_body_host_form(self):
        """curl --digest POSTs a chunked SOAP body in host form: challenge, then the body
        arrives whole behind a valid digest."""
        body = os.urandom(2000)
        path = os.path.join(self.tmp, "soap-%d.bin" % time.monotonic_ns())
        with open(path, "wb") as f:
            f.write(body)
        for agent in LINKS:
            with self.subTest(link=agent):
                rc, out, err, _ = run(
                    ["curl", "-sS", "--max-time", "20", "--digest", "-u", CRED,
                     "-H", "Transfer-Encoding: chunked", "--data-binary", "@" + path,
                     self.env.host_url(agent, "/onvif/device_service", scheme="http")], 30)
                self.assertEqual(rc, 0, err)
                self.assertEqual(out, "sha256=%s length=%d\n"
                                 % (support.sha256_bytes(body), len(body)))

    # ------------------------------------------------------------------ another agent

    def test_later_request_for_another_agent_is_refused(self):
        """A request naming agent B on a connection routed to agent A gets 403 and the
        connection closes; B's camera never sees the request."""
        env = self.env
        fp = env.fp
        cases = []
        for a, b in (("cam-tls", "cam-plain"), ("cam-plain", "cam-tls")):
            cases += [
                ("rtsp path", a, b,
                 "OPTIONS rtsp://127.0.0.1:%d/%s/open RTSP/1.0\r\nCSeq: 1\r\n\r\n" % (fp, a),
                 "DESCRIBE rtsp://127.0.0.1:%d/%s/open RTSP/1.0\r\nCSeq: 2\r\n\r\n" % (fp, b)),
                ("rtsp host", a, b,
                 "OPTIONS rtsp://%s.localhost:%d/open RTSP/1.0\r\nCSeq: 1\r\n\r\n" % (a, fp),
                 "DESCRIBE rtsp://%s.localhost:%d/open RTSP/1.0\r\nCSeq: 2\r\n\r\n" % (b, fp)),
                ("http path", a, b,
                 "GET /%s/open.jpg HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n" % (a, fp),
                 "GET /%s/open.jpg HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n" % (b, fp)),
                ("http host", a, b,
                 "GET /open.jpg HTTP/1.1\r\nHost: %s.localhost:%d\r\n\r\n" % (a, fp),
                 "GET /open.jpg HTTP/1.1\r\nHost: %s.localhost:%d\r\n\r\n" % (b, fp)),
            ]
        for form, a, b, first, second in cases:
            with self.subTest(form=form, first=a, then=b):
                before, mark = env.metrics(), env.camera_mark()
                c = RawConn(fp)
                try:
                    c.send(first)
                    status, head, _ = c.read_message()
                    self.assertEqual(status, 200, head)
                    c.send(second)
                    status, head, body = c.read_message()
                    self.assertEqual(status, 403, head)
                    self.assertIn("another agent", head + body.decode("latin-1"))
                    if form.startswith("rtsp"):
                        self.assertRegex(head, r"(?m)^CSeq: 2\r?$")
                    self.assertTrue(c.at_eof(), "connection still open after the 403")
                finally:
                    c.close()
                # The camera saw the first request only.
                pattern = r"^(rtsp request method=\w+|http) "
                env.wait_camera_events(mark, pattern, 1)
                time.sleep(0.3)   # room for a second line, which must not come
                seen = [m.group(1) for m in env.camera_events(mark, pattern)]
                self.assertEqual(seen, ["rtsp request method=OPTIONS" if form.startswith("rtsp")
                                        else "http"], seen)
                self.assertEqual(self.metrics_delta(before, "camtunnel_frontend_bad_input_total",
                                                    reason="other_agent"), 1)

    # ------------------------------------------------------------------ not exposed

    def test_service_not_exposed_is_refused_without_open(self):
        env = self.env
        time.sleep(0.3)   # let earlier tests' camera log lines arrive
        before, mark = env.metrics(), env.camera_mark()
        logs_before = {a: env.agent_log(a).count(" tunnel ") for a in env.agents if a != "gone-tls"}
        refused = 0
        # CONNECT to a port and to a service name the agents did not expose.
        for target in ("cam-tls:9", "cam-plain:ssh", "rtsponly-tls:http",
                       "httponly-plain:%d" % env.rtsp_port):
            with self.subTest(connect=target):
                c = RawConn(env.fp)
                try:
                    c.send("CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (target, target))
                    status, head, body = c.read_message()
                finally:
                    c.close()
                self.assertEqual(status, 403, head)
                self.assertIn(b"not exposed", body)
                refused += 1
        # URLs of a service the agent does not have: real clients see the 403.
        with self.subTest(url="http host form, rtsp-only agent over TLS"):
            rc, out, err, _ = run(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}",
                                   env.host_url("rtsponly-tls", "/open.jpg", scheme="http")], 20)
            self.assertEqual(out, "403", err)
            refused += 1
        with self.subTest(url="http path form, rtsp-only agent over TLS"):
            rc, out, err, _ = run(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}",
                                   env.path_url("rtsponly-tls", "/open.jpg", scheme="http")], 20)
            self.assertEqual(out, "403", err)
            refused += 1
        for url in (env.host_url("httponly-plain", "/open"),
                    env.path_url("httponly-plain", "/open")):
            with self.subTest(url=url):
                rc, out, err = ffprobe(url)
                self.assertNotEqual(rc, 0, out)
                self.assertIn("403", err)
                refused += 1
        self.assertEqual(self.metrics_delta(before, "camtunnel_tunnels_opened_total",
                                            result="not_exposed"), refused)
        # No OPEN went out: no data connection came back, no tunnel opened, no agent saw one,
        # the camera saw nothing.
        self.assertEqual(self.metrics_delta(before, "camtunnel_agent_connections_total",
                                            kind="data"), 0)
        self.assertEqual(self.metrics_delta(before, "camtunnel_tunnels_opened_total",
                                            result="ok"), 0)
        time.sleep(0.3)   # room for log lines, which must not come
        self.assertEqual({a: env.agent_log(a).count(" tunnel ") for a in logs_before},
                         logs_before)
        self.assertEqual(env.camera_events(mark, r"^(rtsp request|http conn)"), [])

    # ------------------------------------------------------------------ other statuses

    def test_error_statuses_seen_by_real_clients(self):
        """What ffprobe and curl show for an unknown agent (404), an agent that was seen but is
        offline (503), and a camera that refuses the connection (502)."""
        env = self.env
        for agent, status in (("nosuch", 404), ("gone-tls", 503), ("deadcam-plain", 502)):
            with self.subTest(agent=agent, client="ffprobe host form"):
                rc, out, err = ffprobe(env.host_url(agent, "/open"))
                self.assertNotEqual(rc, 0, out)
                self.assertIn(str(status), err)
            with self.subTest(agent=agent, client="ffprobe path form"):
                rc, out, err = ffprobe(env.path_url(agent, "/open"))
                self.assertNotEqual(rc, 0, out)
                self.assertIn(str(status), err)
            with self.subTest(agent=agent, client="curl"):
                rc, out, err, _ = run(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}",
                                       env.path_url(agent, "/open.jpg", scheme="http")], 20)
                self.assertEqual(out, str(status), err)
            with self.subTest(agent=agent, client="curl -p (CONNECT)"):
                port = self.dead_port if agent == "deadcam-plain" else env.http_port
                rc, out, err, _ = run(["curl", "-sS", "-p", "-x", "http://127.0.0.1:%d" % env.fp,
                                       "http://%s:%d/open.jpg" % (agent, port)], 20)
                self.assertNotEqual(rc, 0)
                self.assertIn("CONNECT tunnel failed, response %d" % status, err)


if __name__ == "__main__":
    unittest.main()
