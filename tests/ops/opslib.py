"""Helpers for the operations tests (tests/ops): a gateway with a TLS listener and a C++ agent,
a loopback echo service, a Prometheus text parser, a Prometheus server.

Standard library + Debian packages only; run with /usr/bin/python3. Every process is started
through tests/e2e/support.py's Processes (PIDs recorded, stopped by PID only).
"""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

OPS_DIR = os.path.dirname(os.path.abspath(__file__))
SOURCE_DIR = os.path.dirname(os.path.dirname(OPS_DIR))
DEPLOY_DIR = os.path.join(SOURCE_DIR, "deploy")
sys.path.insert(0, os.path.join(SOURCE_DIR, "tests", "e2e"))

import support  # noqa: E402  (tests/e2e/support.py, read-only here)
from support import Processes, free_port, make_dev_cert, wait_until  # noqa: E402,F401


def build_dir():
    """The build tree under test: $CAMTUNNEL_BUILD_DIR (set by ctest), else build/release."""
    d = os.environ.get("CAMTUNNEL_BUILD_DIR") or os.path.join(SOURCE_DIR, "build", "release")
    return os.path.abspath(d)


def binary(name):
    path = os.path.join(build_dir(), name.replace("camtunnel-", ""), name)
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        raise FileNotFoundError("%s not built (looked for %s; set CAMTUNNEL_BUILD_DIR)"
                                % (name, path))
    return path


# --------------------------------------------------------------------------------------------
# HTTP

def http(method, url, timeout=5.0, data=None, token=None):
    """(status, body bytes) of one request; HTTP errors are returned, not raised."""
    headers = {"Authorization": "Bearer " + token} if token else {}
    req = urllib.request.Request(url, method=method, data=data, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


# --------------------------------------------------------------------------------------------
# Prometheus text format

_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)(\s+\d+)?$')
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


class Metrics:
    """Parsed exposition: samples by (name, frozenset(labels)), plus the TYPE of each family."""

    def __init__(self, text):
        self.text = text
        self.samples = {}
        self.types = {}
        for line in text.splitlines():
            if line.startswith("# TYPE "):
                _, _, name, kind = line.split(None, 3)
                self.types[name] = kind
                continue
            if not line or line.startswith("#"):
                continue
            m = _SAMPLE.match(line)
            if not m:
                raise ValueError("unparsable sample line: %r" % line)
            labels = frozenset(_LABEL.findall(m.group(3) or ""))
            self.samples[(m.group(1), labels)] = float(m.group(4))

    def names(self):
        return {name for name, _ in self.samples}

    def get(self, name, **labels):
        """The value of the one sample with exactly these labels (KeyError if absent)."""
        key = (name, frozenset((k, str(v)) for k, v in labels.items()))
        if key not in self.samples:
            raise KeyError("no sample %s%s" % (name, labels))
        return self.samples[key]

    def series(self, name):
        return {dict(labels).get("le", ""): v for (n, labels), v in self.samples.items()
                if n == name}


def scrape(admin_port, token=None):
    status, body = http("GET", "http://127.0.0.1:%d/metrics" % admin_port, token=token)
    if status != 200:
        raise AssertionError("/metrics answered %d" % status)
    return Metrics(body.decode())


# --------------------------------------------------------------------------------------------
# A loopback echo service (in-process threads)

class EchoServer:
    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self._stop = False
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self):
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            threading.Thread(target=self._echo, args=(conn,), daemon=True).start()

    @staticmethod
    def _echo(conn):
        with conn:
            try:
                while True:
                    data = conn.recv(65536)
                    if not data:
                        return
                    conn.sendall(data)
            except OSError:
                return

    def close(self):
        self._stop = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


# --------------------------------------------------------------------------------------------
# Gateway + agent

READY = r"^camtunnel-gateway: ready agent_tls=(\d+) agent_plain=(\d+) frontend=(\d+) admin=(\d+)$"


class Gateway:
    def __init__(self, proc, m, token=None):
        self.proc = proc
        self.token = token  # admin bearer token, when started with --admin_token_file
        self.tls_port, self.plain_port, self.frontend_port, self.admin_port = (
            int(m.group(i)) for i in range(1, 5))

    def url(self, path):
        return "http://127.0.0.1:%d%s" % (self.admin_port, path)

    def get(self, method, path):
        """(status, body) of an admin request, with the bearer token if there is one."""
        return http(method, self.url(path), token=self.token)

    def scrape(self):
        return scrape(self.admin_port, self.token)


def write_admin_token(directory):
    token = os.urandom(24).hex()
    path = os.path.join(directory, "admin.token")
    with open(path, "w") as f:
        f.write(token + "\n")
    os.chmod(path, 0o600)
    return token, path


def write_streamer_keys(gateway_bin, directory, key_id="k1"):
    out = subprocess.run([gateway_bin, "new-streamer-key", key_id], check=True,
                         stdout=subprocess.PIPE, text=True, timeout=10).stdout
    path = os.path.join(directory, "streamer.keys")
    with open(path, "w") as f:
        f.write(out)
    os.chmod(path, 0o600)
    return path


def derive_agent_key(gateway_bin, keys_path, agent_id, directory, key_id=None):
    """(key_ref, key_file) for agent_id, through `camtunnel-gateway derive-key`."""
    argv = [gateway_bin, "derive-key", "--streamer_keys=" + keys_path, "--agent=" + agent_id]
    if key_id:
        argv.append("--key_id=" + key_id)
    out = subprocess.run(argv, check=True, stdout=subprocess.PIPE, text=True, timeout=10).stdout
    fields = dict(line.split("=", 1) for line in out.split())
    key_file = os.path.join(directory, agent_id + ".key")
    with open(key_file, "w") as f:
        f.write(fields["key"] + "\n")
    os.chmod(key_file, 0o600)
    return fields["key_ref"], key_file


def start_gateway(procs, gateway_bin, cert, key, keys_path, extra=(), name="gateway",
                  token=None, token_file=None, env=None):
    argv = [gateway_bin, "--agent_tls_listen=127.0.0.1:0", "--cert=" + cert, "--key=" + key,
            "--streamer_keys=" + keys_path, "--frontend_listen=127.0.0.1:0",
            "--admin_listen=127.0.0.1:0"] + list(extra)
    if token_file:
        argv.append("--admin_token_file=" + token_file)
    p = procs.start(name, argv, env=env)
    return Gateway(p, p.wait_line(READY, timeout=10), token)


def start_gateway_with_config(procs, gateway_bin, config_path, extra=(), name="gateway",
                              token=None, env=None):
    """A gateway from a TOML file (listeners on port 0 there), plus command-line flags."""
    p = procs.start(name, [gateway_bin, "--config", config_path] + list(extra), env=env)
    return Gateway(p, p.wait_line(READY, timeout=10), token)


def write_config(path, **options):
    """A TOML file of top-level keys (str, int, bool or list of str)."""
    with open(path, "w") as f:
        for k, v in options.items():
            f.write("%s = %s\n" % (k, toml_value(v)))
    return path


def toml_value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    return json.dumps(str(v))


MANAGER_READY = r"^camtunnel-manager: ready port=(\d+) admin=(\d+)"


def start_manager(procs, directory, cert, key, streamers, extra=(), name="manager"):
    """A camtunnel-manager on the default SQLite store in `directory`, its Streamers from the
    file `streamers`, every listener on a free loopback port; returns its admin port once it
    leads (a deployment of one takes the lease at start-up)."""
    master = os.path.join(directory, name + ".factory_master")
    with open(master, "w") as f:
        f.write(os.urandom(32).hex() + "\n")
    p = procs.start(name, [
        binary("camtunnel-manager"), "--listen=127.0.0.1:0", "--admin_listen=127.0.0.1:0",
        "--cert=" + cert, "--key=" + key, "--store=" + os.path.join(directory, name + ".db"),
        "--factory_master_file=" + master, "--operators=acme", "--streamers=" + streamers,
        "--manager_url=https://127.0.0.1:7443"] + list(extra))
    port = int(p.wait_line(MANAGER_READY, 15).group(2))
    wait_until(lambda: scrape(port).get("camtunnel_manager_leader") == 1, 15, 0.05,
               "the manager leads")
    return port


def start_agent(procs, agent_bin, gw, agent_id, key_ref, key_file, ca, services, name="agent"):
    argv = [agent_bin, "--gateway", "https://127.0.0.1:%d" % gw.tls_port, "--agent_id", agent_id,
            "--key_ref", key_ref, "--key_file", key_file, "--ca_file", ca,
            "--server_name", "localhost"]
    for s in services:
        argv += ["--service", s]
    return procs.start(name, argv)


def stderr_count(proc, needle):
    try:
        with open(proc.err_path, encoding="utf-8", errors="replace") as f:
            return f.read().count(needle)
    except OSError:
        return 0


RELOADED = "event=config_reloaded"
RELOAD_FAILED = "event=config_reload_failed"


def sighup(proc, timeout=5.0, expect_ok=True):
    """SIGHUP the gateway and wait for its log line saying whether the reload worked."""
    done = stderr_count(proc, RELOADED)
    failed = stderr_count(proc, RELOAD_FAILED)
    proc.signal(signal.SIGHUP)

    def reloaded():
        if stderr_count(proc, RELOAD_FAILED) > failed:
            if expect_ok:
                raise AssertionError("reload failed:\n" + proc.stderr_tail())
            return True
        if stderr_count(proc, RELOADED) > done:
            if not expect_ok:
                raise AssertionError("reload succeeded, a failure was expected")
            return True
        return False
    wait_until(reloaded, timeout, 0.05, "SIGHUP reload")


def home_shard(agent_id, shards):
    """The gateway's home shard of an agent: FNV-1a 64 of the id, mod the shard count."""
    h = 14695981039346656037
    for b in agent_id.encode():
        h = ((h ^ b) * 1099511628211) % (1 << 64)
    return h % shards


def drain_summary(proc):
    """The per-shard drain_started / drain_finished lines summed: (agents, tunnels at the start,
    result ("deadline" if any shard hit it), tunnels cut)."""
    started = log_events(proc, "drain_started")
    finished = log_events(proc, "drain_finished")
    return (sum(int(e["agents"]) for e in started),
            sum(int(e["tunnels_open"]) for e in started),
            "deadline" if any(e["result"] == "deadline" for e in finished) else "idle",
            sum(int(e["tunnels_open"]) for e in finished))


def log_events(proc, event=None):
    """The gateway's structured stderr lines as dicts (key=value, quoted values unescaped)."""
    out = []
    try:
        with open(proc.err_path, encoding="utf-8", errors="replace") as f:
            lines = f.read().splitlines()
    except OSError:
        return out
    for line in lines:
        fields = dict((k, v[1:-1].replace('\\"', '"') if v.startswith('"') else v)
                      for k, v in _FIELD.findall(line))
        if "event" in fields and (event is None or fields["event"] == event):
            out.append(fields)
    return out


_FIELD = re.compile(r'([a-z_]+)=("(?:[^"\\]|\\.)*"|\S+)')


def agent_ids(gw):
    status, body = gw.get("GET", "/api/v1/agents")
    if status != 200:
        return set()
    return {a["id"] for a in json.loads(body).get("agents", [])}


def connect_tunnel(frontend_port, target, payload=b"", timeout=10.0):
    """CONNECT target through the frontend; sends payload and reads as many bytes back.

    Returns (status line, bytes read back)."""
    with socket.create_connection(("127.0.0.1", frontend_port), timeout=timeout) as s:
        s.sendall(("CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (target, target)).encode())
        buf = b""
        while b"\r\n\r\n" not in buf:
            d = s.recv(65536)
            if not d:
                break
            buf += d
        head, _, rest = buf.partition(b"\r\n\r\n")
        status_line = head.split(b"\r\n", 1)[0].decode("latin-1")
        got = rest
        if payload and " 200 " in status_line:
            # A sender thread, so that neither direction's buffers can fill up and stall.
            sender = threading.Thread(target=s.sendall, args=(payload,), daemon=True)
            sender.start()
            while len(got) < len(payload):
                d = s.recv(262144)
                if not d:
                    break
                got += d
            sender.join(timeout)
        return status_line, got


# --------------------------------------------------------------------------------------------
# Prometheus server (Debian's prometheus package, run directly)

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"


class PrometheusServer:
    def __init__(self, procs, directory, targets, rule_files=(), scrape_interval="1s",
                 bearer_file=None, job="camtunnel-gateway"):
        self.port = free_port()
        config = os.path.join(directory, "prometheus.yml")
        with open(config, "w") as f:
            f.write("global:\n  scrape_interval: %s\n  evaluation_interval: %s\n"
                    % (scrape_interval, scrape_interval))
            if rule_files:
                f.write("rule_files:\n")
                for r in rule_files:
                    f.write("  - %s\n" % json.dumps(r))
            f.write("scrape_configs:\n  - job_name: %s\n    scrape_timeout: 1s\n" % job)
            if bearer_file:
                f.write("    authorization:\n      type: Bearer\n      credentials_file: %s\n"
                        % json.dumps(bearer_file))
            f.write("    static_configs:\n      - targets: [%s]\n"
                    % ", ".join(json.dumps(t) for t in targets))
        self.proc = procs.start("prometheus", [
            PROMETHEUS, "--config.file=" + config,
            "--storage.tsdb.path=" + os.path.join(directory, "tsdb"),
            "--web.listen-address=127.0.0.1:%d" % self.port, "--log.level=warn"])

    def url(self, path):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def wait_ready(self, timeout=20.0):
        def ready():
            if not self.proc.alive():
                raise AssertionError("prometheus exited:\n" + self.proc.stderr_tail())
            try:
                return http("GET", self.url("/-/ready"), timeout=1)[0] == 200
            except OSError:
                return False
        wait_until(ready, timeout, 0.1, "prometheus ready")

    def api(self, path, **params):
        status, body = http("GET", self.url(path + "?" + urllib.parse.urlencode(params)))
        return status, json.loads(body)

    def query(self, expr):
        status, j = self.api("/api/v1/query", query=expr)
        if status != 200 or j.get("status") != "success":
            raise AssertionError("query %r: %d %s" % (expr, status, j))
        return j["data"]["result"]


def run(argv, timeout=30, **kw):
    return subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          timeout=timeout, **kw)


# --------------------------------------------------------------------------------------------
# A node for one test: temp dir, processes, echo service, certificate, streamer keys

class Node:
    """Everything a gateway test needs, cleaned up through testcase.addCleanup."""

    def __init__(self, testcase, prefix="ops-"):
        import tempfile
        tmp = tempfile.TemporaryDirectory(prefix=prefix)
        testcase.addCleanup(tmp.cleanup)
        self.dir = tmp.name
        self.echo = EchoServer()
        testcase.addCleanup(self.echo.close)
        self.procs = Processes(os.path.join(self.dir, "logs"))
        testcase.addCleanup(self.procs.stop_all)
        self.gw_bin = binary("camtunnel-gateway")
        self.agent_bin = binary("camtunnel-agent")
        self.cert, self.key = make_dev_cert(self.dir)
        self.keys = write_streamer_keys(self.gw_bin, self.dir, "k1")
        self.gw = None

    def path(self, name):
        return os.path.join(self.dir, name)

    def base_options(self):
        """Every option a loopback test gateway needs, as TOML keys."""
        return {"agent_tls_listen": ["127.0.0.1:0"], "cert": self.cert, "key": self.key,
                "streamer_keys": self.keys, "frontend_listen": ["127.0.0.1:0"],
                "admin_listen": ["127.0.0.1:0"]}

    def config(self, name="gateway.toml", **options):
        merged = self.base_options()
        merged.update(options)
        return write_config(self.path(name), **merged)

    def start_gateway(self, extra=(), env=None, token=None, **options):
        self.gw = start_gateway_with_config(self.procs, self.gw_bin, self.config(**options),
                                            extra=extra, env=env, token=token)
        return self.gw

    def start_agent(self, agent_id, services=None, wait=True):
        key_ref, key_file = derive_agent_key(self.gw_bin, self.keys, agent_id, self.dir)
        services = services or ["echo=127.0.0.1:%d" % self.echo.port]
        p = start_agent(self.procs, self.agent_bin, self.gw, agent_id, key_ref, key_file,
                        self.cert, services, name=agent_id)
        if wait:
            wait_until(lambda: agent_id in agent_ids(self.gw), 10, 0.05,
                       "%s connected" % agent_id)
        return p


def token_file(directory, name="token"):
    token = os.urandom(24).hex()
    path = os.path.join(directory, name)
    with open(path, "w") as f:
        f.write(token + "\n")
    os.chmod(path, 0o600)
    return token, path


def frontend_head(port, head, source=None, timeout=10.0):
    """Send one raw request head to the frontend; return (status line, whole answer bytes)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        if source:
            s.bind((source, 0))
        s.connect(("127.0.0.1", port))
        s.sendall(head)
        buf = b""
        while b"\r\n\r\n" not in buf:
            d = s.recv(65536)
            if not d:
                break
            buf += d
        return buf.split(b"\r\n", 1)[0].decode("latin-1"), buf
    finally:
        s.close()
