#!/usr/bin/python3
"""Ends of sessions as media servers really end them, through every link kind:

1. Bytes a client sends just before resetting its connection still reach the camera. Media
   servers end RTSP sessions with TEARDOWN and then close() with RTP still unread, which makes
   the kernel send an RST right behind the TEARDOWN. A direct connection delivers the TEARDOWN
   (checked first, as the fairness baseline); through the gateway and agent it must too, or the
   camera keeps streaming until the session times out. (The gateway and agent relay what they
   read before the error, and reset only once the peer acknowledged those bytes.)
2. A pipelined request naming another agent is answered 403 after the camera's answer to the
   earlier request: HTTP/1.1 and RTSP answers come in request order.
"""

import os
import re
import socket
import struct
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from media_env import MediaEnv, RawConn, module_tmpdir  # noqa: E402
from rtsp_client import RtspClient, connect_tcp  # noqa: E402

LINKS = ("cam-tls", "cam-plain")
ATTEMPTS = 10


def teardown_then_reset(host, port, url):
    """PLAY for a moment, send TEARDOWN, close at once with an RST (SO_LINGER 0), as a client
    that closes with unread RTP does. Returns the session id.

    The send and the close run pinned to one CPU: on loopback each CPU queues the packets it
    sends in its own backlog, so a thread that moved between the two could have its RST
    delivered before its TEARDOWN (the peer then never sees it, with or without a gateway in
    between). A real network path keeps the order; the test must too, or it measures the
    scheduler instead of the relay."""
    s = connect_tcp(host, port)
    c = RtspClient(s)
    res = c.stream(url, 0.3, teardown=False)
    cpus = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(cpus)})
    try:
        c.send_request("TEARDOWN", res["content_base"])
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()
    finally:
        os.sched_setaffinity(0, cpus)
    return res["session"]


class MediaResetTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        tmp, cleanup = module_tmpdir("e2e-media-reset-")
        cls.addClassCleanup(cleanup)
        cls.env = MediaEnv(tmp, [("cam-tls", True, ["rtsp", "http"]),
                                 ("cam-plain", False, ["rtsp", "http"])]).start()
        cls.addClassCleanup(cls.env.stop_and_check)

    def teardowns_seen(self, sessions):
        """How many of `sessions` the camera saw a TEARDOWN for, waiting up to 5 s for the
        last ones (a loaded machine delays them; a lost one never comes)."""
        deadline = time.monotonic() + 5
        while True:
            seen = {m.group(1) for m in self.env.camera_events(
                0, r"^rtsp request method=TEARDOWN uri=\S+ session=(\S+) ")}
            found = len(set(sessions) & seen)
            if found == len(sessions) or time.monotonic() > deadline:
                return found
            time.sleep(0.1)

    def test_teardown_before_reset_reaches_camera(self):
        env = self.env
        # Fairness check: straight to the camera, every TEARDOWN arrives.
        direct = [teardown_then_reset("127.0.0.1", env.rtsp_port, env.camera_rtsp_url("/open"))
                  for _ in range(ATTEMPTS)]
        self.assertEqual(self.teardowns_seen(direct), ATTEMPTS)
        for agent in LINKS:
            with self.subTest(link=agent):
                sessions = [teardown_then_reset("127.0.0.1", env.fp,
                                                env.host_url(agent, "/open"))
                            for _ in range(ATTEMPTS)]
                self.assertEqual(self.teardowns_seen(sessions), ATTEMPTS,
                                 "TEARDOWNs lost through the gateway (%s link)" % agent)

    def test_pipelined_request_for_other_agent_keeps_response_order(self):
        fp = self.env.fp
        for a, b in (("cam-tls", "cam-plain"), ("cam-plain", "cam-tls")):
            with self.subTest(proto="http", first=a, then=b):
                c = RawConn(fp)
                try:
                    c.send("GET /%s/open.jpg HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n"
                           "GET /%s/open.jpg HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n"
                           % (a, fp, b, fp))
                    statuses = []
                    while True:
                        m = c.read_message()
                        if m is None:
                            break
                        statuses.append(m[0])
                finally:
                    c.close()
                self.assertEqual(statuses, [200, 403])
            with self.subTest(proto="rtsp", first=a, then=b):
                c = RawConn(fp)
                try:
                    c.send("OPTIONS rtsp://127.0.0.1:%d/%s/open RTSP/1.0\r\nCSeq: 1\r\n\r\n"
                           "DESCRIBE rtsp://127.0.0.1:%d/%s/open RTSP/1.0\r\nCSeq: 2\r\n\r\n"
                           % (fp, a, fp, b))
                    answers = []
                    while True:
                        m = c.read_message()
                        if m is None:
                            break
                        answers.append((m[0], re.search(r"CSeq: (\d+)", m[1]).group(1)))
                finally:
                    c.close()
                self.assertEqual(answers, [(200, "1"), (403, "2")])


if __name__ == "__main__":
    unittest.main()
