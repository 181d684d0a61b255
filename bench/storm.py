#!/usr/bin/python3
"""Reconnect storm: N TLS agents on one gateway, the gateway restarted, time until all are back;
then the gateway's CPU per full TLS handshake, as handshakes per core per second.

Storm run: a gateway with --reconnect_window_ms (30,000 by default) and N agents from
camtunnel-agentsim's `storm` scenario (--storm_trigger gateway; split over processes of at most
9,500 agents). Once all N are connected (the gateway's camtunnel_agents_connected), the gateway
gets SIGTERM (or --signal KILL), is waited for, and a new one starts on the same ports. The
storm time is from the signal until the new gateway's camtunnel_agents_connected is N again
(target <= 60 s, none lost); agentsim's own recovery time (first agent down -> fleet complete)
and its counts (attempts, failures by kind, agents up at the end) are read from its report.
  SIGTERM is a graceful restart: the draining gateway sends GOAWAY with its
  --drain_reconnect_ms hint, which agents obey instead of the reconnect window; SIGKILL (a crash)
  makes them lose the session, and then they spread over WELCOME's reconnect window.
Full vs resumed handshakes are counted apart by the gateway
(camtunnel_agent_tls_handshakes_total{kind}); agentsim resumes each agent's newest session as
camtunnel-agent does, which after a restart works when the gateway kept its ticket keys.

Handshake run: a fresh gateway and a fresh fleet (agentsim `steady`, unpaced connects,
--notls_resume, so every handshake is full). The gateway's
CPU (utime + stime, /proc) from before the fleet starts until all are connected, divided by the
handshakes it completed (camtunnel_agent_connections_total{result="accepted"}), is the CPU per
full handshake, all of the gateway's per-connect work included (accept, TLS 1.3 with an ECDSA
P-256 certificate, HELLO proof, WELCOME); 1e6 / that = handshakes per core per second (target
>= 3,000). The end is taken from agentsim's "agents-up" line, not by polling /metrics: a scrape
lists /proc/self/fd, O(connections), and would be billed to the handshakes (the storm run
polls every 0.5 s, which costs the gateway a few % of a core at 19,000 agents).

  bench/storm.py [--build build/release] [--agents 19000] [--window-ms 30000]
      [--signal TERM|KILL] [--handshake-agents N] [--skip-storm] [--skip-handshakes]
      [--json bench/results/storm.json]

Needs agentsim with --processes (it checks). Loopback only; every process is ours and ended by
PID; every phase has a deadline. Preflight as bench/idle_agents.py (fd limit, source
addresses, ports).
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

from benchlib import (Procs, cpu_seconds, free_port, metric_sum, metrics, print_table,
                     wait_port, write_result)
from idle_agents import PER_PROCESS, preflight, write_certs

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
SOURCES = "127.0.0.2-127.0.0.9"


def check_agentsim(sim):
    out = subprocess.run([sim, "--help"], capture_output=True, text=True).stdout
    missing = [f for f in ("--processes", "--agent_index_base", "--after_storm") if f not in out]
    if missing:
        sys.exit("%s lacks %s: build a current copy (cmake -S . -B build/h-bench -G Ninja "
                 "-DCMAKE_BUILD_TYPE=Release && cmake --build build/h-bench --target "
                 "camtunnel-gateway camtunnel-agent camtunnel-agentsim) and pass --build"
                 % (sim, ", ".join(missing)))


class Gateway:
    """One gateway configuration, started (and restarted) on the same ports."""

    def __init__(self, build, d, extra):
        self.bin = os.path.join(build, "gateway", "camtunnel-gateway")
        self.d, self.extra = d, extra
        self.agent_port, self.frontend, self.admin = free_port(), free_port(), free_port()
        self.keys = os.path.join(d, "streamer.keys")
        if not os.path.exists(self.keys):
            with open(self.keys, "w") as f:
                subprocess.run([self.bin, "new-streamer-key", "k1"], stdout=f, check=True)

    def start(self, procs, name):
        p = procs.start(name, [
            self.bin, "--agent_tls_listen=127.0.0.1:%d" % self.agent_port,
            "--cert=" + os.path.join(self.d, "cert.pem"),
            "--key=" + os.path.join(self.d, "key.pem"), "--streamer_keys=" + self.keys,
            "--frontend_listen=127.0.0.1:%d" % self.frontend,
            "--admin_listen=127.0.0.1:%d" % self.admin, "--log_level=warning"] + self.extra)
        deadline = time.monotonic() + 15
        while True:
            if p.poll() is not None:
                with open(os.path.join(procs.logdir, name + ".log")) as f:
                    raise RuntimeError("%s exited (%s): %s" % (name, p.returncode,
                                                                f.read()[-300:].strip()))
            # Its own "ready" line, not a connect to its port: after a SIGKILL the old
            # gateway's listeners can outlive it while the kernel tears down its io_uring, and
            # they still complete connects.
            with open(os.path.join(procs.logdir, name + ".log")) as f:
                if "camtunnel-gateway: ready" in f.read():
                    return p
            if time.monotonic() > deadline:
                raise RuntimeError("%s: not ready within 15 s" % name)
            time.sleep(0.02)

    def restart(self, procs, name, logdir, give_up_s=60):
        """Starts again on the same ports, retrying while a port is still held (the new
        gateway refuses to share one); what held it is logged (ss) for the record."""
        t0 = time.monotonic()
        for attempt in range(1, 1000):
            try:
                n = "%s-try%d" % (name, attempt) if attempt > 1 else name
                return self.start(procs, n), attempt
            except RuntimeError as e:
                with open(os.path.join(logdir, name + "-ports-held.log"), "a") as f:
                    f.write("attempt %d after %.2f s: %s\n" % (attempt, time.monotonic() - t0, e))
                    for port in (self.agent_port, self.frontend, self.admin):
                        f.write(subprocess.run(["ss", "-tanpH", "( sport = :%d )" % port],
                                               capture_output=True, text=True).stdout[:4000])
                if time.monotonic() - t0 > give_up_s:
                    raise RuntimeError("the gateway could not listen again within %d s: %s"
                                       % (give_up_s, e))
                time.sleep(0.5)

    def connected(self):
        try:
            return int(metric_sum(metrics(self.admin), "camtunnel_agents_connected"))
        except OSError:
            return -1


def agentsim(procs, build, d, gw, scenario, n, prefix, seconds, extra, name):
    sim = os.path.join(build, "agentsim", "camtunnel-agentsim")
    k = (n + PER_PROCESS - 1) // PER_PROCESS
    report = os.path.join(d, name + ".json")
    argv = [sim, scenario, "--gateway_agent", "localhost:%d" % gw.agent_port, "--tls", "--ca",
            os.path.join(d, "cert.pem"), "--streamer_keys", gw.keys, "--agents", str(n),
            "--agent_prefix", prefix, "--sources", SOURCES, "--duration", str(seconds),
            "--connect_timeout", "150", "--json_out", report] + \
        (["--processes", str(k)] if k > 1 else []) + extra
    return procs.start(name, argv), report


def wait_connected(gw, n, deadline_s, sims=(), poll=0.5, trace=None, t0=None):
    """Polls the gateway until n agents are connected; returns the seconds it took (None if
    the deadline passed). trace collects (t, connected) samples."""
    t0 = t0 if t0 is not None else time.monotonic()
    last = None
    while True:
        c = gw.connected()
        now = time.monotonic() - t0
        if trace is not None and c != last:
            trace.append((round(now, 2), c))
            last = c
        if c >= n:
            return now
        if now > deadline_s or any(p.poll() is not None for p in sims):
            return None
        time.sleep(poll)


def wait_log(path, needle, deadline_s, proc):
    """Seconds until `needle` appears in the log at `path` (None: deadline or exit first)."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < deadline_s and proc.poll() is None:
        with open(path) as f:
            if needle in f.read():
                return time.monotonic() - t0
        time.sleep(0.05)
    return None


def read_report(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def storm_run(build, d, n, window_ms, sig, settle, logdir, gateway_args=()):
    procs = Procs(logdir)
    gw = Gateway(build, d, ["--reconnect_window_ms=%d" % window_ms, "--heartbeat_ms=30000"] +
                 list(gateway_args))
    deadline = window_ms / 1000 + 90          # the longest the storm may take before we give up
    try:
        g1 = gw.start(procs, "storm-gateway-1")
        sim, report = agentsim(procs, build, d, gw, "storm", n, "storm-", 150 + deadline + 60,
                               ["--storm_trigger", "gateway", "--after_storm", "2"],
                               "storm-agentsim")
        up = wait_connected(gw, n, 150, [sim])
        if up is None:
            raise RuntimeError("only %d of %d agents connected before the storm"
                               % (gw.connected(), n))
        print("storm: %d agents up in %.1f s; settling %d s" % (n, up, settle), flush=True)
        time.sleep(settle)
        m1 = metrics(gw.admin)
        t0 = time.monotonic()
        g1.send_signal(sig)
        try:
            g1.wait(timeout=40)
        except subprocess.TimeoutExpired:
            raise RuntimeError("the gateway did not exit within 40 s of SIG%s"
                               % signal.Signals(sig).name[3:])
        down_s = time.monotonic() - t0
        g2, tries = gw.restart(procs, "storm-gateway-2", d)
        restart_s = time.monotonic() - t0
        c0 = cpu_seconds(g2.pid)
        trace = []
        back = wait_connected(gw, n, deadline, [], trace=trace, t0=t0)
        c1 = cpu_seconds(g2.pid)
        m2 = metrics(gw.admin)
        connected_end = gw.connected()
        try:
            sim.wait(timeout=60)
        except subprocess.TimeoutExpired:
            sim.send_signal(signal.SIGINT)   # agentsim writes its report on SIGINT
            sim.wait(timeout=30)
        r = read_report(report)
        sd = r.get("scenario_detail", {})
        accepted = metric_sum(m2, "camtunnel_agent_connections_total", result="accepted")
        failed = metric_sum(m2, "camtunnel_agent_connections_total") - accepted
        resumed_keys = sorted(k for k in m2 if "resum" in k)
        res = {"agents": n, "signal": "SIG" + signal.Signals(sig).name[3:],
               "reconnect_window_ms": window_ms,
               "old_gateway_exit_s": round(down_s, 2), "new_gateway_start_attempts": tries,
               "new_gateway_listening_s":
                   round(restart_s, 2),
               "all_back_s": round(back, 2) if back is not None else None,
               "connected_at_end": connected_end,
               "lost": n - max(connected_end, 0),
               "agents_connected_before": int(metric_sum(m1, "camtunnel_agents_connected")),
               "gateway_handshakes_accepted": int(accepted),
               "gateway_connections_refused_or_failed": int(failed),
               "gateway_cpu_s_during_storm": round(c1 - c0, 3) if None not in (c0, c1)
               else None,
               "resumed_handshake_metrics": {k: m2[k] for k in resumed_keys} or None,
               "agentsim": {"recovery_s": sd.get("recovery_s"),
                            "recovered": sd.get("recovered"),
                            "agents_dropped": sd.get("agents_dropped"),
                            "reconnect_attempts": sd.get("reconnect_attempts"),
                            "up_at_end_of_load": r.get("agents", {}).get("up_at_end_of_load"),
                            "goaways": r.get("agents", {}).get("goaways"),
                            "failures": r.get("agents", {}).get("failures"),
                            "exit_status": sim.returncode},
               "trace": trace}
        return res
    finally:
        procs.stop_all()


def handshake_run(build, d, n, logdir, gateway_args=()):
    procs = Procs(logdir)
    gw = Gateway(build, d, ["--heartbeat_ms=30000"] + list(gateway_args))
    try:
        g = gw.start(procs, "hs-gateway")
        time.sleep(0.5)
        m0, c0, t0 = metrics(gw.admin), cpu_seconds(g.pid), time.monotonic()
        sim, report = agentsim(procs, build, d, gw, "steady", n, "hs-", 2,
                               ["--connect_rate", "0", "--notls_resume"], "hs-agentsim")
        # agentsim's "agents-up" line, not the gateway's /metrics: a scrape lists
        # /proc/self/fd (process_facts.cc), O(agents), and would be billed to the handshakes.
        up = wait_log(os.path.join(logdir, "hs-agentsim.log"), "agents-up", 150, sim)
        c1, t1, m1 = cpu_seconds(g.pid), time.monotonic(), metrics(gw.admin)
        if up is None or metric_sum(m1, "camtunnel_agents_connected") < n:
            raise RuntimeError("only %d of %d agents connected" % (gw.connected(), n))
        sim.wait(timeout=60)
        r = read_report(report)
        accepted = metric_sum(m1, "camtunnel_agent_connections_total", result="accepted") - \
            metric_sum(m0, "camtunnel_agent_connections_total", result="accepted")
        total = metric_sum(m1, "camtunnel_agent_connections_total") - \
            metric_sum(m0, "camtunnel_agent_connections_total")
        cpu = c1 - c0
        us = cpu / accepted * 1e6
        return {"agents": n, "connect_all_s": round(t1 - t0, 2),
                "gateway_cpu_s": round(cpu, 3), "handshakes_accepted": int(accepted),
                "connections_not_accepted": int(total - accepted),
                "gateway_cpu_us_per_handshake": round(us, 1),
                "handshakes_per_core_s": round(1e6 / us),
                "gateway_core_busy_pct": round(cpu / (t1 - t0) * 100, 1),
                "agentsim_connect_attempts": r.get("agents", {}).get("connect_attempts"),
                "agentsim_failures": r.get("agents", {}).get("failures")}
    finally:
        procs.stop_all()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default=os.path.join(TOP, "build", "release"))
    ap.add_argument("--agents", type=int, default=19000)
    ap.add_argument("--window-ms", type=int, default=30000)
    ap.add_argument("--signal", choices=("TERM", "KILL"), default="TERM")
    ap.add_argument("--settle", type=int, default=5)
    ap.add_argument("--handshake-agents", type=int, default=0,
                    help="fleet of the handshake run (default: --agents)")
    ap.add_argument("--skip-storm", action="store_true")
    ap.add_argument("--skip-handshakes", action="store_true")
    ap.add_argument("--gateway-arg", action="append", default=[],
                    help="extra gateway flag, e.g. --gateway-arg=--shards=1 (repeatable)")
    ap.add_argument("--json", default=os.path.join(TOP, "bench", "results", "storm.json"))
    ap.add_argument("--keep", help="keep logs and reports in this directory")
    a = ap.parse_args()
    build = os.path.abspath(a.build)
    hs_n = a.handshake_agents or a.agents
    problems = preflight(max(a.agents, hs_n))
    if problems:
        print("preflight: this machine cannot hold %d agents:" % max(a.agents, hs_n),
              file=sys.stderr)
        for p in problems:
            print("  - " + p, file=sys.stderr)
        sys.exit(2)
    check_agentsim(os.path.join(build, "agentsim", "camtunnel-agentsim"))
    storm = hs = None
    with tempfile.TemporaryDirectory(prefix="bench-storm-") as tmp:
        d = a.keep or tmp
        os.makedirs(d, exist_ok=True)
        write_certs(d)
        if not a.skip_storm:
            storm = storm_run(build, d, a.agents, a.window_ms, getattr(signal, "SIG" + a.signal),
                              a.settle, d, a.gateway_arg)
        if not a.skip_handshakes:
            hs = handshake_run(build, d, hs_n, d, a.gateway_arg)
    rows, table = [], []
    resumed_note = None
    if storm:
        s, sa = storm, storm["agentsim"]
        ok = s["all_back_s"] is not None and s["lost"] == 0
        print("\nstorm: %d TLS agents, gateway restarted with %s, reconnect window %d ms"
              % (s["agents"], s["signal"], s["reconnect_window_ms"]))
        table += [["old gateway exited after", "%.2f s" % s["old_gateway_exit_s"]],
                  ["new gateway listening after", "%.2f s (%d start attempts)"
                   % (s["new_gateway_listening_s"], s["new_gateway_start_attempts"])],
                  ["all agents back after (gateway /metrics)",
                   "%.2f s (target <= 60 s)" % s["all_back_s"] if s["all_back_s"] is not None
                   else "NOT within the deadline"],
                  ["agentsim recovery (first down -> all up)", "%s s" % sa["recovery_s"]],
                  ["connected at the end / lost", "%d / %d" % (s["connected_at_end"],
                                                               s["lost"])],
                  ["agentsim reconnect attempts", sa["reconnect_attempts"]],
                  ["agentsim GOAWAYs received", sa["goaways"]],
                  ["agentsim failures by kind", json.dumps(sa["failures"])],
                  ["new gateway: handshakes accepted", s["gateway_handshakes_accepted"]],
                  ["new gateway: connections not accepted",
                   s["gateway_connections_refused_or_failed"]],
                  ["new gateway CPU during the storm", "%s s" % s["gateway_cpu_s_during_storm"]]]
        if s["resumed_handshake_metrics"]:
            table.append(["resumption metrics", json.dumps(s["resumed_handshake_metrics"])])
        else:
            resumed_note = ("full vs resumed handshakes: NOT counted: the gateway exposes no "
                            "resumption metric, and agentsim offers no session tickets, so "
                            "every handshake in this storm was a full one")
            table.append(["full vs resumed", "not exposed by the gateway (all full: agentsim "
                          "offers no tickets)"])
        if s["all_back_s"] is not None:
            rows.append({"system": "camtunnel", "metric": "storm_reconnect_seconds",
                         "value": s["all_back_s"], "unit": "s", "variant": s["signal"]})
        rows.append({"system": "camtunnel", "metric": "agents_connected",
                     "value": s["connected_at_end"], "unit": "agents",
                     "variant": "after storm, of %d" % s["agents"]})
        if not ok:
            print("storm: FAILED: %s" % ("agents lost" if s["lost"] else "deadline passed"))
    if hs:
        table += [["handshake run: fresh fleet", "%d agents, all up in %.2f s"
                   % (hs["agents"], hs["connect_all_s"])],
                  ["gateway CPU / handshakes accepted", "%.3f s / %d (%d not accepted)"
                   % (hs["gateway_cpu_s"], hs["handshakes_accepted"],
                      hs["connections_not_accepted"])],
                  ["gateway CPU per full handshake", "%.1f us" % hs["gateway_cpu_us_per_handshake"]],
                  ["full handshakes per core per second",
                   "%d (target >= 3,000)" % hs["handshakes_per_core_s"]],
                  ["gateway core busy while connecting", "%.1f %%" % hs["gateway_core_busy_pct"]]]
        rows.append({"system": "camtunnel", "metric": "handshakes_per_core_s",
                     "value": hs["handshakes_per_core_s"], "unit": "handshakes/core/s",
                     "variant": "full (no resumption), fresh fleet of %d" % hs["agents"]})
    print()
    print_table(["measure", "value"], table)
    if resumed_note:
        print(resumed_note)
    write_result(a.json, "storm", rows, storm=storm, handshakes=hs, gateway_args=a.gateway_arg,
                 resumed_vs_full=resumed_note or "see storm.resumed_handshake_metrics")


if __name__ == "__main__":
    main()
