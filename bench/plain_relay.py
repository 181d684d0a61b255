#!/usr/bin/python3
"""Plain (no TLS) relay: the gateway's plain tunnel and the candidate relay mechanisms against
haproxy with splice and socat, side by side, with the same iperf3 traffic on loopback.

  camtunnel-plain  iperf3 -c (-R) -> socat CONNECT bridge -> gateway | gateway <=plain= agent
                   <- iperf3 -s (the relay inside the gateway as it is today)
  relay-copy       camtunnel-relaybench --mode copy: runtime Streams (multishot recv into
                   provided buffers, each copied into the other side's send queue)
  relay-handover   --mode handover: the same, receives of 8 KiB or more handed over whole (the
                   filled ring buffer becomes a send-queue chunk; the gateway's relay today)
  relay-splice     camtunnel-relaybench --mode splice: ring readiness + splice(2) through a pipe
  haproxy          mode tcp, option splice-auto, one thread
  socat            TCP-LISTEN,fork -> TCP (read/write)

Figure of merit: relay CPU in % of one core per Gbit/s (utime + stime from /proc), with the
machine's total and softirq CPU beside it. IORING_OP_SPLICE is not a candidate: it stalls a
request/answer relay (runtime/splice_pump.h says why), whatever it measures in bulk.

  bench/plain_relay.py [--build build/release] [--seconds 10] [--only ...] [--loads ...]
      [--json bench/results/plain_relay.json]
"""

import argparse
import os
import tempfile

from benchlib import RELAY_LOADS as LOADS, Camtunnel, free_port, run_contender, \
    wait_listening, write_result


class RelayBench:
    reverse = False

    def __init__(self, mode):
        self.mode, self.name = mode, "relay-" + mode

    def start(self, procs, d, build, sink_port, env):
        self.port = free_port()
        p = procs.start(self.name, [os.path.join(build, "bench", "camtunnel-relaybench"),
                                    "--listen", "127.0.0.1:%d" % self.port,
                                    "--to", "127.0.0.1:%d" % sink_port, "--mode", self.mode], env)
        wait_listening(self.port)
        return p.pid


class HaproxySplice:
    name = "haproxy"
    reverse = False

    def start(self, procs, d, build, sink_port, env):
        self.port = free_port()
        conf = os.path.join(d, "haproxy.cfg")
        with open(conf, "w") as f:
            f.write("global\n  nbthread 1\n  maxconn 4000\n"
                    "defaults\n  mode tcp\n  option splice-auto\n  timeout connect 5s\n"
                    "  timeout client 60s\n  timeout server 60s\n"
                    "frontend plain\n  bind 127.0.0.1:%d\n  default_backend cam\n"
                    "backend cam\n  server s1 127.0.0.1:%d\n" % (self.port, sink_port))
        p = procs.start("haproxy", ["haproxy", "-db", "-f", conf], env)
        wait_listening(self.port)
        return p.pid


class Socat:
    name = "socat"
    reverse = False

    def start(self, procs, d, build, sink_port, env):
        self.port = free_port()
        p = procs.start("socat", ["socat", "TCP-LISTEN:%d,bind=127.0.0.1,reuseaddr,fork"
                                  % self.port, "TCP:127.0.0.1:%d" % sink_port], env)
        wait_listening(self.port)
        return p.pid


def contenders():
    return [Camtunnel(tls=False), RelayBench("copy"), RelayBench("handover"), RelayBench("splice"),
            HaproxySplice(), Socat()]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default=os.path.join(os.path.dirname(__file__), "..", "build",
                                                    "release"))
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--only", default="")
    ap.add_argument("--loads", default="")
    ap.add_argument("--json", default=os.path.join(os.path.dirname(__file__), "results",
                                                   "plain_relay.json"))
    a = ap.parse_args()
    build = os.path.abspath(a.build)
    only = set(filter(None, a.only.split(",")))
    loads = [l for l in LOADS if not a.loads or l[0] in a.loads.split(",")]
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-plain-relay-") as d:
        for c in contenders():
            if only and c.name not in only:
                continue
            cd = os.path.join(d, c.name)
            os.makedirs(cd)
            results += run_contender(c, cd, build, dict(os.environ), loads, a.seconds,
                                     width=16)
    system_of = {"camtunnel-plain": "camtunnel", "haproxy": "haproxy", "socat": "socat"}
    metric = {"bulk-1": "plain_relay_cpu_pct_per_gbit",
              "paced-1": "plain_relay_cpu_pct_per_gbit_paced_1stream"}
    rows = []
    for r in results:
        if r["load"] in metric and r["relay_cpu_pct_per_gbit"]:
            rows.append({"system": system_of.get(r["system"], "camtunnel"),
                         "variant": r["system"], "metric": metric[r["load"]],
                         "value": round(r["relay_cpu_pct_per_gbit"], 2), "unit": "%core/Gbit/s"})
    write_result(a.json, "plain_relay", rows, runs=results)


if __name__ == "__main__":
    main()
