#!/usr/bin/python3
"""`make demo` as a newcomer runs it: deploy/demo.sh (on free ports and a fresh state folder)
generates the dev certificate and streamer key, starts gateway, camera and agent, and prints an
rtsp:// URL on a line of its own; ffprobe plays that URL through the gateway and the agent's
TLS tunnel; Ctrl-C (SIGINT) stops everything with status 0 and frees every port."""

import os
import re
import signal
import socket
import subprocess
import tempfile
import time
import unittest

from harness import dual_stack_port
from support import ffprobe_frames, free_ports

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.environ.get("CAMTUNNEL_BUILD_DIR", os.path.join(TOP, "build", "release"))


def port_in_use(port):
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
            return False
        except OSError:
            return True


def read(path):
    with open(path) as f:
        return f.read()


class DemoTest(unittest.TestCase):

    def test_demo_prints_a_url_that_ffprobe_plays_and_stops_on_ctrl_c(self):
        with tempfile.TemporaryDirectory(prefix="e2e-demo-") as state:
            frontend = dual_stack_port()
            agent_port, admin, rtsp, http = free_ports(4)
            env = dict(os.environ, CAMTUNNEL_STATE=state,
                       CAMTUNNEL_FRONTEND_PORT=str(frontend),
                       CAMTUNNEL_AGENT_PORT=str(agent_port), CAMTUNNEL_ADMIN_PORT=str(admin),
                       CAMTUNNEL_CAMERA_RTSP_PORT=str(rtsp),
                       CAMTUNNEL_CAMERA_HTTP_PORT=str(http))
            out_path = os.path.join(state, "demo.stdout")
            with open(out_path, "w") as out:
                demo = subprocess.Popen(["bash", os.path.join(TOP, "deploy", "demo.sh"), BUILD],
                                        stdout=out, stderr=subprocess.STDOUT, env=env,
                                        start_new_session=True)
            try:
                url = None
                deadline = time.monotonic() + 60
                while url is None and time.monotonic() < deadline:
                    self.assertIsNone(demo.poll(), read(out_path))
                    m = re.search(r"^(rtsp://\S+)$", read(out_path), re.M)
                    url = m.group(1) if m else None
                    time.sleep(0.2)
                self.assertIsNotNone(url, read(out_path))
                self.assertEqual(url, "rtsp://127.0.0.1:%d/demo-cam/stream1" % frontend)
                for name in ("gateway.crt", "gateway.key", "streamer.keys", "agent.key"):
                    self.assertTrue(os.path.exists(os.path.join(state, name)), name)
                info = ffprobe_frames(url, 3)
                self.assertEqual(info["codec_name"], "h264", info["stderr"])
                self.assertGreaterEqual(info["nb_read_frames"], 50, info)
            finally:
                if demo.poll() is None:
                    # What a terminal's Ctrl-C does: SIGINT to the whole foreground group.
                    os.killpg(demo.pid, signal.SIGINT)
                try:
                    rc = demo.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    os.killpg(demo.pid, signal.SIGKILL)
                    demo.wait()
                    rc = None
            self.assertEqual(rc, 0, read(out_path))
            for port in (frontend, agent_port, admin, rtsp, http):
                self.assertFalse(port_in_use(port), "port %d still held after the demo" % port)


if __name__ == "__main__":
    unittest.main(verbosity=2)
