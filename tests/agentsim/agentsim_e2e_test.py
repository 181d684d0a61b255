#!/usr/bin/python3
"""camtunnel-agentsim against the real gateway: every scenario, small and bounded, asserting the
expected counts and zero integrity errors; proof that each failure detector fires (cameras that
misbehave on purpose, a relay that corrupts bytes); ffprobe playing a simulated camera.

Run one case: agentsim_e2e_test.py SteadyTest.test_...; all: agentsim_e2e_test.py.
Binaries: $CAMTUNNEL_GATEWAY / $CAMTUNNEL_AGENTSIM / $CAMTUNNEL_MANAGER (set by ctest), else the
usual build dirs. ManagedTest runs agentsim's managed mode against a real camtunnel-manager;
SeveralManagersTest, DatabaseOutageTest and DatabaseFailoverTest run managers on a throwaway
PostgreSQL cluster (with a streaming standby for failover) and take the database away under them.
Everything binds 127.0.0.x port 0 (except the restart test, which must reuse its ports), and
every process is stopped by PID.
"""

import functools
import json
import os
import pty
import re
import resource
import select
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "e2e"))
from support import (Processes, ffprobe_frames, find_binary, free_port,  # noqa: E402
                     make_dev_cert, wait_until)

GATEWAY = os.environ.get("CAMTUNNEL_GATEWAY") or find_binary("camtunnel-gateway", "gateway")
AGENTSIM = os.environ.get("CAMTUNNEL_AGENTSIM") or find_binary("camtunnel-agentsim", "agentsim")
MANAGER = os.environ.get("CAMTUNNEL_MANAGER") or find_binary("camtunnel-manager", "manager")
SOURCES = "127.0.0.2-127.0.0.9"
# No case here is about the gateway's handshake deadline (5 s by default, from accept to HELLO):
# on a busy machine hundreds of agents connecting at once can outlast it, and their attempts
# would fail for want of CPU. Cases that care give their own.
HANDSHAKE_TIMEOUT_MS = 30000
# Failures an agent may see while it connects when the machine is busy (its own 5 s deadline,
# the gateway closing a handshake); it then tries again. Any other failure, or a session lost
# once up, is a finding.
HANDSHAKE_FAILURES = {"timeout", "closed_in_handshake"}


class Gateway:
    def __init__(self, proc, ports):
        self.proc = proc
        self.tls, self.plain, self.frontend, self.admin = ports

    @property
    def pid(self):
        return self.proc.pid


def start_gateway(procs, tmp, plain_port=0, frontend_port=0, extra=()):
    keys = os.path.join(tmp, "keys")
    if not os.path.exists(keys):
        with open(keys, "w") as f:
            subprocess.run([GATEWAY, "new-streamer-key", "k1"], check=True, stdout=f)
        make_dev_cert(tmp)
    argv = [GATEWAY, "--agent_tls_listen=127.0.0.1:0",
            "--agent_plain_listen=127.0.0.1:%d" % plain_port,
            "--cert=%s" % os.path.join(tmp, "dev.crt"), "--key=%s" % os.path.join(tmp, "dev.key"),
            "--allow_plain_with_tls", "--streamer_keys=%s" % keys,
            "--frontend_listen=127.0.0.1:%d" % frontend_port, "--admin_listen=127.0.0.1:0",
            "--log_level=warning", "--handshake_timeout_ms=%d" % HANDSHAKE_TIMEOUT_MS] + list(extra)
    p = procs.start("gateway", argv)
    m = p.wait_line(r"ready agent_tls=(\d+) agent_plain=(\d+) frontend=(\d+) admin=(\d+)", 60)
    return Gateway(p, [int(x) for x in m.groups()])


def tunnels_on_data_connections(report):
    """Tunnels that got a data connection: dialed on OPEN ("ok"), or opened on a spare
    (PROTOCOL.md 8.1). No dial may have failed."""
    dialed = report["agents"]["data_connections"]
    assert set(dialed) <= {"ok", "spare"}, dialed
    return dialed.get("ok", 0) + report["agents"]["spares"].get("opened", 0)


class SimTestCase(unittest.TestCase):
    """A temporary directory, a process list, and helpers to run agentsim."""

    def setUp(self):
        if not GATEWAY or not AGENTSIM:
            self.skipTest("camtunnel-gateway / camtunnel-agentsim not built")
        self.tmpdir = tempfile.TemporaryDirectory(prefix="agentsim-e2e-")
        self.addCleanup(self.tmpdir.cleanup)
        self.tmp = self.tmpdir.name
        self.procs = Processes(os.path.join(self.tmp, "logs"))
        self.addCleanup(self.procs.stop_all)

    def gateway(self, **kw):
        return start_gateway(self.procs, self.tmp, **kw)

    def sim_argv(self, gw, scenario, tls=False, frontend=None, args=()):
        argv = [AGENTSIM, scenario, "--streamer_keys", os.path.join(self.tmp, "keys"),
                "--json_out", os.path.join(self.tmp, "report.json")]
        if tls:
            argv += ["--gateway_agent", "localhost:%d" % gw.tls, "--tls",
                     "--ca", os.path.join(self.tmp, "dev.crt")]
        else:
            argv += ["--gateway_agent", "127.0.0.1:%d" % gw.plain, "--plain"]
        argv += ["--frontend", frontend or "127.0.0.1:%d" % gw.frontend]
        return argv + [str(a) for a in args]

    def run_sim(self, argv, timeout=150, expect_rc=0):
        r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           timeout=timeout)
        self.assertEqual(r.returncode, expect_rc,
                         "agentsim exit %d\nstdout:\n%s\nstderr:\n%s"
                         % (r.returncode, r.stdout, r.stderr[-3000:]))
        with open(os.path.join(self.tmp, "report.json")) as f:
            return json.load(f)

    def assertAllConnected(self, report, agents):
        """Every agent came up and stayed up: no session lost, no reconnect, no GOAWAY. An
        attempt that failed in its handshake (the machine was busy) and succeeded on a retry is
        fine."""
        a = report["agents"]
        self.assertEqual((a["up_at_end_of_load"], a["sessions"]), (agents, agents), a)
        self.assertEqual((a["reconnects"], a["goaways"]), (0, 0), a)
        self.assertLessEqual(set(a["failures"]), HANDSHAKE_FAILURES, a["failures"])

    def assertIntact(self, report):
        self.assertEqual(report["integrity_errors"]["total"], 0, report["integrity_errors"])
        self.assertEqual(report["result"], "pass")


class SteadyTest(SimTestCase):
    def test_steady_tls_500_agents_50_streams_verify_every_packet(self):
        gw = self.gateway()
        r = self.run_sim(self.sim_argv(gw, "steady", tls=True, args=[
            "--agents", 500, "--streams", 50, "--bitrate", "256k", "--duration", 8,
            "--sources", SOURCES, "--connect_concurrency", 64]))
        self.assertEqual(r["agents"]["configured"], 500)
        self.assertAllConnected(r, 500)
        self.assertIsNotNone(r["agents"]["time_to_connect_all_s"])
        # 50 sessions from start to TEARDOWN, every open answered by its camera.
        self.assertEqual(r["rtsp_sessions"], {"completed": 50})
        self.assertEqual(r["opens"]["by_result"], {"ok": 50})
        self.assertEqual(tunnels_on_data_connections(r), 50)
        # 8 s x 50 streams x 25 fps, each frame several packets: every one checked.
        self.assertGreater(r["packets_verified"], 50 * 25 * 6)
        self.assertGreater(r["bytes_verified"], 50 * 256000 / 8 * 6)
        self.assertGreater(r["opens"]["latency"]["p99_ms"], 0)
        # 50 opens on 500 agents: nearly all are their agent's first, none more than once.
        first = r["opens"]["latency_first_per_agent"]["count"]
        self.assertEqual(first + r["opens"]["latency_later"]["count"], 50)
        self.assertGreater(first, 35)
        self.assertIntact(r)

    def test_tls_connections_resume_the_agents_session_unless_told_not_to(self):
        """Like the real agent, each simulated agent resumes its newest TLS session on its data
        connections; the gateway counts full and resumed handshakes apart."""
        gw = self.gateway()

        def handshakes():
            text = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % gw.admin,
                                          timeout=5).read().decode()
            return {k: int(float(v)) for k, v in re.findall(
                r'^camtunnel_agent_tls_handshakes_total\{kind="(\w+)"\} (\S+)$', text, re.M)}

        for resume in (True, False):
            before = handshakes()
            args = ["--agents", 20, "--snapshot_rate", 20, "--duration", 3, "--sources", SOURCES]
            r = self.run_sim(self.sim_argv(gw, "steady", tls=True,
                                           args=args + ([] if resume else ["--notls_resume"])))
            self.assertIntact(r)
            dialed = r["agents"]["data_connections"]
            data = dialed.get("ok", 0) + dialed.get("spare", 0)
            self.assertGreater(data, 20)
            seen = r["agents"]["tls_handshakes"]
            full, resumed = seen.get("full", 0), seen.get("resumed", 0)
            # One handshake per agent session and per data connection; on a busy machine an
            # agent's attempt may fail after its TLS handshake and be made again.
            self.assertAllConnected(r, 20)
            retried = r["agents"]["connect_attempts"] - 20
            self.assertGreaterEqual(full + resumed, 20 + data)
            self.assertLessEqual(full + resumed, 20 + data + retried)
            if resume:
                # TLS 1.3 tickets come after the handshake: on a busy machine an agent's first
                # data connection may start before its ticket arrived and do a full handshake.
                # Every later one resumes.
                self.assertGreaterEqual(resumed, data - 20)
            else:
                self.assertEqual(resumed, 0)
            # The client's Finished is the handshake's last message: the gateway may still have
            # the last few to read when agentsim exits. Wait for them (the deadline bounds a
            # hang), then the counts must agree exactly.
            expected = {"full": full, "resumed": resumed}
            delta = lambda: {k: v - before.get(k, 0) for k, v in handshakes().items()}
            try:
                wait_until(lambda: delta() == expected, 30, what="the gateway's handshake count")
            except TimeoutError:
                pass
            self.assertEqual(delta(), expected)

    def test_steady_plain_with_snapshots_and_metrics(self):
        gw = self.gateway(extra=["--heartbeat_ms=500"])
        argv = self.sim_argv(gw, "steady", args=[
            "--agents", 100, "--streams", 5, "--snapshot_rate", 30, "--snapshot_size", "100k",
            "--duration", 8, "--metrics_listen", "127.0.0.1:0"])
        sim = self.procs.start("agentsim", argv)
        port = int(sim.wait_line(r"agentsim: metrics port=(\d+)", 60).group(1))
        sim.wait_line(r"agentsim: agents-up 100/100", 60)

        def scrape():
            text = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=5)
            text = text.read().decode()
            live = re.search(r"^camtunnel_agentsim_live_verified_packets (\S+)$", text, re.M)
            msgs = {k: float(v) for k, v in re.findall(
                r'^camtunnel_agentsim_agent_control_messages_total\{kind="(\w+)"\} (\S+)$',
                text, re.M)}
            return text, float(live.group(1)), msgs

        # Scraped while the load runs (8 s): until the live figures have grown, 6 s at most.
        deadline = time.monotonic() + 6
        while True:
            text, live, msgs = scrape()
            grown = live > 5 * 25 and msgs["ping_sent"] + msgs["ping_answered"] > 100 * 2
            if grown or time.monotonic() > deadline:
                break
            time.sleep(0.25)
        self.assertIn("camtunnel_agentsim_agents_up 100", text)
        self.assertIn('camtunnel_agentsim_opens_total{result="ok"}', text)
        self.assertIn("camtunnel_agentsim_open_latency_seconds_bucket", text)
        # Sessions still running already show what they verified, and their errors (none).
        self.assertGreater(live, 5 * 25, text)
        for kind in ("lost", "duplicate", "reordered", "corrupt"):
            self.assertIn('camtunnel_agentsim_live_integrity_errors{kind="%s"} 0' % kind, text)
        # Heartbeats (WELCOME says every 500 ms: the agent pings when it has been quiet, else it
        # answers the gateway's) and a STATUS per session.
        self.assertGreaterEqual(msgs["status_sent"], 100, msgs)
        self.assertGreater(msgs["ping_sent"] + msgs["ping_answered"], 100 * 2, msgs)
        self.assertEqual(sim.wait(90), 0, sim.stderr_tail())
        with open(os.path.join(self.tmp, "report.json")) as f:
            r = json.load(f)
        self.assertGreaterEqual(r["snapshots"].get("ok", 0), 60)
        self.assertEqual(set(r["snapshots"]) - {"ok", "stopped"}, set())
        self.assertEqual(r["rtsp_sessions"], {"completed": 5})
        self.assertGreater(r["bytes_verified"], 60 * 100000)
        a = r["agents"]
        self.assertGreaterEqual(a["status_sent"], 100)
        # A heartbeat each 500 ms either way; the gateway answers every agent PING (one still in
        # flight when the run stops may go unanswered).
        self.assertGreater(a["pings_sent"] + a["pings_answered"], 100 * 5)
        self.assertGreater(a["pings_sent"], 0)
        self.assertGreaterEqual(a["pongs_received"], a["pings_sent"] - 100)
        self.assertEqual(a["heartbeat_timeouts"], 0)
        self.assertIntact(r)


class ScenarioTest(SimTestCase):
    def test_churn_keeps_streams_intact(self):
        gw = self.gateway()
        # 20 agents for 10 streams: most drops hit an agent whose camera is streaming.
        r = self.run_sim(self.sim_argv(gw, "churn", args=[
            "--agents", 20, "--streams", 10, "--stream_seconds", 1, "--bitrate", "256k",
            "--duration", 4, "--churn_rate", 10, "--churn_down_ms", 300]))
        self.assertGreaterEqual(r["scenario_detail"]["drops"], 35)
        self.assertGreaterEqual(r["agents"]["reconnects"], 30)
        self.assertLessEqual(set(r["agents"]["failures"]), HANDSHAKE_FAILURES, r["agents"])
        # The policy's promise: a churned agent's tunnels are separate connections and live on,
        # so no session is ever interrupted; a new one every second per stream keeps opening.
        sessions = r["rtsp_sessions"]
        self.assertNotIn("interrupted", sessions)
        self.assertGreaterEqual(sessions.get("completed", 0), 30, sessions)
        opens = r["opens"]["by_result"]
        self.assertEqual(opens["ok"], sessions["completed"])
        self.assertEqual(tunnels_on_data_connections(r), opens["ok"])
        # An open may race its agent's drop (the gateway answers 503): rare, bounded.
        self.assertEqual(set(opens) - {"ok", "rtsp_503"}, set(), opens)
        self.assertLessEqual(r["opens"]["failed"], 5, opens)
        self.assertGreater(r["packets_verified"], 30 * 25 * 2)
        self.assertIntact(r)

    def test_storm_self_all_agents_come_back(self):
        gw = self.gateway()
        r = self.run_sim(self.sim_argv(gw, "storm", tls=True, args=[
            "--agents", 300, "--duration", 60, "--storm_after", 1, "--noreconnect_window",
            "--streams", 5, "--stream_seconds", 1, "--bitrate", "256k", "--after_storm", 2]))
        storm = r["scenario_detail"]
        self.assertTrue(storm["recovered"], storm)
        self.assertEqual(storm["agents_dropped"], 300)
        self.assertGreater(storm["recovery_s"], 0)
        self.assertGreaterEqual(storm["reconnect_attempts"], 300)
        self.assertEqual(r["agents"]["reconnects"], 300)
        self.assertEqual(r["agents"]["sessions"], 600)
        self.assertEqual(r["agents"]["up_at_end_of_load"], 300)
        # Streams live through the storm (tunnels are not the control connection) and new ones
        # open on the reconnected agents: 5 streams x 1 s sessions, 2 s of them after recovery.
        sessions = r["rtsp_sessions"]
        self.assertNotIn("interrupted", sessions)
        self.assertGreaterEqual(sessions.get("completed", 0), 12, sessions)
        self.assertGreaterEqual(r["opens"]["by_result"]["ok"], 12)
        self.assertGreater(r["packets_verified"], 12 * 25 * 2)
        self.assertIntact(r)
        # Recovery ends the load phase early: far less than --duration.
        self.assertLess(r["throughput"]["load_s"], 45)

    def test_open_rate_ramps_and_reports_steps(self):
        gw = self.gateway()
        r = self.run_sim(self.sim_argv(gw, "open-rate", args=[
            "--agents", 50, "--duration", 10, "--start_rate", 20, "--rate_step", 40,
            "--step_seconds", 1, "--max_rate", 100,
            # Not about latency: a busy machine's slow opens must not end the ramp.
            "--max_p99_ms", 5000]))
        d = r["scenario_detail"]
        self.assertEqual(d["stop_reason"], "max_rate", d)
        self.assertEqual(d["sustained_rate_per_s"], 100)
        self.assertEqual([s["rate_per_s"] for s in d["steps"]], [20, 60, 100])
        self.assertTrue(all(s["passed"] and s["failures"] == 0 for s in d["steps"]), d)
        self.assertGreater(r["opens"]["by_result"]["ok"], 150)
        self.assertIntact(r)

    def test_open_rate_stops_on_latency_and_on_errors(self):
        gw = self.gateway()
        # A slowed path (every open waits 60 ms) against --max_p99_ms 30, then one that drops
        # every other connection unanswered: the first step fails, for the named reason.
        cases = [("p99", SlowRelay(gw.frontend, delay_s=0.06), ["--max_p99_ms", 30]),
                 ("errors", SlowRelay(gw.frontend, drop_every=2), ["--max_p99_ms", 5000])]
        for reason, relay, extra in cases:
            with self.subTest(stop=reason):
                self.addCleanup(relay.close)
                r = self.run_sim(self.sim_argv(
                    gw, "open-rate", frontend="127.0.0.1:%d" % relay.port, args=[
                        "--agents", 20, "--duration", 10, "--start_rate", 20, "--rate_step", 20,
                        "--step_seconds", 1, "--max_rate", 100] + extra))
                d = r["scenario_detail"]
                self.assertEqual(d["stop_reason"], reason, d)
                self.assertEqual(d["sustained_rate_per_s"], 0, d)
                self.assertEqual(len(d["steps"]), 1, d)
                step = d["steps"][0]
                self.assertFalse(step["passed"], d)
                self.assertGreaterEqual(step["opens"], 10, d)
                if reason == "p99":
                    self.assertGreater(step["p99_ms"], 30, d)
                    self.assertEqual(step["failures"], 0, d)
                else:
                    self.assertGreaterEqual(step["failures"], step["opens"] // 2 - 2, d)
                self.assertIntact(r)  # failed opens are not integrity errors

    def test_soak_samples_the_gateway_process(self):
        gw = self.gateway()
        r = self.run_sim(self.sim_argv(gw, "soak", args=[
            "--agents", 50, "--duration", 4, "--gateway_pid", gw.pid]))
        g = r["process"]["gateway"]
        self.assertEqual(g["pid"], gw.pid)
        self.assertGreaterEqual(len(g["samples"]), 3)
        self.assertGreater(g["rss_bytes_max"], 1 << 20)
        # soak's default mixed load: 10 streams, 5 snapshots/s, 0.5 drops/s, all agents back.
        self.assertEqual(r["rtsp_sessions"], {"completed": 10})
        self.assertGreaterEqual(r["snapshots"].get("ok", 0), 15, r["snapshots"])
        self.assertEqual(set(r["snapshots"]) - {"ok", "stopped", "failed"}, set())
        self.assertGreaterEqual(r["scenario_detail"]["drops"], 1)
        self.assertGreaterEqual(r["agents"]["reconnects"], 1)
        self.assertEqual(r["agents"]["up_at_end_of_load"], 50)
        self.assertLessEqual(set(r["agents"]["failures"]), HANDSHAKE_FAILURES, r["agents"])
        self.assertGreater(r["packets_verified"], 10 * 25 * 3)
        self.assertIntact(r)


class CorruptingRelay:
    """TCP relay between agentsim's media side and the frontend that flips one payload byte in
    every `every`-th interleaved RTP packet (camera -> media server); RTSP heads pass intact."""

    def __init__(self, upstream_port, every=20):
        self.upstream_port = upstream_port
        self.every = every
        self.flipped = 0
        self.conns = []
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            up = socket.create_connection(("127.0.0.1", self.upstream_port))
            self.conns += [client, up]
            threading.Thread(target=self._copy, args=(client, up), daemon=True).start()
            threading.Thread(target=self._corrupt, args=(up, client), daemon=True).start()

    @staticmethod
    def _copy(src, dst):
        try:
            while True:
                d = src.recv(65536)
                if not d:
                    break
                dst.sendall(d)
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def _corrupt(self, src, dst):
        buf = bytearray()
        packets = 0
        try:
            while True:
                d = src.recv(65536)
                if not d:
                    break
                buf += d
                out = bytearray()
                while buf:
                    if buf[0] == 0x24:  # '$'
                        if len(buf) < 4:
                            break
                        n = 4 + (buf[2] << 8 | buf[3])
                        if len(buf) < n:
                            break
                        frame = buf[:n]
                        if buf[1] == 0:
                            packets += 1
                            if packets % self.every == 0:
                                frame[-1] ^= 0x5a  # inside the CRC-covered payload
                                self.flipped += 1
                        out += frame
                        del buf[:n]
                        continue
                    end = buf.find(b"\r\n\r\n")
                    if end < 0:
                        break
                    m = re.search(rb"(?i)\r\ncontent-length:\s*(\d+)", buf[:end + 2])
                    n = end + 4 + (int(m.group(1)) if m else 0)
                    if len(buf) < n:
                        break
                    out += buf[:n]
                    del buf[:n]
                dst.sendall(out)
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def close(self):
        for s in [self.sock] + self.conns:
            s.close()


class SlowRelay:
    """TCP relay in front of the frontend that makes opens slow (each connection waits
    `delay_s` before it is forwarded) or fail (every `drop_every`-th connection is closed
    unanswered)."""

    def __init__(self, upstream_port, delay_s=0.0, drop_every=0):
        self.upstream_port = upstream_port
        self.delay_s = delay_s
        self.drop_every = drop_every
        self.accepted = 0
        self.conns = []
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            if self.drop_every and self.accepted % self.drop_every == 0:
                client.close()
                continue
            self.conns.append(client)
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client):
        time.sleep(self.delay_s)
        try:
            up = socket.create_connection(("127.0.0.1", self.upstream_port))
        except OSError:
            client.close()
            return
        self.conns.append(up)
        threading.Thread(target=CorruptingRelay._copy, args=(up, client), daemon=True).start()
        CorruptingRelay._copy(client, up)

    def close(self):
        for s in [self.sock] + self.conns:
            s.close()


class FaultTest(SimTestCase):
    def test_camera_faults_are_reported_by_kind(self):
        gw = self.gateway()
        kinds = {"drop": "lost", "duplicate": "duplicate", "reorder": "reordered"}
        for fault, kind in kinds.items():
            with self.subTest(fault=fault):
                r = self.run_sim(self.sim_argv(gw, "steady", args=[
                    "--agents", 10, "--streams", 4, "--duration", 2, "--camera_fault", fault,
                    "--fault_every", 50]), expect_rc=1)
                errors = r["integrity_errors"]
                injected = r["cameras"]["faults_injected"]
                self.assertGreater(injected, 10)
                self.assertEqual(r["result"], "integrity_errors")
                self.assertEqual(errors["corrupt"], 0, errors)
                if fault == "reorder":
                    # A packet held back at the very end of a session never follows: lost.
                    self.assertGreaterEqual(errors["reordered"], injected - 4, errors)
                    self.assertLessEqual(errors["lost"], 4, errors)
                    self.assertEqual(errors["duplicate"], 0, errors)
                else:
                    self.assertEqual(errors[kind], injected, errors)
                    self.assertEqual(errors["total"], injected, errors)

    def test_corrupting_relay_is_reported_as_corrupt(self):
        gw = self.gateway()
        relay = CorruptingRelay(gw.frontend, every=20)
        self.addCleanup(relay.close)
        r = self.run_sim(self.sim_argv(gw, "steady", frontend="127.0.0.1:%d" % relay.port, args=[
            "--agents", 10, "--streams", 4, "--duration", 2]), expect_rc=1)
        errors = r["integrity_errors"]
        self.assertGreater(relay.flipped, 10)
        self.assertEqual(errors["corrupt"], relay.flipped, errors)
        self.assertEqual(errors["lost"] + errors["duplicate"] + errors["reordered"], 0, errors)
        self.assertEqual(r["rtsp_sessions"], {"completed": 4})


class InteropTest(SimTestCase):
    def test_ffprobe_plays_a_simulated_camera_through_the_gateway(self):
        gw = self.gateway()
        sim = self.procs.start("agentsim", self.sim_argv(gw, "steady", args=[
            "--agents", 3, "--duration", 30, "--bitrate", "300k"]))
        sim.wait_line(r"agentsim: agents-up 3/3", 60)
        info = ffprobe_frames("rtsp://127.0.0.1:%d/sim-2/stream1" % gw.frontend, seconds=3,
                              timeout=60)
        self.assertEqual(info["codec_name"], "h264", info["stderr"])
        self.assertEqual((info["width"], info["height"]), (16, 16))
        self.assertGreater(info["nb_read_frames"], 25, info["stderr"])
        sim.signal(2)  # SIGINT: ends the run early, which still reports and exits 0
        self.assertEqual(sim.wait(60), 0, sim.stderr_tail())


class RestartTest(SimTestCase):
    def test_storm_after_gateway_restart(self):
        plain, frontend = free_port(), free_port()
        kw = dict(plain_port=plain, frontend_port=frontend, extra=["--reconnect_window_ms=500"])
        gw = self.gateway(**kw)
        sim = self.procs.start("agentsim", self.sim_argv(gw, "storm", args=[
            "--agents", 100, "--duration", 60, "--storm_trigger", "gateway",
            "--backoff_max_ms", 500, "--streams", 3, "--stream_seconds", 1, "--bitrate", "256k",
            "--after_storm", 2]))
        sim.wait_line(r"agentsim: agents-up 100/100", 60)
        time.sleep(1.5)  # streams running through the old gateway when it goes
        self.assertEqual(gw.proc.stop(), 0)
        self.gateway(**kw)
        sim.wait_line(r"agentsim: load-done", 90)
        self.assertEqual(sim.wait(60), 0, sim.stderr_tail())
        with open(os.path.join(self.tmp, "report.json")) as f:
            r = json.load(f)
        storm = r["scenario_detail"]
        self.assertTrue(storm["recovered"], storm)
        self.assertEqual(storm["agents_dropped"], 100, storm)
        self.assertLess(storm["recovery_s"], 40, storm)  # well inside --duration
        self.assertEqual(r["agents"]["up_at_end_of_load"], 100)
        self.assertGreaterEqual(r["agents"]["reconnects"], 100)
        # Sessions cut by the restart end "interrupted"; at most the 3 streams live then (an
        # open in flight at that moment fails instead). Then media flows again for 2 s through
        # the new gateway, every packet intact.
        sessions = r["rtsp_sessions"]
        self.assertLessEqual(sessions.get("interrupted", 0), 3, sessions)
        self.assertGreaterEqual(sessions.get("completed", 0), 3 + 3, sessions)
        self.assertIntact(r)


class ManagedTestCase(SimTestCase):
    """Helpers to run agentsim's managed mode (PROTOCOL.md section 10) against real managers
    and gateways."""

    AGENTS = 200
    OPERATOR = "acme"

    def start_manager(self, port, db, streamers, master, cert, extra=()):
        argv = [MANAGER, "--listen=127.0.0.1:%d" % port, "--admin_listen=127.0.0.1:0",
                "--cert=%s" % cert[0], "--key=%s" % cert[1], "--store=%s" % db,
                "--factory_master_file=%s" % master, "--operators=%s" % self.OPERATOR,
                "--streamers=%s" % streamers, "--manager_url=https://127.0.0.1:%d" % port,
                "--heartbeat_ms=1000", "--health_interval_ms=500",
                "--handshake_timeout_ms=%d" % HANDSHAKE_TIMEOUT_MS,
                # Every activation of the fleet is let through (8 sources, 25 agents each).
                "--activation_burst=1000"] + list(extra)
        p = self.procs.start("manager", argv)
        m = p.wait_line(r"^camtunnel-manager: ready port=(\d+) admin=(\d+)", 15)
        return p, int(m.group(2))

    def get_json(self, port, path):
        with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path), timeout=5) as r:
            return json.load(r)

    def metric(self, port, name):
        text = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port,
                                      timeout=5).read().decode()
        m = re.search(r"^%s(?:\{\})? (\S+)$" % re.escape(name), text, re.M)
        return int(float(m.group(1))) if m else None

    def setUp(self):
        super().setUp()
        if not MANAGER:
            self.skipTest("camtunnel-manager not built")

    def start_fleet(self, n, gateways, processes=1):
        """A manager whose Streamers are `gateways`, and agentsim's managed fleet of n agents
        against it (over `processes` worker processes). Returns (manager proc, its admin port,
        agentsim proc, its metrics port (None with several processes), the manager's restart
        arguments)."""
        streamers = os.path.join(self.tmp, "streamers.txt")
        with open(streamers, "w") as f:
            for gw in gateways:
                f.write("https://127.0.0.1:%d k1 %s http://127.0.0.1:%d\n"
                        % (gw.tls, os.path.join(self.tmp, "keys"), gw.admin))
        master = os.path.join(self.tmp, "factory_master")
        with open(master, "w") as f:
            f.write(os.urandom(32).hex() + "\n")
        mgr_cert = make_dev_cert(self.tmp, name="manager")
        db = os.path.join(self.tmp, "manager.db")
        port = free_port()
        restart = (port, db, streamers, master, mgr_cert)
        mgr, mgr_admin = self.start_manager(*restart)
        sim = self.procs.start("agentsim", [
            AGENTSIM, "steady", "--manager_url", "https://127.0.0.1:%d" % port,
            "--manager_ca_file", mgr_cert[0], "--ca", os.path.join(self.tmp, "dev.crt"),
            "--factory_master_file", master, "--operator", self.OPERATOR,
            "--agents", n, "--agent_prefix", "msim-", "--sources", SOURCES,
            "--connect_concurrency", 64, "--connect_timeout", 90, "--duration", 150,
            "--backoff_max_ms", 2000, "--json_out", os.path.join(self.tmp, "report.json")]
            + (["--metrics_listen", "127.0.0.1:0"] if processes == 1
               else ["--processes", processes]))
        sim_port = None
        if processes == 1:
            sim_port = int(sim.wait_line(r"agentsim: metrics port=(\d+)", 15).group(1))
        return mgr, mgr_admin, sim, sim_port, restart

    def stop_sim(self, sim, report="report.json"):
        """Ends the load phase (SIGINT) and returns the report."""
        sim.signal(signal.SIGINT)
        self.assertEqual(sim.wait(60), 0, sim.stderr_tail())
        with open(os.path.join(self.tmp, report)) as f:
            return json.load(f)


class ManagedTest(ManagedTestCase):
    """Managed mode against a real manager and a real gateway: every simulated agent activates,
    links to the manager, follows ASSIGN to the gateway; after the manager is killed (-9) and
    started again on the same store and port, every agent relinks while its gateway connection
    stays up."""

    def test_fleet_activates_links_follows_assign_and_relinks_after_a_manager_kill(self):
        n = self.AGENTS
        gw = self.gateway()
        mgr, mgr_admin, sim, sim_port, restart = self.start_fleet(n, [gw])
        # Up on the gateway means activated, linked and assigned.
        sim.wait_line(r"agentsim: agents-up %d/%d" % (n, n), 100)
        self.assertEqual(self.get_json(gw.admin, "/api/v1/agents?limit=1")["total"], n)
        wait_until(lambda: self.get_json(
            mgr_admin, "/api/v1/agents?online=1&limit=1")["total"] == n, 30,
            what="every agent online at the manager")
        self.assertEqual(self.metric(mgr_admin, "camtunnel_manager_links"), n)
        self.assertEqual(self.metric(sim_port, "camtunnel_agentsim_manager_links_up"), n)

        # The manager dies without a word; a new one takes over its store and port.
        mgr.signal(signal.SIGKILL)
        mgr.wait(10)
        wait_until(lambda: self.metric(sim_port, "camtunnel_agentsim_manager_links_up") == 0,
                   30, what="agentsim to see its manager links drop")
        mgr, mgr_admin = self.start_manager(*restart)
        wait_until(lambda: self.metric(sim_port, "camtunnel_agentsim_manager_relinks_total") == n,
                   60, what="every agent relinked")
        wait_until(lambda: self.metric(mgr_admin, "camtunnel_manager_links") == n, 30,
                   what="the new manager to hold every link")
        self.assertEqual(self.get_json(mgr_admin, "/api/v1/agents?online=1&limit=1")["total"], n)
        # The gateway connections never depended on the manager.
        self.assertEqual(self.get_json(gw.admin, "/api/v1/agents?limit=1")["total"], n)

        r = self.stop_sim(sim)
        m = r["managed"]
        self.assertEqual(m["activations"]["by_result"].get("activated"), n, m["activations"])
        self.assertEqual(m["activations"]["succeeded"], n)
        self.assertGreater(m["activations"]["per_s"], 0)
        links = m["manager_links"]
        self.assertEqual(links["up_at_end_of_load"], n, links)
        self.assertGreaterEqual(links["established"], 2 * n, links)
        self.assertIsNotNone(links["time_to_link_all_s"])
        self.assertEqual(m["relinks"]["count"], n, m["relinks"])
        self.assertGreaterEqual(m["assigns"], 2 * n)  # one per link
        self.assertEqual(m["assign_errors"], {})
        self.assertEqual((m["switches"], m["restarts"], m["deactivations"]), (0, 0, 0))
        a = r["agents"]
        self.assertEqual((a["sessions"], a["reconnects"], a["up_at_end_of_load"]), (n, 0, n), a)

    def test_a_fleet_split_over_two_processes_merges_into_one_report(self):
        """Managed mode over --processes 2 (a 50,000-agent fleet needs several processes for
        its descriptors): disjoint agents, every one activated and linked, one merged report."""
        n = 120
        gw = self.gateway()
        mgr, mgr_admin, sim, _, _ = self.start_fleet(n, [gw], processes=2)
        sim.wait_line(r"agentsim: agents-up %d/%d" % (n, n), 100)
        wait_until(lambda: self.metric(mgr_admin, "camtunnel_manager_links") == n, 30,
                   what="every agent linked to the manager")
        self.assertEqual(self.get_json(gw.admin, "/api/v1/agents?limit=1")["total"], n)
        r = self.stop_sim(sim)
        self.assertEqual(r["config"]["processes"], 2)
        m = r["managed"]
        self.assertEqual(m["activations"]["succeeded"], n, m["activations"])
        self.assertEqual(m["activations"]["by_result"].get("activated"), n, m["activations"])
        self.assertEqual(m["activations"]["latency"]["count"], n, m["activations"])
        self.assertEqual(m["manager_links"]["up_at_end_of_load"], n, m["manager_links"])
        self.assertEqual(r["agents"]["up_at_end_of_load"], n, r["agents"])

    def test_switch_restart_and_deactivate_from_the_manager(self):
        """The manager's commands reach the simulated agents: move (ASSIGN + SWITCH) takes one
        to the other gateway, restart drops and re-establishes both of another's links,
        deactivate stops a third."""
        n = 6
        gws = [self.gateway(), self.gateway()]
        mgr, mgr_admin, sim, sim_port, _ = self.start_fleet(n, gws)
        sim.wait_line(r"agentsim: agents-up %d/%d" % (n, n), 60)
        totals = lambda: [self.get_json(g.admin, "/api/v1/agents?limit=1")["total"] for g in gws]
        self.assertEqual(sum(totals()), n)

        def post(agent, command):
            # 200: the agent acknowledged the command (PROTOCOL.md 10.6).
            req = urllib.request.Request("http://127.0.0.1:%d/api/v1/agents/%s/%s"
                                         % (mgr_admin, agent, command), method="POST", data=b"")
            with urllib.request.urlopen(req, timeout=30) as r:
                self.assertEqual(r.status, 200, r.read())

        def frames(kind):
            text = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % sim_port,
                                          timeout=5).read().decode()
            m = re.search(r'^camtunnel_agentsim_manager_frames_total\{type="%s"\} (\S+)$'
                          % kind, text, re.M)
            return int(float(m.group(1)))

        # move: to the gateway msim-0 is not on.
        where = self.get_json(mgr_admin, "/api/v1/agents/msim-0")["streamer"]
        other = [g for g in gws if "https://127.0.0.1:%d" % g.tls != where][0]
        before = totals()
        post("msim-0", "move?streamer=https://127.0.0.1:%d" % other.tls)
        wait_until(lambda: frames("switch") == 1, 20, what="SWITCH at agentsim")
        wait_until(lambda: self.get_json(other.admin, "/api/v1/agents?limit=1")["total"]
                   == before[gws.index(other)] + 1, 20, what="msim-0 on the other gateway")
        # restart: both links come back.
        post("msim-1", "restart")
        wait_until(lambda: frames("restart") == 1, 20, what="RESTART at agentsim")
        wait_until(lambda: self.metric(sim_port, "camtunnel_agentsim_manager_links_up") == n
                   and self.metric(sim_port, "camtunnel_agentsim_agents_up") == n, 20,
                   what="msim-1 back on both links")
        # deactivate: the agent stops for good.
        post("msim-2", "deactivate")
        wait_until(lambda: frames("deactivate") == 1, 20, what="DEACTIVATE at agentsim")
        wait_until(lambda: sum(totals()) == n - 1, 20, what="msim-2 gone from its gateway")
        self.assertEqual(self.metric(sim_port, "camtunnel_agentsim_manager_links_up"), n - 1)

        r = self.stop_sim(sim)
        m = r["managed"]
        self.assertEqual((m["switches"], m["restarts"], m["deactivations"]), (1, 1, 1), m)
        self.assertEqual(m["command_acks"], {"sent": 3, "duplicates": 0}, m)
        self.assertEqual(m["assign_errors"], {})
        a = r["agents"]
        # msim-0 reconnected to its new gateway, msim-1 after its restart.
        self.assertEqual((a["sessions"], a["reconnects"]), (n + 2, 2), a)


def worker_reports(tmp, n):
    out = []
    for i in range(n):
        with open(os.path.join(tmp, "report.json.worker-%d.json" % i)) as f:
            out.append(json.load(f))
    return out


class MultiProcessTest(SimTestCase):
    def test_two_processes_merge_into_one_report(self):
        gw = self.gateway(extra=["--heartbeat_ms=500"])
        r = self.run_sim(self.sim_argv(gw, "steady", args=[
            "--processes", 2, "--agents", 400, "--streams", 6, "--bitrate", "256k",
            "--snapshot_rate", 20, "--duration", 5, "--sources", SOURCES,
            "--connect_concurrency", 64]))
        w = worker_reports(self.tmp, 2)
        # Disjoint shares: ids sim-0..199 and sim-200..399 (a shared id would make the gateway
        # replace a session: a reconnect or a failure), sources split 4 + 4.
        self.assertEqual([x["config"]["agents"] for x in w], [200, 200])
        self.assertEqual([x["config"]["sources"] for x in w], [4, 4])
        self.assertEqual([x["config"]["streams"] for x in w], [3, 3])
        a = r["agents"]
        self.assertEqual(r["config"]["processes"], 2)
        self.assertEqual((a["configured"], a["up_at_end_of_load"], a["sessions"]), (400, 400, 400))
        self.assertAllConnected(r, 400)
        # The merged report is the sum of the workers' ...
        total = lambda *path: sum(functools.reduce(lambda d, k: d[k], path, x) for x in w)
        for path in [("agents", "connect_attempts"), ("agents", "pings_sent"),
                     ("agents", "pongs_received"), ("agents", "status_sent"),
                     ("opens", "total"), ("opens", "failed"), ("packets_verified",),
                     ("bytes_verified",), ("throughput", "media_bytes_received"),
                     ("cameras", "packets_sent"), ("rtsp_sessions", "completed"),
                     ("snapshots", "ok")]:
            self.assertEqual(functools.reduce(lambda d, k: d[k], path, r), total(*path), path)
        self.assertEqual(r["rtsp_sessions"], {"completed": 6})
        self.assertEqual(r["opens"]["by_result"]["ok"], r["opens"]["total"])
        self.assertGreaterEqual(r["snapshots"]["ok"], 30)
        # ... and its latency is merged from the histograms, exactly.
        self.assertEqual(r["opens"]["latency"]["count"], r["opens"]["total"])
        # Each agent's first open (no spare can be waiting for it) is reported apart too, and
        # with the later ones makes the whole, in each worker's report and in the merged one.
        first = lambda x: x["opens"]["latency_first_per_agent"]["count"]
        for x in w + [r]:
            self.assertEqual(first(x) + x["opens"]["latency_later"]["count"],
                             x["opens"]["latency"]["count"])
        self.assertEqual(first(r), sum(first(x) for x in w))
        self.assertGreater(first(r), 0)
        self.assertEqual(r["opens"]["latency"]["max_ms"],
                         max(x["opens"]["latency"]["max_ms"] for x in w))
        buckets = {}
        for x in w:
            for b, n in x["histograms"]["open_us"]["buckets"]:
                buckets[b] = buckets.get(b, 0) + n
        self.assertEqual({b: n for b, n in r["histograms"]["open_us"]["buckets"]}, buckets)
        # Heartbeats every 500 ms in each worker for 5 s: a PING from the agent when it has been
        # quiet, else an answer to the gateway's; every one the agent sends is answered.
        self.assertGreater(a["pings_sent"] + a["pings_answered"], 400 * 3)
        self.assertGreater(a["pings_sent"], 0)
        self.assertGreaterEqual(a["pongs_received"], a["pings_sent"] - 400)
        self.assertGreaterEqual(a["status_sent"], 400)
        self.assertGreater(r["packets_verified"], 6 * 25 * 2)
        self.assertIntact(r)
        for x in w:
            self.assertIntact(x)


class FdBudgetTest(SimTestCase):
    def test_too_many_agents_for_the_fd_limit_exit_2_naming_the_processes(self):
        gw = self.gateway()
        limit = lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (300, 300))
        argv = self.sim_argv(gw, "steady", args=["--agents", 500, "--duration", 1])
        r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           timeout=60, preexec_fn=limit)
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("RLIMIT_NOFILE is 300", r.stderr)
        self.assertIn("use --processes 3", r.stderr)  # 500/3 agents + reserve fit in 300
        self.assertNotIn("agents-up", r.stdout)  # nothing started
        r = subprocess.run(argv + ["--processes", "3"], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, timeout=150, preexec_fn=limit)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("agentsim: agents-up 500/500", r.stdout)


PROGRESS = re.compile(r"\[\s*([\d.]+)s\] agents (\d+)/(\d+) up \| streams (\d+) \| "
                      r"opens/s ([\d.]+) \| errors (\d+) \| ([\d.]+) Gbit/s")


class ProgressTest(SimTestCase):
    def run_on_tty(self, argv):
        """Runs agentsim with stderr on a pseudo-terminal; returns the progress lines drawn."""
        master, slave = pty.openpty()
        p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=slave,
                             stdin=subprocess.DEVNULL)
        os.close(slave)
        out = b""
        deadline = time.monotonic() + 120  # a hang guard: the run takes about 10 s
        while time.monotonic() < deadline:
            if select.select([master], [], [], 0.5)[0]:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # EIO: every writer closed the terminal
                    break
                if not chunk:
                    break
                out += chunk
            elif p.poll() is not None:
                break
        os.close(master)
        self.assertEqual(p.wait(60), 0, out[-2000:])
        # Each redraw starts with \r and ends by erasing the rest of the line.
        return [m.groups() for m in PROGRESS.finditer(out.decode(errors="replace"))]

    def test_progress_line_on_a_terminal_single_and_merged(self):
        gw = self.gateway()
        for processes in (1, 2):
            with self.subTest(processes=processes):
                lines = self.run_on_tty(self.sim_argv(gw, "steady", args=[
                    "--agents", 60, "--streams", 4, "--bitrate", "1M", "--snapshot_rate", 20,
                    "--duration", 8, "--processes", processes]))
                self.assertGreaterEqual(len(lines), 3, lines)
                loaded = [l for l in lines if l[1:4] == ("60", "60", "4")]
                self.assertGreaterEqual(len(loaded), 3, lines)
                self.assertEqual({l[5] for l in lines}, {"0"}, lines)  # errors
                # Rates are per redraw, and the first redraw has no interval behind it (0.0).
                # The merged line sums workers' lines sent on their own clocks, so under load
                # one redraw may see two of a worker's seconds and the next none (27.8 then
                # 0 opens/s): judge the mean over every later redraw, which loses at most one
                # worker-second at the end of a seven-second window.
                rates = [(float(l[4]), float(l[6])) for l in loaded[1:]]
                opens = sum(r[0] for r in rates) / len(rates)
                gbps = sum(r[1] for r in rates) / len(rates)
                self.assertGreater(opens, 5, lines)  # 20 snapshots/s asked
                self.assertLess(opens, 35, lines)
                self.assertGreater(gbps, 0.003, lines)  # 4 x 1 Mbit/s + snapshots
                self.assertLess(gbps, 0.1, lines)


class CliTest(SimTestCase):
    def test_bad_parameters_exit_2_with_the_reason(self):
        base = [AGENTSIM, "steady", "--gateway_agent", "127.0.0.1:1", "--plain",
                "--streamer_keys", "/nonexistent/keys"]
        cases = [
            ([AGENTSIM], "no scenario"),
            ([AGENTSIM, "hurricane"], "unknown scenario"),
            (base[:2] + ["--plain"], "--gateway_agent is required"),
            (base + ["--agents", "many"], "--agents"),
            (base + ["--streams", "3"], "--frontend"),
            (base + ["--sources", "10.0.0.9-10.0.0.1"], "--sources"),
            (base + ["--camera_fault", "explode"], "--camera_fault"),
            ([AGENTSIM, "steady", "--gateway_agent", "127.0.0.1:1", "--tls",
              "--streamer_keys", "k"], "--ca"),
            (base, "cannot read streamer keys file"),
        ]
        for argv, reason in cases:
            with self.subTest(argv=argv[1:]):
                r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   text=True, timeout=10)
                self.assertEqual(r.returncode, 2, r.stderr)
                self.assertIn(reason, r.stderr)



PG_FIXTURE = find_binary("camtunnel_test_pg_cluster_fixture", "tests")


class PgManagersTestCase(ManagedTestCase):
    """Managers on a throwaway PostgreSQL cluster (tests/support/pg_cluster_main.cc, driven
    through its stdin), with a managed agentsim fleet."""

    PG_ARGS = ("run",)

    def setUp(self):
        super().setUp()
        if not PG_FIXTURE:
            self.skipTest("camtunnel_test_pg_cluster_fixture not built")
        self.pg = self.procs.start("postgres", [PG_FIXTURE] + list(self.PG_ARGS),
                                   stdin=subprocess.PIPE)
        m = self.pg.wait_line(r"^pg: (conninfo=(.*)|unavailable (.*))$", 60)
        # Cleanups run last-in first-out: this one before the processes are stopped, so the
        # cluster is shut down and its folder removed by its owner.
        self.addCleanup(self.stop_pg)
        if m.group(3):
            self.skipTest("no PostgreSQL here: " + m.group(3))
        self.conninfo = m.group(2)

    def stop_pg(self):
        try:
            self.pg.popen.stdin.write("stop\n")
            self.pg.popen.stdin.close()
        except (BrokenPipeError, ValueError):
            pass
        self.pg.popen.wait(60)

    def pg_command(self, line, expect):
        """One command to the cluster; its answer must be `expect` (pg_cluster_main.cc)."""
        start = len(self.pg.lines)
        self.pg.popen.stdin.write(line + "\n")
        self.pg.popen.stdin.flush()
        m = self.pg.wait_line(r"^pg: (.*)$", 90, start)
        self.assertEqual(m.group(1), expect, "the cluster's answer to %r" % line)

    def deployment(self, gateways, managers=2):
        """The files and ports a deployment of `managers` managers on the cluster shares."""
        self.streamers = os.path.join(self.tmp, "streamers.txt")
        with open(self.streamers, "w") as f:
            for gw in gateways:
                f.write("https://127.0.0.1:%d k1 %s http://127.0.0.1:%d\n"
                        % (gw.tls, os.path.join(self.tmp, "keys"), gw.admin))
        self.master = os.path.join(self.tmp, "factory_master")
        with open(self.master, "w") as f:
            f.write(os.urandom(32).hex() + "\n")
        self.cert = make_dev_cert(self.tmp, name="manager")
        self.ports = [free_port() for _ in range(managers)]
        self.urls = ",".join("https://127.0.0.1:%d" % p for p in self.ports)

    def start_pg_manager(self, i):
        """Manager i of the deployment; (its process, its admin port)."""
        return self.start_manager(self.ports[i], self.conninfo, self.streamers, self.master,
                                  self.cert, extra=[
                                      "--manager_id=m%d" % i, "--manager_urls=%s" % self.urls,
                                      "--reconnect_window_ms=1000", "--store_connections=2"])

    def start_managed_sim(self, n, prefix, report="report.json"):
        """agentsim's managed fleet of n agents named prefix0..; (its process, metrics port)."""
        sim = self.procs.start("agentsim", [
            AGENTSIM, "steady", "--manager_url", "https://127.0.0.1:%d" % self.ports[0],
            "--manager_ca_file", self.cert[0], "--ca", os.path.join(self.tmp, "dev.crt"),
            "--factory_master_file", self.master, "--operator", self.OPERATOR,
            "--agents", n, "--agent_prefix", prefix, "--sources", SOURCES,
            "--connect_concurrency", 64, "--connect_timeout", 90, "--duration", 170,
            "--backoff_max_ms", 2000, "--metrics_listen", "127.0.0.1:0",
            "--json_out", os.path.join(self.tmp, report)])
        return sim, int(sim.wait_line(r"agentsim: metrics port=(\d+)", 15).group(1))

    def post(self, admin, agent, command, wait_ms=30000):
        status, _, body = self.post_full(admin, agent, command, wait_ms)
        return status, body

    def post_full(self, admin, agent, command, wait_ms=30000):
        """An operator's command; (status, headers, body)."""
        req = urllib.request.Request("http://127.0.0.1:%d/api/v1/agents/%s/%s?wait_ms=%d"
                                     % (admin, agent, command, wait_ms), method="POST", data=b"")
        try:
            with urllib.request.urlopen(req, timeout=wait_ms / 1000 + 30) as r:
                return r.status, r.headers, json.load(r)
        except urllib.error.HTTPError as e:
            return e.code, e.headers, json.load(e)

    def holder(self, admins, agent):
        for i, admin in enumerate(admins):
            if self.get_json(admin, "/api/v1/agents/%s" % agent)["linked"]:
                return i
        return None

    def readyz(self, admin):
        """(status, body) of a manager's /readyz."""
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d/readyz" % admin, timeout=5) as r:
                return r.status, json.load(r)
        except urllib.error.HTTPError as e:
            return e.code, json.load(e)

    def activate(self, port, serial):
        """A camera's activation request (PROTOCOL.md 10.1) to the manager at `port`, with its
        own factory secret; (status, headers, body)."""
        factory = subprocess.run(
            [MANAGER, "factory-secret", "--factory_master_file=%s" % self.master,
             "--serial=%s" % serial], check=True, stdout=subprocess.PIPE, text=True).stdout
        body = json.dumps({"serial": serial, "factory_secret": factory.strip(),
                           "operator": self.OPERATOR}).encode()
        req = urllib.request.Request("https://127.0.0.1:%d/api/v1/activate" % port, data=body,
                                     method="POST",
                                     headers={"Content-Type": "application/json"})
        ctx = ssl.create_default_context(cafile=self.cert[0])
        try:
            with urllib.request.urlopen(req, timeout=30, context=ctx) as r:
                return r.status, r.headers, json.load(r)
        except urllib.error.HTTPError as e:
            return e.code, e.headers, json.load(e)

    def activate_once_ready(self, port, serial):
        """Activation of a new camera once the database answers again: 503 (a store session
        still coming back) is retried, any other refusal fails the test. Returns the body."""
        def attempt():
            status, _, body = self.activate(port, serial)
            self.assertIn(status, (200, 503), body)
            return body if status == 200 else None
        body = wait_until(attempt, 30, interval=0.5, what="the activation of %s" % serial)
        self.assertEqual(len(body.get("agent_secret", "")), 64, body)
        return body

    def command_acked(self, admins, agent):
        """A RESTART given to the manager holding `agent`'s link is acknowledged."""
        holder = self.holder(admins, agent)
        self.assertIsNotNone(holder, "%s linked to no manager" % agent)
        status, body = self.post(admins[holder], agent, "restart")
        if status == 503:  # the manager's session to the database was still coming back
            status, body = self.post(admins[holder], agent, "restart")
        self.assertEqual(status, 200, body)
        self.assertEqual(body["command"]["state"], "acked", body)

    def assertStoreUnreachable(self, admin):
        """Waits for a manager to see its database gone: /readyz 503 and the gauge at 0."""
        wait_until(lambda: self.readyz(admin)[0] == 503, 30,
                   what="/readyz of the manager at admin port %d to answer 503" % admin)
        status, body = self.readyz(admin)
        self.assertEqual((status, body["ready"], body["store"]), (503, False, "unreachable"),
                         body)
        self.assertEqual(self.metric(admin, "camtunnel_manager_store_reachable"), 0)

    def assertStoreReachable(self, admin):
        wait_until(lambda: self.readyz(admin)[0] == 200, 60,
                   what="/readyz of the manager at admin port %d to answer 200" % admin)
        self.assertEqual(self.readyz(admin)[1]["store"], "reachable")
        self.assertEqual(self.metric(admin, "camtunnel_manager_store_reachable"), 1)

    def wait_on_gateway(self, gw, n):
        """Every agent's gateway connection is up (a restarted agent's back)."""
        wait_until(lambda: self.get_json(gw.admin, "/api/v1/agents?limit=1")["total"] == n, 30,
                   what="%d agents on the gateway" % n)

    def total_links(self, admins):
        return sum(self.metric(a, "camtunnel_manager_links") or 0 for a in admins)

    def links_established(self, admins):
        return sum(self.metric(a, "camtunnel_manager_links_established_total") or 0
                   for a in admins)


class SeveralManagersTest(PgManagersTestCase):
    """Two managers on one PostgreSQL database (a throwaway cluster) share a managed fleet:
    agents spread over both by their rendezvous order; a command given to the manager that does
    not hold the agent's link reaches it; after kill -9 of one manager and SIGSTOP of the other,
    every agent relinks to the survivor; a database restart under load keeps every link and the
    next command is acknowledged. Video paths (the gateway connections) never drop. Outcomes are
    asserted, never times. Leadership (health checks) is held by one manager at a time and moves
    off a killed or stopped leader."""

    AGENTS = 200

    def test_two_managers_share_the_fleet_and_survive_kill_stop_and_a_database_restart(self):
        n = self.AGENTS
        gw = self.gateway()
        streamers = os.path.join(self.tmp, "streamers.txt")
        with open(streamers, "w") as f:
            f.write("https://127.0.0.1:%d k1 %s http://127.0.0.1:%d\n"
                    % (gw.tls, os.path.join(self.tmp, "keys"), gw.admin))
            # A second Streamer that is down: the leader's health checks find it.
            f.write("https://127.0.0.1:%d k1 %s http://127.0.0.1:%d\n"
                    % (free_port(), os.path.join(self.tmp, "keys"), free_port()))
        master = os.path.join(self.tmp, "factory_master")
        with open(master, "w") as f:
            f.write(os.urandom(32).hex() + "\n")
        cert = make_dev_cert(self.tmp, name="manager")
        ports = [free_port(), free_port()]
        urls = ",".join("https://127.0.0.1:%d" % p for p in ports)

        def start(i):
            return self.start_manager(ports[i], self.conninfo, streamers, master, cert, extra=[
                "--manager_id=m%d" % i, "--manager_urls=%s" % urls, "--reconnect_window_ms=1000",
                "--store_connections=2", "--leader_lease_ms=2000"])

        mgrs, admins = [None, None], [0, 0]
        for i in (0, 1):
            mgrs[i], admins[i] = start(i)
        leader = lambda i: self.metric(admins[i], "camtunnel_manager_leader")
        down = lambda i: self.metric(admins[i], 'camtunnel_manager_streamer_healthy{streamer="1"}')
        # One leader checks the Streamers; the other manager follows its verdict through the
        # database and probes nothing itself.
        wait_until(lambda: leader(0) + leader(1) == 1, 30, what="one leader")
        wait_until(lambda: down(0) == 0 and down(1) == 0, 30,
                   what="both managers holding the dead Streamer unhealthy")
        lead = 0 if leader(0) else 1
        self.assertGreater(self.metric(admins[lead], "camtunnel_manager_health_checks_total"), 0)
        self.assertEqual(self.metric(admins[1 - lead], "camtunnel_manager_health_checks_total"), 0)
        sim = self.procs.start("agentsim", [
            AGENTSIM, "steady", "--manager_url", "https://127.0.0.1:%d" % ports[0],
            "--manager_ca_file", cert[0], "--ca", os.path.join(self.tmp, "dev.crt"),
            "--factory_master_file", master, "--operator", self.OPERATOR,
            "--agents", n, "--agent_prefix", "pg-", "--sources", SOURCES,
            "--connect_concurrency", 64, "--connect_timeout", 90, "--duration", 170,
            "--backoff_max_ms", 2000, "--metrics_listen", "127.0.0.1:0",
            "--json_out", os.path.join(self.tmp, "report.json")])
        sim_port = int(sim.wait_line(r"agentsim: metrics port=(\d+)", 15).group(1))
        sim.wait_line(r"agentsim: agents-up %d/%d" % (n, n), 100)
        links = lambda i: self.metric(admins[i], "camtunnel_manager_links") or 0
        wait_until(lambda: links(0) + links(1) == n, 60, what="every agent linked to a manager")
        # Rendezvous order: both managers hold a share (about half each).
        self.assertGreater(links(0), n // 5)
        self.assertGreater(links(1), n // 5)

        # SIGHUP reloads the certificate, Streamers and operators under the live links: none
        # drops (the gateway reconnect count at the end shows video untouched too).
        held_by_0 = links(0)
        mgrs[0].signal(signal.SIGHUP)
        wait_until(lambda: self.metric(admins[0], 'camtunnel_manager_reloads_total{result="ok"}')
                   == 1, 15, what="manager 0 reloaded")
        self.assertEqual(links(0), held_by_0)

        # A command given to the manager that does not hold the agent's link.
        held = [a for a in ("pg-%d" % k for k in range(n)) if self.holder(admins, a) == 0][:1]
        self.assertTrue(held)
        status, body = self.post(admins[1], held[0], "restart")
        self.assertEqual(status, 200, body)
        self.assertEqual(body["command"]["state"], "acked", body)
        self.assertEqual(body["command"]["manager"], "m0", body)  # delivered by the holder

        # kill -9 of manager 0: its agents relink to manager 1.
        mgrs[0].signal(signal.SIGKILL)
        mgrs[0].wait(10)
        wait_until(lambda: links(1) == n, 60, what="every agent linked to manager 1")
        wait_until(lambda: leader(1) == 1, 30, what="manager 1 leading")
        # Manager 0 comes back; then manager 1 stops answering (SIGSTOP): silent heartbeats
        # send its agents to manager 0, and its lease runs out, so manager 0 leads.
        mgrs[0], admins[0] = start(0)
        self.assertEqual(leader(0), 0)
        mgrs[1].signal(signal.SIGSTOP)
        try:
            wait_until(lambda: links(0) == n, 90, what="every agent linked to manager 0")
            wait_until(lambda: leader(0) == 1, 30, what="manager 0 leading")
        finally:
            mgrs[1].signal(signal.SIGCONT)
        # Woken, manager 1 knows its lease ran out: still one leader, and the verdict carried
        # over to the new one.
        self.assertEqual(leader(1), 0)
        self.assertEqual(leader(0), 1)
        self.assertEqual(down(0), 0)

        # The database restarts under load: links stay, and the next command is acknowledged
        # once the managers' sessions are back.
        self.pg_command("restart", "restarted")
        self.assertEqual(links(0), n)
        status, body = self.post(admins[0], "pg-1", "restart")
        if status == 503:  # the manager's session to the database was still coming back
            status, body = self.post(admins[0], "pg-1", "restart")
        self.assertEqual(status, 200, body)
        wait_until(lambda: self.get_json(admins[0], "/readyz")["ready"], 30,
                   what="manager 0 ready again")

        # Video never depended on the managers: no gateway connection dropped (the restarted
        # agent's new session may still be coming up).
        wait_until(lambda: self.get_json(gw.admin, "/api/v1/agents?limit=1")["total"] == n, 30,
                   what="every agent on the gateway")
        r = self.stop_sim(sim)
        # The only gateway reconnects are the two restarted agents'.
        a = r["agents"]
        self.assertEqual((a["sessions"], a["reconnects"], a["up_at_end_of_load"]),
                         (n + 2, 2, n), a)
        self.assertEqual(r["managed"]["restarts"], 2, r["managed"])
        self.assertEqual(r["managed"]["command_acks"]["duplicates"], 0, r["managed"])



class DatabaseOutageTest(PgManagersTestCase):
    """The state database goes away under two managers and a linked fleet (an immediate
    shutdown, as a crash: the managers' sessions are cut and every reconnect is refused), then
    comes back on the same data. While it is gone every manager link stays up, /readyz answers
    503 and camtunnel_manager_store_reachable is 0, and a new camera's activation and an
    operator's command are answered 503 with Retry-After (nothing half-done). Once it is back:
    ready again, the camera activates and a command is acknowledged."""

    AGENTS = 100

    def test_links_stay_up_and_requests_get_503_until_the_database_returns(self):
        n = self.AGENTS
        gw = self.gateway()
        self.deployment([gw])
        admins = [self.start_pg_manager(i)[1] for i in (0, 1)]
        sim, sim_port = self.start_managed_sim(n, "out-")
        sim.wait_line(r"agentsim: agents-up %d/%d" % (n, n), 100)
        wait_until(lambda: self.total_links(admins) == n, 60,
                   what="every agent linked to a manager")
        established = self.links_established(admins)

        self.pg_command("halt", "halted")
        for admin in admins:
            self.assertStoreUnreachable(admin)
        status, headers, body = self.activate(self.ports[0], "out-new")
        self.assertEqual(status, 503, body)
        self.assertGreater(int(headers["Retry-After"]), 0, dict(headers))
        status, headers, body = self.post_full(admins[0], "out-1", "restart")
        self.assertEqual(status, 503, body)
        self.assertGreater(int(headers["Retry-After"]), 0, dict(headers))
        # Every link is still up, on both ends.
        self.assertEqual(self.total_links(admins), n)
        self.assertEqual(self.metric(sim_port, "camtunnel_agentsim_manager_links_up"), n)

        self.pg_command("start", "started")
        for admin in admins:
            self.assertStoreReachable(admin)
        # No link was lost or made again across the outage.
        self.assertEqual(self.total_links(admins), n)
        self.assertEqual(self.links_established(admins), established)
        self.assertEqual(self.metric(sim_port, "camtunnel_agentsim_manager_relinks_total"), 0)
        self.activate_once_ready(self.ports[0], "out-new")
        self.command_acked(admins, "out-1")

        # Video never depended on the database: every agent is on its gateway (the restarted
        # one back).
        self.wait_on_gateway(gw, n)
        r = self.stop_sim(sim)
        a = r["agents"]
        self.assertEqual((a["sessions"], a["reconnects"], a["up_at_end_of_load"]),
                         (n + 1, 1, n), a)  # the restarted agent's only
        m = r["managed"]
        self.assertEqual(m["restarts"], 1, m)
        self.assertEqual(m["activations"]["by_result"].get("activated"), n, m["activations"])


class DatabaseFailoverTest(PgManagersTestCase):
    """A primary and its streaming standby (pg_basebackup -R), both on loopback ports; the
    managers are given both hosts with target_session_attrs=read-write, so a session finds
    whichever accepts writes. The primary dies (immediate shutdown) and the standby is promoted
    (pg_ctl promote): the managers follow on their own, and the fleet's links never drop."""

    PG_ARGS = ("run", "--standby")
    AGENTS = 100

    def active_agents(self, admin):
        return self.get_json(admin, "/api/v1/agents?state=active&limit=1")["total"]

    def test_managers_follow_a_promoted_standby(self):
        n = self.AGENTS
        gw = self.gateway()
        self.deployment([gw])
        admins = [self.start_pg_manager(i)[1] for i in (0, 1)]
        sim, sim_port = self.start_managed_sim(n, "fo-")
        sim.wait_line(r"agentsim: agents-up %d/%d" % (n, n), 100)
        wait_until(lambda: self.total_links(admins) == n, 60,
                   what="every agent linked to a manager")
        established = self.links_established(admins)
        # Everything the primary acknowledged has reached the standby (what asynchronous
        # replication may lose is test_a_camera_lost_in_the_replication_window_activates_again).
        self.pg_command("catchup", "caught-up")

        self.pg_command("halt", "halted")
        # The standby refuses writes until promoted: the managers find no primary.
        for admin in admins:
            self.assertStoreUnreachable(admin)
        self.pg_command("promote", "promoted")
        for admin in admins:
            self.assertStoreReachable(admin)

        # No link was lost or made again across the failover, and the new primary knows the
        # whole fleet.
        self.assertEqual(self.total_links(admins), n)
        self.assertEqual(self.links_established(admins), established)
        self.assertEqual(self.metric(sim_port, "camtunnel_agentsim_manager_relinks_total"), 0)
        self.assertEqual(self.active_agents(admins[1]), n)
        self.activate_once_ready(self.ports[1], "fo-new")
        self.command_acked(admins, "fo-1")
        self.assertEqual(self.active_agents(admins[0]), n + 1)
        self.wait_on_gateway(gw, n)
        r = self.stop_sim(sim)
        a = r["agents"]
        self.assertEqual((a["sessions"], a["reconnects"], a["up_at_end_of_load"]),
                         (n + 1, 1, n), a)  # the restarted agent's only
        self.assertEqual(r["managed"]["restarts"], 1, r["managed"])


    def test_a_camera_lost_in_the_replication_window_activates_again(self):
        """Asynchronous replication's loss window: cameras activated while the standby was
        away exist on the old primary only. After the failover the new primary does not know
        them; on their next link the managers refuse them (401) and they activate again on
        their own, with their factory secrets."""
        kept_n, lost_n = 20, 20
        n = kept_n + lost_n
        gw = self.gateway()
        self.deployment([gw])
        mgrs, admins = [None, None], [0, 0]
        for i in (0, 1):
            mgrs[i], admins[i] = self.start_pg_manager(i)
        kept, _ = self.start_managed_sim(kept_n, "kept-", report="kept.json")
        kept.wait_line(r"agentsim: agents-up %d/%d" % (kept_n, kept_n), 100)
        wait_until(lambda: self.total_links(admins) == kept_n, 60,
                   what="every kept- agent linked to a manager")
        self.pg_command("catchup", "caught-up")
        # The standby stops: what the primary commits from now on, it alone holds.
        self.pg_command("halt standby", "halted")
        lost, lost_port = self.start_managed_sim(lost_n, "lost-", report="lost.json")
        lost.wait_line(r"agentsim: agents-up %d/%d" % (lost_n, lost_n), 100)
        wait_until(lambda: self.total_links(admins) == n, 60,
                   what="every lost- agent linked to a manager")
        # The primary dies; the standby comes back and is promoted without those activations.
        self.pg_command("halt", "halted")
        self.pg_command("start standby", "started")
        self.pg_command("promote", "promoted")
        for admin in admins:
            self.assertStoreReachable(admin)
        self.assertEqual(self.active_agents(admins[0]), kept_n)

        # A link held across the failover stays up (the manager keeps the agent's secret in
        # memory) until it ends; here the managers restart (kill -9), so every agent relinks.
        for i in (0, 1):
            mgrs[i].signal(signal.SIGKILL)
            mgrs[i].wait(10)
            mgrs[i], admins[i] = self.start_pg_manager(i)
        wait_until(lambda: self.active_agents(admins[0]) == n, 60,
                   what="every lost- camera activated again")
        wait_until(lambda: self.total_links(admins) == n, 60,
                   what="every agent linked to a manager again")
        self.assertEqual(self.metric(lost_port, "camtunnel_agentsim_manager_links_up"), lost_n)
        self.command_acked(admins, "lost-1")
        # The gateway connections never depended on the activations.
        self.wait_on_gateway(gw, n)

        r = self.stop_sim(lost, report="lost.json")
        # Each lost- agent activated twice: first on the old primary, then on the new one.
        self.assertEqual(r["managed"]["activations"]["by_result"].get("activated"), 2 * lost_n,
                         r["managed"]["activations"])
        self.assertEqual(r["managed"]["restarts"], 1, r["managed"])
        a = r["agents"]
        self.assertEqual((a["reconnects"], a["up_at_end_of_load"]), (1, lost_n), a)
        r = self.stop_sim(kept, report="kept.json")
        self.assertEqual(r["managed"]["activations"]["by_result"].get("activated"), kept_n,
                         r["managed"]["activations"])
        self.assertEqual(r["managed"]["relinks"]["count"], kept_n, r["managed"]["relinks"])


if __name__ == "__main__":
    unittest.main(argv=sys.argv[:1] + sys.argv[1:], verbosity=2)
