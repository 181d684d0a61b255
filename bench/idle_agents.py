#!/usr/bin/python3
"""Idle cost of TLS agents on one gateway: RSS per agent (the slope from 1,000 to 19,000
agents) and steady CPU, with 30 s heartbeats.

For each fleet size N a fresh gateway is started, camtunnel-agentsim connects N TLS agents
(split over processes of at most 9,500 agents: a process here holds at most 20,000 file
descriptors), the fleet settles, then the gateway's RSS (/proc/PID/status VmRSS) and CPU
(utime + stime over the sampling window) are read while every agent is connected. The RSS per
agent is the least-squares slope over the sizes, so the gateway's fixed memory (rings, buffer
pool, code) does not count; the baseline is the same gateway with no agent.

A preflight checks what the scale needs and says what is missing instead of failing later:
the open-file limit (the gateway needs N + a few hundred), 8 source addresses in 127.0.0.0/8
for agentsim (one address has ~28,000 ephemeral ports), the local port range and tw_reuse.

  bench/idle_agents.py [--build build/release] [--sizes 1000,5000,10000,19000]
      [--settle 10] [--sample 20] [--gateway-arg=--shards=1 ...]
      [--json bench/results/idle_agents.json]
"""

import argparse
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time

from benchlib import Procs, free_port, process_cpu_seconds, wait_port, write_result

PER_PROCESS = 9500
SOURCES = ["127.0.0.%d" % i for i in range(2, 10)]


def preflight(max_agents):
    problems = []
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = max_agents + 500
    if hard < need:
        problems.append("open-file limit: hard %d < %d needed by the gateway (ulimit -Hn; in "
                        "deploy/sysctl and LimitNOFILE for a real host)" % (hard, need))
    elif soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))   # children inherit it
    for a in SOURCES:
        try:
            with socket.socket() as s:
                s.bind((a, 0))
        except OSError as e:
            problems.append("source address %s cannot be bound: %s" % (a, e))
            break
    with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
        lo, hi = (int(x) for x in f.read().split())
    if (hi - lo) * len(SOURCES) < max_agents * 1.2:
        problems.append("ephemeral ports %d-%d x %d sources too few for %d agents"
                        % (lo, hi, len(SOURCES), max_agents))
    with open("/proc/sys/net/ipv4/tcp_tw_reuse") as f:
        if f.read().strip() == "0":
            problems.append("net.ipv4.tcp_tw_reuse=0: repeated runs may run out of ports")
    return problems


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def metric(port, name):
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        while True:
            b = s.recv(65536)
            if not b:
                break
            data += b
    for line in data.decode().splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def write_certs(d):
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2", "-subj",
                    "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
                    "-keyout", os.path.join(d, "key.pem"), "-out", os.path.join(d, "cert.pem")],
                   check=True, capture_output=True)


def run_size(build, d, n, settle, sample, heartbeat_ms, gateway_args=()):
    procs = Procs(d)
    gw = os.path.join(build, "gateway", "camtunnel-gateway")
    sim = os.path.join(build, "agentsim", "camtunnel-agentsim")
    keys = os.path.join(d, "streamer.keys")
    if not os.path.exists(keys):
        with open(keys, "w") as f:
            subprocess.run([gw, "new-streamer-key", "k1"], stdout=f, check=True)
    agent_port, frontend, admin = free_port(), free_port(), free_port()
    try:
        g = procs.start("gateway-%d" % n, [
            gw, "--agent_tls_listen=127.0.0.1:%d" % agent_port,
            "--cert=" + os.path.join(d, "cert.pem"), "--key=" + os.path.join(d, "key.pem"),
            "--streamer_keys=" + keys, "--frontend_listen=127.0.0.1:%d" % frontend,
            "--admin_listen=127.0.0.1:%d" % admin, "--heartbeat_ms=%d" % heartbeat_ms,
            "--log_level=warning"] + list(gateway_args))
        wait_port(admin)
        baseline = rss_kib(g.pid)
        hold = 120 + settle + sample
        sims = []
        for i, start in enumerate(range(0, n, PER_PROCESS)):
            count = min(PER_PROCESS, n - start)
            srcs = SOURCES[(i * 4) % len(SOURCES):][:4] or SOURCES[:4]
            sims.append(procs.start("agentsim-%d-%d" % (n, i), [
                sim, "steady", "--gateway_agent", "localhost:%d" % agent_port, "--tls",
                "--ca", os.path.join(d, "cert.pem"), "--streamer_keys", keys,
                "--agents", str(count), "--agent_prefix", "idle%d-" % i,
                "--sources", "%s-%s" % (srcs[0], srcs[-1]), "--duration", str(hold),
                "--connect_timeout", "120"]))
        t0 = time.monotonic()
        while metric(admin, "camtunnel_agents_connected") < n:
            if time.monotonic() - t0 > 150 or any(p.poll() is not None for p in sims):
                raise RuntimeError("only %d of %d agents connected"
                                   % (metric(admin, "camtunnel_agents_connected"), n))
            time.sleep(0.5)
        up_s = time.monotonic() - t0
        time.sleep(settle)
        c0, t1 = process_cpu_seconds([g.pid]), time.monotonic()
        time.sleep(sample)
        cpu_pct = (process_cpu_seconds([g.pid]) - c0) / (time.monotonic() - t1) * 100
        rss = rss_kib(g.pid)
        connected = metric(admin, "camtunnel_agents_connected")
        return {"agents": n, "connected": int(connected), "up_seconds": round(up_s, 1),
                "baseline_rss_kib": baseline, "rss_kib": rss,
                "rss_per_agent_kib": round((rss - baseline) / n, 2),
                "steady_cpu_pct": round(cpu_pct, 2)}
    finally:
        procs.stop_all()


def slope(points):
    n = len(points)
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    den = sum((x - mx) ** 2 for x, _ in points)
    return sum((x - mx) * (y - my) for x, y in points) / den if den else 0.0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default=os.path.join(os.path.dirname(__file__), "..", "build",
                                                    "release"))
    ap.add_argument("--sizes", default="1000,5000,10000,19000")
    ap.add_argument("--settle", type=int, default=10)
    ap.add_argument("--sample", type=int, default=20)
    ap.add_argument("--heartbeat-ms", type=int, default=30000)
    ap.add_argument("--gateway-arg", action="append", default=[],
                    help="extra gateway flag, e.g. --gateway-arg=--shards=1 (repeatable)")
    ap.add_argument("--json", default=os.path.join(os.path.dirname(__file__), "results",
                                                   "idle_agents.json"))
    a = ap.parse_args()
    sizes = [int(x) for x in a.sizes.split(",")]
    problems = preflight(max(sizes))
    if problems:
        print("preflight: this machine cannot hold %d agents:" % max(sizes), file=sys.stderr)
        for p in problems:
            print("  - " + p, file=sys.stderr)
        sys.exit(2)
    build = os.path.abspath(a.build)
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-idle-") as d:
        write_certs(d)
        for n in sizes:
            r = run_size(build, d, n, a.settle, a.sample, a.heartbeat_ms, a.gateway_arg)
            rows.append(r)
            print("%6d agents (up in %5.1f s): gateway RSS %7.1f MiB (%+.1f MiB over %d KiB "
                  "idle), %5.2f KiB/agent, CPU %5.2f %%"
                  % (n, r["up_seconds"], r["rss_kib"] / 1024,
                     (r["rss_kib"] - r["baseline_rss_kib"]) / 1024, r["baseline_rss_kib"],
                     r["rss_per_agent_kib"], r["steady_cpu_pct"]), flush=True)
    kib = slope([(r["agents"], r["rss_kib"]) for r in rows]) if len(rows) > 1 else \
        rows[0]["rss_per_agent_kib"]
    print("RSS slope %d..%d agents: %.2f KiB per idle TLS agent" % (sizes[0], sizes[-1], kib))
    out = [{"system": "camtunnel", "metric": "idle_tls_agent_rss_kib", "value": round(kib, 2),
            "unit": "KiB"},
           {"system": "camtunnel", "metric": "agents_connected", "value": rows[-1]["connected"],
            "unit": "agents"},
           {"system": "camtunnel", "metric": "steady_cpu_pct",
            "value": rows[-1]["steady_cpu_pct"], "unit": "%core"}]
    write_result(a.json, "idle_agents", out, sizes=rows, gateway_args=a.gateway_arg)


if __name__ == "__main__":
    main()
