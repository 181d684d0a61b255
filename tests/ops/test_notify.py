#!/usr/bin/python3
"""systemd's readiness protocol (Type=notify): the gateway sends READY=1 once its listeners are
up, RELOADING=1 then READY=1 around a SIGHUP (also when the reload fails), STOPPING=1 when
SIGTERM starts the drain, each with a STATUS= line. The test plays systemd: NOTIFY_SOCKET names
a datagram socket it reads.
"""

import os
import signal
import socket
import unittest

import opslib


class NotifyTest(unittest.TestCase):
    def setUp(self):
        self.node = opslib.Node(self, "ops-notify-")
        path = self.node.path("notify.sock")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.addCleanup(self.sock.close)
        self.sock.bind(path)
        self.sock.settimeout(10)
        self.gw = self.node.start_gateway(env={"NOTIFY_SOCKET": path})

    def message(self):
        data = self.sock.recv(4096).decode()
        return dict(line.split("=", 1) for line in data.splitlines())

    def test_ready_reloading_stopping(self):
        ready = self.message()
        self.assertEqual(ready.get("READY"), "1", ready)
        self.assertEqual(ready.get("STATUS"), "serving")
        # READY=1 comes after the listeners: they answer now.
        self.assertEqual(opslib.http("GET", self.gw.url("/readyz"))[0], 200)

        self.gw.proc.signal(signal.SIGHUP)
        reloading = self.message()
        self.assertEqual(reloading.get("RELOADING"), "1", reloading)
        self.assertGreater(int(reloading["MONOTONIC_USEC"]), 0)
        self.assertEqual(self.message(), {"READY": "1", "STATUS": "serving (reloaded)"})

        with open(self.node.path("gateway.toml"), "a") as f:
            f.write("open_timeout_ms = -1\n")
        self.gw.proc.signal(signal.SIGHUP)
        self.assertEqual(self.message().get("RELOADING"), "1")
        self.assertEqual(self.message(),
                         {"READY": "1", "STATUS": "serving (reload failed, see the log)"})

        self.gw.proc.signal(signal.SIGTERM)
        self.assertEqual(self.message(), {"STOPPING": "1", "STATUS": "draining"})
        self.assertEqual(self.gw.proc.popen.wait(5), 0)


if __name__ == "__main__":
    unittest.main(verbosity=2)
