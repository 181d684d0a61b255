#!/usr/bin/python3
"""The control plane under a managed fleet, SQLite and PostgreSQL side by side in one run.

For each store backend: a gateway, one camtunnel-manager on that store (PostgreSQL: a throwaway
cluster started by the test fixture, tests/support/pg_cluster_main.cc), and camtunnel-agentsim
in managed mode with N agents (activation with per-serial factory secrets, manager links with
STATUS, ASSIGN followed into gateway connections). Measured:

  - activations per second and the time until every agent is linked, assigned and up on the
    gateway (agentsim's report);
  - the manager's RSS per agent (RSS with the fleet minus RSS before it, over N) and its steady
    CPU with the fleet linked (manager plus every PostgreSQL process, over --sample seconds);
  - kill -9 of the manager, a restart on the same store and port: relink p50 / p95 / max and
    how many relinked (agentsim's report); gateway reconnects (0: video never depended on it).

  bench/manager_fleet.py [--build build/release] [--agents 2000] [--heartbeat_ms 5000]
      [--sample 10] [--backends sqlite,postgresql] [--json bench/results/manager_fleet.json]

One manager and one agentsim process: the 50,000-agent target of several managers and
agentsim processes (managed mode takes --processes) is not scripted here yet.
"""

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests", "e2e"))
from support import Processes, free_port, make_dev_cert, wait_until  # noqa: E402

from benchlib import (descendants, head_commit, print_table,  # noqa: E402
                      process_cpu_seconds, stop_pg_fixture, write_result)

SOURCES = "127.0.0.2-127.0.0.9"


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        return int(re.search(r"^VmRSS:\s+(\d+) kB", f.read(), re.M).group(1))


def metric(port, name):
    text = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=10).read().decode()
    m = re.search(r"^%s(?:\{\})? (\S+)$" % re.escape(name), text, re.M)
    return int(float(m.group(1))) if m else None


def run_backend(args, backend, tmp):
    b = lambda name: os.path.join(args.build, name)
    gateway_bin, manager_bin = b("gateway/camtunnel-gateway"), b("manager/camtunnel-manager")
    agentsim_bin = b("agentsim/camtunnel-agentsim")
    procs = Processes(os.path.join(tmp, "logs"))
    try:
        keys = os.path.join(tmp, "keys")
        with open(keys, "w") as f:
            subprocess.run([gateway_bin, "new-streamer-key", "k1"], check=True, stdout=f)
        cert = make_dev_cert(tmp)
        gw = procs.start("gateway", [
            gateway_bin, "--agent_tls_listen=127.0.0.1:0", "--agent_plain_listen=127.0.0.1:0",
            "--cert=%s" % cert[0], "--key=%s" % cert[1], "--streamer_keys=%s" % keys,
            "--frontend_listen=127.0.0.1:0", "--admin_listen=127.0.0.1:0", "--log_level=warning",
            "--handshake_timeout_ms=30000"])
        m = gw.wait_line(r"ready agent_tls=(\d+) agent_plain=(\d+) frontend=(\d+) admin=(\d+)", 60)
        gw_tls, gw_admin = int(m.group(1)), int(m.group(4))
        store, pg = os.path.join(tmp, "manager.db"), None
        if backend == "postgresql":
            pg = procs.start("postgres", [b("tests/camtunnel_test_pg_cluster_fixture"), "run"],
                             stdin=subprocess.PIPE)
            store = pg.wait_line(r"^pg: conninfo=(.*)$", 120).group(1)
        streamers = os.path.join(tmp, "streamers.txt")
        with open(streamers, "w") as f:
            f.write("https://127.0.0.1:%d k1 %s http://127.0.0.1:%d\n" % (gw_tls, keys, gw_admin))
        master = os.path.join(tmp, "factory_master")
        with open(master, "w") as f:
            f.write(os.urandom(32).hex() + "\n")
        port = free_port()
        argv = [manager_bin, "--listen=127.0.0.1:%d" % port, "--admin_listen=127.0.0.1:0",
                "--cert=%s" % cert[0], "--key=%s" % cert[1], "--store=%s" % store,
                "--factory_master_file=%s" % master, "--operators=acme",
                "--streamers=%s" % streamers, "--manager_url=https://127.0.0.1:%d" % port,
                "--heartbeat_ms=%d" % args.heartbeat_ms, "--activation_burst=100000",
                "--handshake_timeout_ms=30000"]

        def start_manager():
            p = procs.start("manager", argv)
            return p, int(p.wait_line(r"^camtunnel-manager: ready port=\d+ admin=(\d+)", 30)
                          .group(1))

        mgr, admin = start_manager()
        time.sleep(1)
        rss_before = rss_kib(mgr.pid)
        report = os.path.join(tmp, "report.json")
        sim = procs.start("agentsim", [
            agentsim_bin, "steady", "--manager_url", "https://127.0.0.1:%d" % port,
            "--manager_ca_file", cert[0], "--ca", cert[0], "--factory_master_file", master,
            "--operator", "acme", "--agents", args.agents, "--agent_prefix", "bench-",
            "--sources", SOURCES, "--connect_concurrency", 256, "--connect_timeout", 300,
            "--duration", 900, "--backoff_max_ms", 5000, "--metrics_listen", "127.0.0.1:0",
            "--json_out", report])
        sim_port = int(sim.wait_line(r"agentsim: metrics port=(\d+)", 30).group(1))
        sim.wait_line(r"agentsim: agents-up %d/%d" % (args.agents, args.agents), 600)
        wait_until(lambda: metric(admin, "camtunnel_manager_links") == args.agents, 120,
                   what="every link at the manager")
        time.sleep(2)
        # Steady: the manager and every PostgreSQL process, heartbeats only.
        pids = [mgr.pid] + (descendants(pg.pid) if pg else [])
        cpu0, t0 = process_cpu_seconds(pids), time.monotonic()
        time.sleep(args.sample)
        pids = [mgr.pid] + (descendants(pg.pid) if pg else [])
        cpu_pct = 100.0 * (process_cpu_seconds(pids) - cpu0) / (time.monotonic() - t0)
        rss_per_agent = (rss_kib(mgr.pid) - rss_before) / args.agents
        # kill -9 and a restart on the same store and port.
        mgr.signal(signal.SIGKILL)
        mgr.wait(10)
        wait_until(lambda: metric(sim_port, "camtunnel_agentsim_manager_links_up") == 0, 60,
                   what="agentsim to see its links drop")
        mgr, admin = start_manager()
        wait_until(lambda: metric(sim_port, "camtunnel_agentsim_manager_relinks_total")
                   == args.agents, 300, what="every agent relinked")
        sim.signal(signal.SIGINT)
        sim.wait(120)
        with open(report) as f:
            r = json.load(f)
        m = r["managed"]
        return {"backend": backend, "agents": args.agents, "managers": 1, "gateways": 1,
                "agentsim_processes": 1, "heartbeat_ms": args.heartbeat_ms,
                "manager_activations_per_s": round(m["activations"]["per_s"], 1),
                "time_to_link_all_s": m["manager_links"]["time_to_link_all_s"],
                "manager_rss_kib_per_agent": round(rss_per_agent, 2),
                "manager_steady_cpu_pct": round(cpu_pct, 2),
                "relinked": m["relinks"]["count"],
                "relink_p50_s": m["relinks"]["p50_ms"] / 1000,
                "relink_p95_s": m["relinks"]["p95_ms"] / 1000,
                "relink_max_s": m["relinks"]["max_ms"] / 1000,
                "gateway_reconnects": r["agents"]["reconnects"]}
    finally:
        stop_pg_fixture(pg)
        procs.stop_all()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", default="build/release")
    ap.add_argument("--agents", type=int, default=2000)
    ap.add_argument("--heartbeat_ms", type=int, default=5000)
    ap.add_argument("--sample", type=float, default=10)
    ap.add_argument("--backends", default="sqlite,postgresql")
    ap.add_argument("--json", default="bench/results/manager_fleet.json")
    args = ap.parse_args()
    args.build = os.path.abspath(args.build)
    rows = []
    for backend in args.backends.split(","):
        with tempfile.TemporaryDirectory(prefix="manager-fleet-") as tmp:
            rows.append(run_backend(args, backend, tmp))
    keys = list(rows[0])
    print_table(keys, [[row[k] for k in keys] for row in rows])
    commit = head_commit()
    write_result(args.json, "manager_fleet", rows, commit=commit,
                 command=" ".join(["bench/manager_fleet.py"] + sys.argv[1:]))


if __name__ == "__main__":
    main()
