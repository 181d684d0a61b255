#!/usr/bin/python3
"""The frontend's guards (docs/security.md): a source allowlist (403 to anyone outside it) and a
bearer token for HTTP and CONNECT requests in Proxy-Authorization (407 without it; RTSP clients
cannot send one and are guarded by the allowlist alone). Refusals are counted, the token never
reaches the camera and never appears in the log. Tested on loopback: the listener is on
127.0.0.1 and the allowlist names 127.0.0.2/32, so a client bound to 127.0.0.2 is "allowed"
and one on 127.0.0.1 is not. (Refusing to start beyond loopback is in test_config.)
"""

import unittest

import opslib

ALLOWED_SOURCE = "127.0.0.2"


class FrontendAuthTest(unittest.TestCase):
    def setUp(self):
        self.node = opslib.Node(self, "ops-frontend-")
        self.token, token_path = opslib.token_file(self.node.dir)
        self.gw = self.node.start_gateway(frontend_allow=[ALLOWED_SOURCE + "/32", "2001:db8::/32"],
                                          frontend_token_file=token_path, log_level="debug")
        self.node.start_agent("cam-1", services=["echo=127.0.0.1:%d" % self.node.echo.port,
                                                 "http=127.0.0.1:%d" % self.node.echo.port])

    def connect(self, token=None, source=ALLOWED_SOURCE, scheme="Bearer"):
        target = "cam-1:%d" % self.node.echo.port
        head = "CONNECT %s HTTP/1.1\r\nHost: %s\r\n" % (target, target)
        if token:
            head += "Proxy-Authorization: %s %s\r\n" % (scheme, token)
        return opslib.frontend_head(self.gw.frontend_port, (head + "\r\n").encode(),
                                    source=source)

    def refused(self, reason):
        return self.gw.scrape().get("camtunnel_frontend_refused_total", reason=reason)

    def test_source_outside_the_allowlist_gets_403(self):
        status, answer = self.connect(self.token, source="127.0.0.1")
        self.assertEqual(status, "HTTP/1.1 403 Forbidden")
        self.assertIn(b"source address not allowed", answer)
        rtsp = b"DESCRIBE rtsp://cam-1.localhost/s RTSP/1.0\r\nCSeq: 2\r\n\r\n"
        status, answer = opslib.frontend_head(self.gw.frontend_port, rtsp, source="127.0.0.1")
        self.assertTrue(status.startswith("RTSP/1.0 403 Forbidden"), status)
        self.assertIn(b"CSeq: 2", answer)
        self.assertEqual(self.refused("source"), 2)
        self.assertEqual(self.refused("token"), 0)

    def test_connect_needs_the_token(self):
        for token, scheme in ((None, "Bearer"), ("x" * 48, "Bearer"),
                              (self.token[:-1], "Bearer"), (self.token, "Basic")):
            status, answer = self.connect(token, scheme=scheme)
            self.assertEqual(status, "HTTP/1.1 407 Proxy Authentication Required", token)
            self.assertIn(b'Proxy-Authenticate: Bearer realm="camtunnel"', answer)
        self.assertEqual(self.refused("token"), 4)
        self.assertEqual(self.connect(self.token)[0], "HTTP/1.1 200 Connection established")
        m = self.gw.scrape()
        self.assertEqual(m.get("camtunnel_frontend_requests_total", protocol="connect",
                               status="407"), 4)
        self.assertEqual(m.get("camtunnel_frontend_requests_total", protocol="connect",
                               status="101"), 1)

    def test_rtsp_is_not_asked_for_a_token(self):
        rtsp = b"DESCRIBE rtsp://nobody.localhost/s RTSP/1.0\r\nCSeq: 3\r\n\r\n"
        status, _ = opslib.frontend_head(self.gw.frontend_port, rtsp, source=ALLOWED_SOURCE)
        self.assertTrue(status.startswith("RTSP/1.0 404"), status)  # routed, not refused
        self.assertEqual(self.refused("token"), 0)

    def test_http_needs_the_token_and_the_camera_never_sees_it(self):
        bare = b"GET /snap HTTP/1.1\r\nHost: cam-1.localhost\r\n\r\n"
        status, _ = opslib.frontend_head(self.gw.frontend_port, bare, source=ALLOWED_SOURCE)
        self.assertEqual(status, "HTTP/1.1 407 Proxy Authentication Required")
        # The "camera" is the echo service: what comes back is what it received.
        head = ("GET /snap HTTP/1.1\r\nHost: cam-1.localhost\r\nProxy-Authorization: Bearer %s"
                "\r\nAuthorization: Basic Y2FtOmNhbQ==\r\nX-After: 1\r\n\r\n" % self.token)
        status, echoed = opslib.frontend_head(self.gw.frontend_port, head.encode(),
                                              source=ALLOWED_SOURCE)
        self.assertEqual(echoed, b"GET /snap HTTP/1.1\r\nHost: cam-1.localhost\r\n"
                                 b"Authorization: Basic Y2FtOmNhbQ==\r\nX-After: 1\r\n\r\n")

    def test_the_token_never_appears_in_the_log(self):
        self.connect("y" * 40)
        self.connect(self.token)
        self.connect(self.token, source="127.0.0.1")
        with open(self.gw.proc.err_path) as f:
            log = f.read()
        self.assertNotIn(self.token, log)
        self.assertNotIn("y" * 40, log)


if __name__ == "__main__":
    unittest.main(verbosity=2)
