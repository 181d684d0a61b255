"""Shared pieces of the relay benchmarks (bench/tls_relay.py, bench/plain_relay.py): our own
processes ended by PID, relay CPU from /proc, iperf3 runs, and the camtunnel chain (gateway +
agent + a CONNECT bridge for iperf3)."""

import json
import os
import re
import signal
import socket
import subprocess
import time

AGENT_ID = "bench-cam"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("nothing listens on port %d" % port)


def wait_listening(port, timeout=15.0):
    """Like wait_port, without connecting: for iperf3 -s and every port whose connections are
    forwarded on to it. iperf3 serves one test at a time; a probe connection is taken for a
    client, fails its test, and can make the real client's control connection fail
    ("control socket has closed unexpectedly")."""
    deadline = time.monotonic() + timeout
    suffix = ":%04X" % port
    while time.monotonic() < deadline:
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            with open(table) as f:
                for line in f.readlines()[1:]:
                    fields = line.split()   # local_address, ..., state (0A: LISTEN)
                    if fields[1].endswith(suffix) and fields[3] == "0A":
                        return
        time.sleep(0.05)
    raise RuntimeError("nothing listens on port %d" % port)


class Procs:
    """Processes we started, ended by PID (SIGTERM, then SIGKILL)."""

    def __init__(self, logdir):
        self.logdir, self.procs = logdir, []

    def start(self, name, argv, env=None):
        log = open(os.path.join(self.logdir, name + ".log"), "w")
        p = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env,
                             stdin=subprocess.DEVNULL)
        self.procs.append(p)
        return p

    def stop_all(self):
        for p in reversed(self.procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in reversed(self.procs):
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        self.procs = []


def descendants(pid):
    """pid and every process below it (sshd forks per connection)."""
    children = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open("/proc/%s/stat" % d) as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(d))
            except (OSError, IndexError, ValueError):
                pass
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def process_cpu_seconds(pids):
    total = 0.0
    for pid in pids:
        try:
            with open("/proc/%d/stat" % pid) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            # utime, stime, cutime, cstime (fields 14-17): children that exited count too
            total += sum(int(x) for x in fields[11:15]) / CLK_TCK
        except (OSError, IndexError, ValueError):
            pass
    return total


# The relay benches' iperf3 loads (tls_relay.py, plain_relay.py).
RELAY_LOADS = [
    # name, iperf3 arguments, streams
    ("bulk-1", [], 1),
    ("bulk-4", ["-P", "4"], 4),
    # The same bulk at one fixed rate for every contender, below what any of them saturates
    # the box at: the per-Gbit/s figure without the machine's saturation, where a chain with
    # one more process (camtunnel's CONNECT bridge) would lose throughput, and with it batching.
    ("paced-1", ["-b", "3G"], 1),
    ("paced-4", ["-P", "4", "-b", "750M"], 4),
    # 12 streams: with iperf3's control connection that is 13 tunnels, under the agent's
    # limit of 16 open tunnels per camera.
    ("rtp-12", ["-P", "12", "-l", "1400", "-b", "30M"], 12),
]


def machine_cpu():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    busy = v[0] + v[1] + v[2] + v[5] + v[6] + v[7]   # user nice system irq softirq steal
    return busy / CLK_TCK, v[6] / CLK_TCK, sum(v[:8]) / CLK_TCK


def run_iperf(port, args, seconds, reverse):
    argv = ["iperf3", "-c", "127.0.0.1", "-p", str(port), "-t", str(seconds), "-J",
            "--connect-timeout", "5000"] + args + (["-R"] if reverse else [])
    r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                       timeout=seconds + 60)
    j = json.loads(r.stdout) if r.stdout.strip() else {}
    if "error" in j or r.returncode != 0:
        raise RuntimeError("iperf3: %s %s" % (j.get("error"), r.stderr[-500:]))
    return j["end"]["sum_received"]["bits_per_second"] / 1e9


def measure(relay_pid, port, load, seconds, reverse):
    name, args, streams = load
    pids = descendants(relay_pid)
    c0, m0 = process_cpu_seconds(pids), machine_cpu()
    t0 = time.monotonic()
    gbit = run_iperf(port, args, seconds, reverse)
    elapsed = time.monotonic() - t0
    pids = descendants(relay_pid)
    c1, m1 = process_cpu_seconds(pids), machine_cpu()
    cpu_pct = (c1 - c0) / elapsed * 100
    return {"load": name, "streams": streams, "gbit_per_s": gbit,
            "relay_cpu_pct": cpu_pct,
            "relay_cpu_pct_per_gbit": cpu_pct / gbit if gbit > 0 else None,
            "machine_busy_pct": (m1[0] - m0[0]) / (m1[2] - m0[2]) * 100 * os.cpu_count(),
            "machine_softirq_pct": (m1[1] - m0[1]) / (m1[2] - m0[2]) * 100 * os.cpu_count()}



class Camtunnel:
    """Gateway + camtunnel-agent in front of the iperf3 server (the camera); TLS agent link
    (cert.pem/key.pem in the run directory) or plain."""
    reverse = True   # the iperf3 server is the camera: -R makes it send

    def __init__(self, tls=True):
        self.tls = tls
        self.name = "camtunnel" if tls else "camtunnel-plain"

    def start(self, procs, d, build, sink_port, env):
        gw = os.path.join(build, "gateway", "camtunnel-gateway")
        agent = os.path.join(build, "agent", "camtunnel-agent")
        keys = os.path.join(d, "streamer.keys")
        with open(keys, "w") as f:
            subprocess.run([gw, "new-streamer-key", "k1"], stdout=f, check=True)
        cred = subprocess.run([gw, "derive-key", "--streamer_keys=" + keys, "--agent=" + AGENT_ID],
                              capture_output=True, text=True, check=True).stdout
        key_ref = re.search(r"^key_ref=(\S+)", cred, re.M).group(1)
        with open(os.path.join(d, "agent.key"), "w") as f:
            f.write(re.search(r"^key=(\S+)", cred, re.M).group(1))
        self.agent_port, self.frontend, admin = free_port(), free_port(), free_port()
        self.admin = admin
        if self.tls:
            listen = ["--agent_tls_listen=127.0.0.1:%d" % self.agent_port,
                      "--cert=" + os.path.join(d, "cert.pem"), "--key=" + os.path.join(d, "key.pem")]
            link = ["--gateway", "https://localhost:%d" % self.agent_port, "--ca_file",
                    os.path.join(d, "cert.pem")]
        else:
            listen = ["--agent_plain_listen=127.0.0.1:%d" % self.agent_port]
            link = ["--gateway", "http://127.0.0.1:%d" % self.agent_port]
        p = procs.start("gateway", [gw] + listen + [
            "--streamer_keys=" + keys, "--frontend_listen=127.0.0.1:%d" % self.frontend,
            "--admin_listen=127.0.0.1:%d" % admin, "--log_level=warning"], env)
        wait_port(self.frontend)
        procs.start("agent", [agent] + link + [
            "--agent_id", AGENT_ID, "--key_ref", key_ref, "--key_file",
            os.path.join(d, "agent.key"), "--service", "iperf=127.0.0.1:%d" % sink_port,
            "--log_level", "warning"], env)
        deadline = time.monotonic() + 15
        while b'"%s"' % AGENT_ID.encode() not in _http_get(admin, "/api/v1/agents"):
            if time.monotonic() > deadline:
                raise RuntimeError("the agent did not connect")
            time.sleep(0.1)
        self.port = free_port()
        # iperf3 cannot speak CONNECT: a media-side bridge does (its CPU is not the relay's).
        procs.start("bridge", ["socat", "TCP-LISTEN:%d,bind=127.0.0.1,reuseaddr,fork" % self.port,
                               "PROXY:127.0.0.1:%s:%d,proxyport=%d" % (AGENT_ID, sink_port,
                                                                        self.frontend)])
        wait_listening(self.port)
        return p.pid

    def settle(self, timeout=15.0):
        """Waits until the previous load's tunnels are gone: the agent allows 16 open tunnels,
        and 12 streams plus iperf3's control connection would not fit beside the last ones."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if metric_sum(metrics(self.admin), "camtunnel_tunnels_open") == 0:
                # The agent may still hold a tunnel the gateway has let go of: one ending in
                # an error waits up to 2 s for its last bytes to be acknowledged.
                time.sleep(2.5)
                return
            time.sleep(0.1)
        raise RuntimeError("tunnels of the previous load still open after %.0f s" % timeout)


def run_contender(c, d, build, env, loads, seconds, width=10):
    """Starts an iperf3 sink and contender `c` (its .start(procs, dir, build, sink_port, env)
    returns the relay's pid), measures every load, prints a line each; returns the rows. A
    contender that cannot run is reported and skipped (an empty list), never fatal."""
    import sys
    procs = Procs(d)
    sink_port = free_port()
    rows = []
    try:
        procs.start("iperf3-sink", ["iperf3", "-s", "-B", "127.0.0.1", "-p", str(sink_port)])
        wait_listening(sink_port)
        pid = c.start(procs, d, build, sink_port, env)
        for load in loads:
            if hasattr(c, "settle"):
                c.settle()
            row = measure(pid, c.port, load, seconds, c.reverse)
            row["system"] = c.name
            rows.append(row)
            print("%-*s %-7s %6.2f Gbit/s  relay %6.1f %% cpu  %5.1f %%/Gbit/s  "
                  "machine %5.1f %% (softirq %4.1f %%)"
                  % (width, c.name, row["load"], row["gbit_per_s"], row["relay_cpu_pct"],
                     row["relay_cpu_pct_per_gbit"] or 0, row["machine_busy_pct"],
                     row["machine_softirq_pct"]), flush=True)
    except Exception as e:  # noqa: BLE001 (report, go on with the next contender)
        print("%-*s skipped: %s" % (width, c.name, e), file=sys.stderr)
    finally:
        procs.stop_all()
    return rows


def _http_get(port, path):
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % path.encode())
        out = b""
        while True:
            b = s.recv(65536)
            if not b:
                return out
            out += b




# --- Helpers of bench/storm.py, bench/open_latency.py and bench/pingpong.py ---

def metrics(port):
    """Every sample of the gateway's /metrics as {'name{labels}': value}."""
    out = {}
    for line in _http_get(port, "/metrics").decode(errors="replace").splitlines():
        if line and not line.startswith("#") and " " in line:
            k, v = line.rsplit(" ", 1)
            try:
                out[k] = float(v)
            except ValueError:
                pass
    return out


def metric_sum(samples, prefix, **labels):
    """Sum of the samples whose name is `prefix` and whose labels include `labels`."""
    total = 0.0
    for k, v in samples.items():
        name = k.split("{", 1)[0]
        if name != prefix:
            continue
        if all('%s="%s"' % (lk, lv) in k for lk, lv in labels.items()):
            total += v
    return total


def cpu_seconds(pid):
    """utime + stime of one live process (all its threads), in seconds; None once it is gone."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK
    except (OSError, IndexError, ValueError):
        return None


def percentile(sorted_values, q):
    """Nearest-rank percentile of an already sorted list (q in [0, 1])."""
    if not sorted_values:
        return None
    i = max(0, min(len(sorted_values) - 1, int(-(-q * len(sorted_values) // 1)) - 1))
    return sorted_values[i]


def machine_string():
    import platform
    load = os.getloadavg()
    return "%s, %d vCPU, %s, load %.1f/%.1f/%.1f at start" % (
        platform.machine(), os.cpu_count(), platform.release(), *load)


def head_commit():
    """The short commit the benchmark ran on (recorded with its figures)."""
    import subprocess
    return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                          text=True, cwd=os.path.dirname(os.path.abspath(__file__))).stdout.strip()


def stop_pg_fixture(proc):
    """Stops a throwaway cluster started as `camtunnel_test_pg_cluster_fixture run` (it removes
    its own folder); nothing when it has already gone."""
    if proc is not None and proc.popen.poll() is None:
        proc.popen.stdin.write("stop\n")
        proc.popen.stdin.close()
        proc.popen.wait(60)


def write_result(path, benchmark, rows, **extra):
    import datetime
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    doc = {"benchmark": benchmark, "date": datetime.date.today().isoformat(),
           "machine": machine_string(), "rows": rows}
    doc.update(extra)
    with open(path, "w") as f:
        json.dump(doc, f, indent=2)
        f.write("\n")
    print("wrote", path)


def print_table(header, rows):
    """rows: lists of cells; columns sized to fit."""
    cells = [[str(c) for c in header]] + [[(_short(c) if isinstance(c, float) else str(c))
                                           for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    for j, r in enumerate(cells):
        print("  ".join(c.rjust(w) if j and _numeric(c) else c.ljust(w)
                        for c, w in zip(r, widths)).rstrip())
        if j == 0:
            print("  ".join("-" * w for w in widths))


def _numeric(cell):
    try:
        float(cell)
        return True
    except ValueError:
        return False


def _short(x):
    """A float with at most 3 decimals and no trailing zeros."""
    return ("%.3f" % x).rstrip("0").rstrip(".")
