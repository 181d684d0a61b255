#!/usr/bin/python3
"""What docs/operations.md tells an operator to do, done against a real gateway and C++ agents:
health checks, the admin API calls it shows, kicking an agent (it comes back by itself), and
the streamer key rotation procedure (add the new key, SIGHUP, move agents, drop the old key,
SIGHUP) with the metrics that show each step.
"""

import json
import os
import socket
import tempfile
import unittest

import opslib
from opslib import Processes, make_dev_cert, wait_until


class AdminAndRotationTest(unittest.TestCase):
    def setUp(self):
        tmp = tempfile.TemporaryDirectory(prefix="ops-admin-")
        self.addCleanup(tmp.cleanup)
        self.dir = tmp.name
        self.echo = opslib.EchoServer()
        self.addCleanup(self.echo.close)
        self.procs = Processes(os.path.join(self.dir, "logs"))
        self.addCleanup(self.procs.stop_all)
        self.gw_bin = opslib.binary("camtunnel-gateway")
        self.agent_bin = opslib.binary("camtunnel-agent")
        self.cert, key = make_dev_cert(self.dir)
        self.keys = opslib.write_streamer_keys(self.gw_bin, self.dir, "k1")
        # A short reconnect window: a kicked agent comes back within it (10 s by default).
        self.gw = opslib.start_gateway(self.procs, self.gw_bin, self.cert, key, self.keys,
                                       extra=["--reconnect_window_ms=2000"])

    def start_agent(self, agent_id, key_id=None):
        key_ref, key_file = opslib.derive_agent_key(self.gw_bin, self.keys, agent_id, self.dir,
                                                    key_id=key_id)
        p = opslib.start_agent(self.procs, self.agent_bin, self.gw, agent_id, key_ref, key_file,
                               self.cert, ["echo=127.0.0.1:%d" % self.echo.port], name=agent_id)
        wait_until(lambda: agent_id in opslib.agent_ids(self.gw), 10, 0.05,
                   "%s connected" % agent_id)
        return p

    def get_json(self, method, path):
        status, body = opslib.http(method, self.gw.url(path))
        return status, (json.loads(body) if body.strip().startswith(b"{") else body)

    def metric(self, name, **labels):
        return opslib.scrape(self.gw.admin_port).get(name, **labels)

    def test_health_and_agent_api(self):
        self.assertEqual(opslib.http("GET", self.gw.url("/healthz")), (200, b"ok\n"))
        self.assertEqual(opslib.http("GET", self.gw.url("/readyz"))[0], 200)
        self.start_agent("cam-1")

        status, j = self.get_json("GET", "/api/v1/agents")
        self.assertEqual(status, 200)
        (agent,) = j["agents"]
        self.assertEqual(agent["id"], "cam-1")
        self.assertEqual(agent["services"], [{"name": "echo", "port": self.echo.port}])
        self.assertTrue(agent["version"].startswith("camtunnel-agent/"), agent)
        self.assertRegex(agent["remote"], r"^127\.0\.0\.1:\d+$")

        status, one = self.get_json("GET", "/api/v1/agents/cam-1")
        self.assertEqual(status, 200)
        self.assertEqual(one.get("id", one.get("agent", {}).get("id")), "cam-1", one)
        self.assertEqual(self.get_json("GET", "/api/v1/agents/cam-404")[0], 404)

        # A probe through the tunnel: the echo service is no camera, so the answer is judged
        # bad, but the tunnel itself opens (open_ms) and the JSON names the outcome.
        status, probe = self.get_json("POST", "/api/v1/agents/cam-1/probe?service=echo&path=/")
        self.assertEqual(status, 200, probe)
        self.assertEqual((probe["agent"], probe["service"]), ("cam-1", "echo"))
        self.assertIn("result", probe)
        self.assertGreater(probe["open_ms"], 0)

    def test_agents_paged_filtered_and_their_fields_after_known_traffic(self):
        for agent_id in ("cam-c", "cam-a", "cam-b"):
            self.start_agent(agent_id)
        # cam-b: one finished tunnel of 50,000 bytes each way, one left open with 7 bytes.
        payload = os.urandom(50_000)
        status, got = opslib.connect_tunnel(self.gw.frontend_port,
                                            "cam-b:%d" % self.echo.port, payload)
        self.assertEqual((status.split()[1], got == payload), ("200", True))
        s = socket.create_connection(("127.0.0.1", self.gw.frontend_port), timeout=10)
        self.addCleanup(s.close)
        s.sendall(b"CONNECT cam-b:%d HTTP/1.1\r\nHost: x\r\n\r\n" % self.echo.port)
        self.assertIn(b" 200 ", s.recv(4096))
        s.sendall(b"7 bytes")
        self.assertEqual(s.recv(100), b"7 bytes")
        # cam-c: kicked once, back with a second session.
        before = self.get_json("GET", "/api/v1/agents/cam-c")[1]["connected_since_ms"]
        self.get_json("DELETE", "/api/v1/agents/cam-c")
        wait_until(lambda: self.get_json("GET", "/api/v1/agents/cam-c")[1]
                   .get("connected_since_ms", before) != before, 20, 0.1, "cam-c back")

        def settled():
            a = self.get_json("GET", "/api/v1/agents/cam-b")[1]
            return a if a["open_tunnels"] == 1 and a["bytes_to_client"] == 50_007 else None
        b = wait_until(settled, 10, 0.05, "cam-b counters settle")
        self.assertEqual(b["id"], "cam-b")
        self.assertEqual(b["state"], "connected")
        shards = int(opslib.scrape(self.gw.admin_port).get("camtunnel_shards"))
        self.assertEqual(b["home_shard"], opslib.home_shard("cam-b", shards))
        self.assertRegex(b["remote"], r"^127\.0\.0\.1:\d+$")
        self.assertTrue(b["version"].startswith("camtunnel-agent/"), b)
        self.assertGreater(b["connected_since_ms"], 1.7e12)
        self.assertIsInstance(b["heartbeat_rtt_us"], int)
        self.assertIsInstance(b["last_status"], str)
        self.assertEqual(b["open_tunnels"], 1)
        self.assertEqual(b["tunnels_total"], 2)
        self.assertEqual(b["bytes_to_camera"], 50_007)
        self.assertEqual(b["bytes_to_client"], 50_007)
        self.assertEqual(b["reconnects"], 0)
        c = self.get_json("GET", "/api/v1/agents/cam-c")[1]
        self.assertEqual((c["reconnects"], c["open_tunnels"], c["tunnels_total"],
                          c["bytes_to_camera"]), (1, 0, 0, 0))

        # Pages of 2, in id order, with a cursor.
        status, p1 = self.get_json("GET", "/api/v1/agents?limit=2")
        self.assertEqual(status, 200)
        self.assertEqual([a["id"] for a in p1["agents"]], ["cam-a", "cam-b"])
        self.assertEqual((p1["total"], p1["next_cursor"]), (3, "cam-b"))
        status, p2 = self.get_json("GET", "/api/v1/agents?limit=2&cursor=cam-b")
        self.assertEqual([a["id"] for a in p2["agents"]], ["cam-c"])
        self.assertIsNone(p2["next_cursor"])
        # The default page holds everyone; the state filter.
        self.assertEqual(len(self.get_json("GET", "/api/v1/agents")[1]["agents"]), 3)
        st, conn = self.get_json("GET", "/api/v1/agents?state=connected")
        self.assertEqual(conn["total"], 3)
        st, closing = self.get_json("GET", "/api/v1/agents?state=closing")
        self.assertEqual((closing["total"], closing["agents"]), (0, []))
        for bad in ("limit=0", "limit=1001", "limit=x", "state=gone", "cursor=CAM", "page=2"):
            status, body = self.get_json("GET", "/api/v1/agents?" + bad)
            self.assertEqual(status, 400, bad)
            self.assertIn("error", body, bad)

    def test_kicked_agent_reconnects(self):
        self.start_agent("cam-1")
        since = self.get_json("GET", "/api/v1/agents/cam-1")[1]
        status, j = self.get_json("DELETE", "/api/v1/agents/cam-1")
        self.assertEqual((status, j), (200, {"kicked": True}))

        def reconnected():
            # A new session: another start time (the old one is listed as "closing" meanwhile).
            status, a = self.get_json("GET", "/api/v1/agents/cam-1")
            return (status == 200 and a["state"] == "connected"
                    and a["connected_since_ms"] != since["connected_since_ms"])
        wait_until(reconnected, 20, 0.1, "cam-1 back after the kick")
        self.assertEqual(self.metric("camtunnel_agents_connected"), 1)
        self.assertEqual(self.metric("camtunnel_agent_connections_total", kind="control",
                                     result="accepted"), 2)

    def test_denylist_revokes_a_live_agent_at_once_and_can_be_lifted(self):
        """PUT /api/v1/denylist/{id} (what the manager does on DEACTIVATE): the agent's session
        ends at once and its key, still valid until expiry, is refused (401, counted) on every
        reconnect; the other agents are untouched; DELETE lets it back in."""
        self.start_agent("cam-1")
        self.start_agent("cam-2")
        refused0 = self.metric("camtunnel_agent_connections_total", kind="control",
                               result="unauthorized")
        status, j = self.get_json("PUT", "/api/v1/denylist/cam-1")
        self.assertEqual((status, j), (200, {"denied": "cam-1", "kicked": True}))
        self.assertEqual(self.get_json("GET", "/api/v1/denylist"), (200, {"agents": ["cam-1"]}))
        wait_until(lambda: "cam-1" not in opslib.agent_ids(self.gw), 10, 0.05, "cam-1 gone")
        # The agent keeps trying (its key has not expired); each try is refused and counted.
        wait_until(lambda: self.metric("camtunnel_agent_connections_total", kind="control",
                                       result="unauthorized") > refused0, 20, 0.1,
                   "a refused reconnect of cam-1")
        self.assertNotIn("cam-1", opslib.agent_ids(self.gw))
        self.assertIn("cam-2", opslib.agent_ids(self.gw))
        for bad in ("Cam-1", "-x", "a" * 64):
            self.assertEqual(self.get_json("PUT", "/api/v1/denylist/" + bad)[0], 400, bad)
        self.assertEqual(self.get_json("POST", "/api/v1/denylist/cam-2")[0], 405)
        status, j = self.get_json("DELETE", "/api/v1/denylist/cam-1")
        self.assertEqual((status, j), (200, {"allowed": "cam-1", "was_denied": True}))
        self.assertEqual(self.get_json("DELETE", "/api/v1/denylist/cam-1")[0], 404)
        wait_until(lambda: "cam-1" in opslib.agent_ids(self.gw), 40, 0.1, "cam-1 back")

    def test_streamer_key_rotation_with_sighup(self):
        self.start_agent("cam-old")  # key derived from k1, the only key
        with open(self.keys) as f:
            k1_line = f.read()

        # 1. Add k2 as the first line (derive-key's default key), keep k1; SIGHUP.
        k2_line = opslib.run([self.gw_bin, "new-streamer-key", "k2"]).stdout
        with open(self.keys, "w") as f:
            f.write(k2_line + k1_line)
        opslib.sighup(self.gw.proc)
        # 2. An agent key derived now comes from k2 and is accepted; the k1 agent stays.
        key_ref, _ = opslib.derive_agent_key(self.gw_bin, self.keys, "probe", self.dir)
        self.assertTrue(key_ref.startswith("k2."), key_ref)
        self.start_agent("cam-new")
        self.assertEqual(opslib.agent_ids(self.gw), {"cam-old", "cam-new"})

        # 3. Drop k1; SIGHUP. Live sessions stay up; a k1 agent that reconnects is refused.
        with open(self.keys, "w") as f:
            f.write(k2_line)
        opslib.sighup(self.gw.proc)
        self.assertEqual(opslib.agent_ids(self.gw), {"cam-old", "cam-new"})
        refused_before = self.metric("camtunnel_agent_connections_total", kind="control",
                                     result="unauthorized")
        self.assertEqual(self.get_json("DELETE", "/api/v1/agents/cam-old")[0], 200)
        wait_until(lambda: self.metric("camtunnel_agent_connections_total", kind="control",
                                       result="unauthorized") > refused_before,
                   20, 0.1, "cam-old (k1) refused after k1 was removed")
        self.assertEqual(opslib.agent_ids(self.gw), {"cam-new"})
        self.assertEqual(self.metric("camtunnel_agents_connected"), 1)

    def test_sighup_with_a_broken_keys_file_keeps_the_old_keys(self):
        self.start_agent("cam-1")
        with open(self.keys, "w") as f:
            f.write("k1 not-hex\n")
        opslib.sighup(self.gw.proc, expect_ok=False)
        (failed,) = opslib.log_events(self.gw.proc, "config_reload_failed")
        self.assertIn("streamer", failed["error"].lower() + failed.get("kept", ""))
        self.assertNotIn("not-hex", failed["error"])
        self.assertTrue(self.gw.proc.alive())
        # The old k1 still verifies: a kicked agent gets back in.
        self.get_json("DELETE", "/api/v1/agents/cam-1")
        wait_until(lambda: self.metric("camtunnel_agent_connections_total", kind="control",
                                       result="accepted") == 2, 20, 0.1, "cam-1 back in")


if __name__ == "__main__":
    unittest.main(verbosity=2)
