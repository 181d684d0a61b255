#!/usr/bin/python3
"""camtunnel-agentsim against the real gateway: every scenario, small and bounded, asserting the
expected counts and zero integrity errors; proof that each failure detector fires (cameras that
misbehave on purpose, a relay that corrupts bytes); ffprobe playing a simulated camera.

Run one case: agentsim_e2e_test.py SteadyTest.test_...; all: agentsim_e2e_test.py.
Binaries: $CAMTUNNEL_GATEWAY / $CAMTUNNEL_AGENTSIM (set by ctest), else the usual build dirs.
Everything binds 127.0.0.x port 0 (except the restart test, which must reuse its ports), and
every process is stopped by PID.
"""

import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "e2e"))
from support import (Processes, ffprobe_frames, find_binary, free_port,  # noqa: E402
                     make_dev_cert)

GATEWAY = os.environ.get("CAMTUNNEL_GATEWAY") or find_binary("camtunnel-gateway", "gateway")
AGENTSIM = os.environ.get("CAMTUNNEL_AGENTSIM") or find_binary("camtunnel-agentsim", "agentsim")
SOURCES = "127.0.0.2-127.0.0.9"


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
            "--log_level=warning"] + list(extra)
    p = procs.start("gateway", argv)
    m = p.wait_line(r"ready agent_tls=(\d+) agent_plain=(\d+) frontend=(\d+) admin=(\d+)", 15)
    return Gateway(p, [int(x) for x in m.groups()])


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
        argv = [AGENTSIM, scenario, "--streamer-keys", os.path.join(self.tmp, "keys"),
                "--json-out", os.path.join(self.tmp, "report.json")]
        if tls:
            argv += ["--gateway-agent", "localhost:%d" % gw.tls, "--tls",
                     "--ca", os.path.join(self.tmp, "dev.crt")]
        else:
            argv += ["--gateway-agent", "127.0.0.1:%d" % gw.plain, "--plain"]
        argv += ["--frontend", frontend or "127.0.0.1:%d" % gw.frontend]
        return argv + [str(a) for a in args]

    def run_sim(self, argv, timeout=45, expect_rc=0):
        r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           timeout=timeout)
        self.assertEqual(r.returncode, expect_rc,
                         "agentsim exit %d\nstdout:\n%s\nstderr:\n%s"
                         % (r.returncode, r.stdout, r.stderr[-3000:]))
        with open(os.path.join(self.tmp, "report.json")) as f:
            return json.load(f)

    def assertIntact(self, report):
        self.assertEqual(report["integrity_errors"]["total"], 0, report["integrity_errors"])
        self.assertEqual(report["result"], "pass")


class SteadyTest(SimTestCase):
    def test_steady_tls_500_agents_50_streams_verify_every_packet(self):
        gw = self.gateway()
        r = self.run_sim(self.sim_argv(gw, "steady", tls=True, args=[
            "--agents", 500, "--streams", 50, "--bitrate", "256k", "--duration", 8,
            "--sources", SOURCES]))
        self.assertEqual(r["agents"]["configured"], 500)
        self.assertEqual(r["agents"]["up_at_end_of_load"], 500)
        self.assertIsNotNone(r["agents"]["time_to_connect_all_s"])
        self.assertEqual(r["agents"]["failures"], {})
        # 50 sessions from start to TEARDOWN, every open answered by its camera.
        self.assertEqual(r["rtsp_sessions"], {"completed": 50})
        self.assertEqual(r["opens"]["by_result"], {"ok": 50})
        self.assertEqual(r["agents"]["data_connections"], {"ok": 50})
        # 8 s x 50 streams x 25 fps, each frame several packets: every one checked.
        self.assertGreater(r["packets_verified"], 50 * 25 * 6)
        self.assertGreater(r["bytes_verified"], 50 * 256000 / 8 * 6)
        self.assertGreater(r["opens"]["latency"]["p99_ms"], 0)
        self.assertIntact(r)

    def test_steady_plain_with_snapshots_and_metrics(self):
        gw = self.gateway()
        argv = self.sim_argv(gw, "steady", args=[
            "--agents", 100, "--streams", 5, "--snapshot-rate", 30, "--snapshot-size", "100k",
            "--duration", 4, "--metrics-listen", "127.0.0.1:0"])
        sim = self.procs.start("agentsim", argv)
        port = int(sim.wait_line(r"agentsim: metrics port=(\d+)", 10).group(1))
        sim.wait_line(r"agentsim: agents-up 100/100", 20)
        time.sleep(1.5)
        text = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=5).read()
        text = text.decode()
        self.assertIn("camtunnel_agentsim_agents_up 100", text)
        self.assertIn('camtunnel_agentsim_opens_total{result="ok"}', text)
        self.assertIn("camtunnel_agentsim_open_latency_seconds_bucket", text)
        self.assertEqual(sim.wait(30), 0, sim.stderr_tail())
        with open(os.path.join(self.tmp, "report.json")) as f:
            r = json.load(f)
        self.assertGreaterEqual(r["snapshots"].get("ok", 0), 60)
        self.assertEqual(set(r["snapshots"]) - {"ok", "stopped"}, set())
        self.assertEqual(r["rtsp_sessions"], {"completed": 5})
        self.assertGreater(r["bytes_verified"], 60 * 100000)
        self.assertIntact(r)


class ScenarioTest(SimTestCase):
    def test_churn_keeps_streams_intact(self):
        gw = self.gateway()
        r = self.run_sim(self.sim_argv(gw, "churn", args=[
            "--agents", 200, "--streams", 10, "--duration", 4, "--churn-rate", 10,
            "--churn-down-ms", 300, "--sources", SOURCES]))
        self.assertGreaterEqual(r["scenario_detail"]["drops"], 30)
        self.assertGreaterEqual(r["agents"]["reconnects"], 20)
        self.assertGreater(r["packets_verified"], 0)
        # Only whole sessions; a churned agent's tunnels are separate connections and live on.
        self.assertEqual(set(r["rtsp_sessions"]) - {"completed", "interrupted"}, set())
        self.assertIntact(r)

    def test_storm_self_all_agents_come_back(self):
        gw = self.gateway()
        start = time.monotonic()
        r = self.run_sim(self.sim_argv(gw, "storm", tls=True, args=[
            "--agents", 300, "--duration", 30, "--storm-after", 1, "--no-reconnect-window"]))
        storm = r["scenario_detail"]
        self.assertTrue(storm["recovered"], storm)
        self.assertEqual(storm["agents_dropped"], 300)
        self.assertGreater(storm["recovery_s"], 0)
        self.assertGreaterEqual(storm["reconnect_attempts"], 300)
        self.assertEqual(r["agents"]["reconnects"], 300)
        # Recovery ends the load phase early: far less than --duration.
        self.assertLess(time.monotonic() - start, 20)

    def test_open_rate_ramps_and_reports_steps(self):
        gw = self.gateway()
        r = self.run_sim(self.sim_argv(gw, "open-rate", args=[
            "--agents", 50, "--duration", 10, "--start-rate", 20, "--rate-step", 40,
            "--step-seconds", 1, "--max-rate", 100]))
        d = r["scenario_detail"]
        self.assertEqual(d["stop_reason"], "max_rate", d)
        self.assertEqual(d["sustained_rate_per_s"], 100)
        self.assertEqual([s["rate_per_s"] for s in d["steps"]], [20, 60, 100])
        self.assertTrue(all(s["passed"] and s["failures"] == 0 for s in d["steps"]), d)
        self.assertGreater(r["opens"]["by_result"]["ok"], 150)
        self.assertIntact(r)

    def test_soak_samples_the_gateway_process(self):
        gw = self.gateway()
        r = self.run_sim(self.sim_argv(gw, "soak", args=[
            "--agents", 50, "--duration", 4, "--gateway-pid", gw.pid]))
        g = r["process"]["gateway"]
        self.assertEqual(g["pid"], gw.pid)
        self.assertGreaterEqual(len(g["samples"]), 3)
        self.assertGreater(g["rss_bytes_max"], 1 << 20)
        self.assertGreater(r["opens"]["by_result"]["ok"], 5)  # soak's default mixed load
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


class FaultTest(SimTestCase):
    def test_camera_faults_are_reported_by_kind(self):
        gw = self.gateway()
        kinds = {"drop": "lost", "duplicate": "duplicate", "reorder": "reordered"}
        for fault, kind in kinds.items():
            with self.subTest(fault=fault):
                r = self.run_sim(self.sim_argv(gw, "steady", args=[
                    "--agents", 10, "--streams", 4, "--duration", 2, "--camera-fault", fault,
                    "--fault-every", 50]), expect_rc=1)
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
        sim.wait_line(r"agentsim: agents-up 3/3", 15)
        info = ffprobe_frames("rtsp://127.0.0.1:%d/sim-2/stream1" % gw.frontend, seconds=3,
                              timeout=20)
        self.assertEqual(info["codec_name"], "h264", info["stderr"])
        self.assertEqual((info["width"], info["height"]), (16, 16))
        self.assertGreater(info["nb_read_frames"], 25, info["stderr"])
        sim.signal(2)  # SIGINT: ends the run early, which still reports and exits 0
        self.assertEqual(sim.wait(15), 0, sim.stderr_tail())


class RestartTest(SimTestCase):
    def test_storm_after_gateway_restart(self):
        plain = free_port()
        gw = self.gateway(plain_port=plain, extra=["--reconnect_window_ms=500"])
        sim = self.procs.start("agentsim", self.sim_argv(gw, "storm", args=[
            "--agents", 100, "--duration", 40, "--storm-trigger", "gateway",
            "--backoff-max-ms", 500]))
        sim.wait_line(r"agentsim: agents-up 100/100", 15)
        self.assertEqual(gw.proc.stop(), 0)
        self.gateway(plain_port=plain, extra=["--reconnect_window_ms=500"])
        sim.wait_line(r"agentsim: load-done", 30)
        self.assertEqual(sim.wait(15), 0, sim.stderr_tail())
        with open(os.path.join(self.tmp, "report.json")) as f:
            storm = json.load(f)["scenario_detail"]
        self.assertTrue(storm["recovered"], storm)
        self.assertEqual(storm["agents_dropped"], 100, storm)
        self.assertLess(storm["recovery_s"], 15, storm)


class CliTest(SimTestCase):
    def test_bad_parameters_exit_2_with_the_reason(self):
        base = [AGENTSIM, "steady", "--gateway-agent", "127.0.0.1:1", "--plain",
                "--streamer-keys", "/nonexistent/keys"]
        cases = [
            ([AGENTSIM], "no scenario"),
            ([AGENTSIM, "hurricane"], "unknown scenario"),
            (base[:2] + ["--plain"], "--gateway-agent is required"),
            (base + ["--agents", "many"], "--agents"),
            (base + ["--streams", "3"], "--frontend"),
            (base + ["--sources", "10.0.0.9-10.0.0.1"], "--sources"),
            (base + ["--camera-fault", "explode"], "--camera-fault"),
            ([AGENTSIM, "steady", "--gateway-agent", "127.0.0.1:1", "--tls",
              "--streamer-keys", "k"], "--ca"),
            (base, "cannot read streamer keys file"),
        ]
        for argv, reason in cases:
            with self.subTest(argv=argv[1:]):
                r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   text=True, timeout=10)
                self.assertEqual(r.returncode, 2, r.stderr)
                self.assertIn(reason, r.stderr)


if __name__ == "__main__":
    unittest.main(argv=sys.argv[:1] + sys.argv[1:], verbosity=2)
