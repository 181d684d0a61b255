#!/usr/bin/python3
"""Added latency of a 64-byte ping-pong on an open tunnel: camtunnel against a haproxy TLS
chain and a direct connection, measured in the same run, interleaved.

  direct:    client -> echo
  camtunnel: client -CONNECT bench-cam:<echo port>-> gateway frontend | gateway <=TLS= camtunnel-agent
             -> echo   (the tunnel is opened once, then the round trips run on it)
  haproxy:   client -> stunnel client =TLS=> haproxy (mode tcp, ssl on bind, one thread) -> echo

Same TLS everywhere (TLS 1.3 TLS_AES_128_GCM_SHA256 over X25519, one OpenSSL config, as
bench/tls_relay.py), TCP_NODELAY on every socket of ours (stunnel and haproxy set it by
default). The echo server is this script (--echo mode: a thread per connection, recv/sendall).
The client is this script too: one connection per path, warmed up, then --rounds rounds of
--count back-to-back round trips per path in turn (so machine load hits every path alike);
each round trip is timed with perf_counter_ns from send to the 64th byte back. Reported: p50
and p99 per path, and the added latency over direct (the client's and the echo's own cost are
in all three, so the differences are what the relays add).

  bench/pingpong.py [--build build/release] [--rounds 20] [--count 500]
      [--json bench/results/pingpong.json]

Needs haproxy, stunnel4, socat (deploy/install-bench-deps.sh). Loopback only; every process is
ours and ended by PID; bounded by --rounds x --count and --max-seconds.
"""

import argparse
import os
import shutil
import socket
import sys
import tempfile
import threading
import time

from benchlib import (AGENT_ID, Camtunnel, Procs, free_port, percentile, print_table,
                      wait_port, write_result)
from tls_relay import Haproxy, write_tls_material

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
SIZE = 64


def echo_main(port, max_seconds):
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", port))
    srv.listen(64)

    def serve(c):
        c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with c:
            while True:
                b = c.recv(65536)
                if not b:
                    return
                c.sendall(b)

    threading.Timer(max_seconds, lambda: os._exit(0)).start()   # bounded: ends itself
    while True:
        c, _ = srv.accept()
        threading.Thread(target=serve, args=(c,), daemon=True).start()


def connect(port, connect_to=None):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if connect_to:
        s.sendall(b"CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n" % ((connect_to.encode(),) * 2))
        head = b""
        while b"\r\n\r\n" not in head:
            b = s.recv(1)          # byte by byte: nothing past the head may be eaten
            if not b:
                raise RuntimeError("the gateway closed the CONNECT: %r" % head)
            head += b
        if not head.startswith(b"HTTP/1.1 200") and not head.startswith(b"HTTP/1.0 200"):
            raise RuntimeError("CONNECT refused: %r" % head.split(b"\r\n")[0])
    return s


def pingpong(s, count, out):
    msg = bytes(range(SIZE))
    buf = bytearray(SIZE)
    view = memoryview(buf)
    clock = time.perf_counter_ns
    for _ in range(count):
        t0 = clock()
        s.sendall(msg)
        got = 0
        while got < SIZE:
            n = s.recv_into(view[got:], SIZE - got)
            if n == 0:
                raise RuntimeError("the path closed mid round trip")
            got += n
        out.append((clock() - t0) / 1000)
        if buf != msg:
            raise RuntimeError("the echo came back different")


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--echo":
        echo_main(int(sys.argv[2]), float(sys.argv[3]))
        return
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default=os.path.join(TOP, "build", "release"))
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--count", type=int, default=500)
    ap.add_argument("--warmup", type=int, default=200)
    ap.add_argument("--max-seconds", type=int, default=300)
    ap.add_argument("--json", default=os.path.join(TOP, "bench", "results", "pingpong.json"))
    ap.add_argument("--keep", help="keep configs and logs in this directory")
    a = ap.parse_args()
    build = os.path.abspath(a.build)
    for tool in ("haproxy", "stunnel4", "socat"):
        if not shutil.which(tool):
            sys.exit("%s is missing: deploy/install-bench-deps.sh" % tool)
    samples = {"direct": [], "camtunnel": [], "haproxy": []}
    with tempfile.TemporaryDirectory(prefix="bench-pingpong-") as tmp:
        d = a.keep or tmp
        os.makedirs(d, exist_ok=True)
        env = dict(os.environ, OPENSSL_CONF=write_tls_material(d))
        procs = Procs(d)
        socks = {}
        try:
            echo_port = free_port()
            procs.start("echo", [sys.executable, os.path.abspath(__file__), "--echo",
                                 str(echo_port), str(a.max_seconds + 60)])
            wait_port(echo_port)
            ct = Camtunnel(tls=True)
            ct.start(procs, d, build, echo_port, env)
            hp = Haproxy()
            hp.start(procs, d, build, echo_port, env)
            socks["direct"] = connect(echo_port)
            socks["camtunnel"] = connect(ct.frontend, "%s:%d" % (AGENT_ID, echo_port))
            socks["haproxy"] = connect(hp.port)
            for name, s in socks.items():
                pingpong(s, a.warmup, [])
            deadline = time.monotonic() + a.max_seconds
            for _ in range(a.rounds):
                for name, s in socks.items():
                    pingpong(s, a.count, samples[name])
                if time.monotonic() > deadline:
                    print("stopped at --max-seconds", file=sys.stderr)
                    break
        finally:
            for s in socks.values():
                s.close()
            procs.stop_all()
    stats = {}
    for name, v in samples.items():
        v.sort()
        stats[name] = {"count": len(v), "p50_us": round(percentile(v, 0.50), 1),
                       "p99_us": round(percentile(v, 0.99), 1),
                       "p999_us": round(percentile(v, 0.999), 1), "max_us": round(v[-1], 1)}
    base = stats["direct"]
    for name, st in stats.items():
        st["added_p50_us"] = round(st["p50_us"] - base["p50_us"], 1)
        st["added_p99_us"] = round(st["p99_us"] - base["p99_us"], 1)
    print("%d-byte ping-pong, %d rounds x %d round trips per path, interleaved"
          % (SIZE, a.rounds, a.count))
    print_table(["path", "round trips", "p50 us", "p99 us", "p99.9 us", "max us",
                 "added p50 us", "added p99 us"],
                [[n, st["count"], st["p50_us"], st["p99_us"], st["p999_us"], st["max_us"],
                  st["added_p50_us"], st["added_p99_us"]] for n, st in stats.items()])
    rows = []
    for name, st in stats.items():
        for q in ("p50", "p99"):
            rows.append({"system": name, "metric": "pingpong_%s_us" % q,
                         "value": st["%s_us" % q], "unit": "us"})
        if name != "direct":
            rows.append({"system": name, "metric": "pingpong_added_p99_us",
                         "value": st["added_p99_us"], "unit": "us"})
    write_result(a.json, "pingpong", rows, paths=stats, size_bytes=SIZE, rounds=a.rounds,
                 count=a.count)


if __name__ == "__main__":
    main()
