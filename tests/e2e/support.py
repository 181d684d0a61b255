#!/usr/bin/python3
"""Helpers for the end-to-end tests (unittest-based; standard library + Debian packages only).

Typical use in a test:

    from support import Processes, free_port, make_dev_cert, start_camera, ffprobe_frames

    class T(unittest.TestCase):
        def setUp(self):
            self.tmp = tempfile.TemporaryDirectory(); self.addCleanup(self.tmp.cleanup)
            self.procs = Processes(self.tmp.name); self.addCleanup(self.procs.stop_all)
        def test_x(self):
            cam = start_camera(self.procs)
            info = ffprobe_frames("rtsp://127.0.0.1:%d/stream1" % cam.rtsp_port, seconds=5)

Processes are started with their PIDs recorded and are stopped by PID only (SIGTERM, then
SIGKILL after a grace period), never by name. Every process's stdout and stderr are kept in log
files under the Processes directory; `Proc.wait_line(regex)` waits for a stdout line.
"""

import hashlib
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time

PYTHON = "/usr/bin/python3"       # Debian's python (has gi and OpenSSL), not the pyenv one
E2E_DIR = os.path.dirname(os.path.abspath(__file__))
SOURCE_DIR = os.path.dirname(os.path.dirname(E2E_DIR))
CLIENT = os.path.join(E2E_DIR, "camtunnel_client.py")
CAMERA = os.path.join(E2E_DIR, "camera.py")


# --------------------------------------------------------------------------------------------
# Ports

def free_port(host="127.0.0.1", kind=socket.SOCK_STREAM):
    """A port that was free a moment ago (bind to port 0, read it, close)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, kind) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def free_ports(n, host="127.0.0.1"):
    """n distinct free ports (all sockets held open until every port is chosen)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
            s.bind((host, 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def wait_port(host, port, timeout=10.0):
    """Wait until a TCP connect to host:port succeeds."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=1.0):
                return
        except OSError as e:
            last = e
            time.sleep(0.05)
    raise TimeoutError("%s:%d not accepting connections after %.1f s (%s)"
                       % (host, port, timeout, last))


# --------------------------------------------------------------------------------------------
# Processes

class Proc:
    """A started process: its PID, its stdout lines (also in <name>.out), stderr in <name>.err."""

    def __init__(self, name, argv, popen, out_path, err_path):
        self.name = name
        self.argv = argv
        self.popen = popen
        self.pid = popen.pid
        self.out_path = out_path
        self.err_path = err_path
        self.lines = []
        self._cond = threading.Condition()
        self._eof = False
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        with open(self.out_path, "a", encoding="utf-8", errors="replace") as log:
            for line in self.popen.stdout:
                log.write(line)
                log.flush()
                with self._cond:
                    self.lines.append(line.rstrip("\n"))
                    self._cond.notify_all()
        try:
            self.popen.stdout.close()
        except OSError:
            pass
        with self._cond:
            self._eof = True
            self._cond.notify_all()

    def wait_line(self, pattern, timeout=10.0, start=0):
        """Wait for a stdout line matching regex pattern (searched); returns the re.Match.

        Raises TimeoutError (with the stderr tail) if none arrives in time or the process ends."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        i = start
        with self._cond:
            while True:
                while i < len(self.lines):
                    m = rx.search(self.lines[i])
                    i += 1
                    if m:
                        return m
                if self._eof:
                    break
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
        state = "exited with %s" % self.popen.poll() if self._eof else "still running"
        raise TimeoutError("%s: no stdout line matching %r within %.1f s (%s)\n--- stderr tail:\n%s"
                           % (self.name, pattern, timeout, state, self.stderr_tail()))

    def wait_ready(self, timeout=10.0, pattern=r"^ready\b"):
        return self.wait_line(pattern, timeout)

    def stderr_tail(self, n=40):
        try:
            with open(self.err_path, encoding="utf-8", errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""

    def stdout_text(self):
        with self._cond:
            return "\n".join(self.lines)

    def alive(self):
        return self.popen.poll() is None

    def signal(self, sig):
        """Send a signal to this process, by its PID, if it has not been reaped."""
        if self.popen.poll() is None:
            os.kill(self.pid, sig)

    def wait(self, timeout=10.0):
        rc = self.popen.wait(timeout)
        self._reader.join(2)
        return rc

    def stop(self, grace=5.0):
        """SIGTERM, wait up to grace seconds, then SIGKILL. Returns the exit status."""
        if self.popen.poll() is None:
            try:
                os.kill(self.pid, signal.SIGTERM)
                return self.wait(grace)
            except subprocess.TimeoutExpired:
                os.kill(self.pid, signal.SIGKILL)
                return self.wait(grace)
            except ProcessLookupError:
                pass
        return self.popen.wait()


class Processes:
    """Starts processes, records them, stops them all (by PID) at the end.

    Register `stop_all` with unittest's addCleanup (or use as a context manager)."""

    def __init__(self, log_dir):
        self.log_dir = log_dir
        self.procs = []
        self.started = 0  # names the log files, abandoned starts included
        os.makedirs(log_dir, exist_ok=True)

    def start(self, name, argv, env=None, cwd=None, stdin=subprocess.DEVNULL):
        argv = [str(x) for x in argv]
        base = os.path.join(self.log_dir, "%s.%d" % (name, self.started))
        self.started += 1
        out_path, err_path = base + ".out", base + ".err"
        full_env = dict(os.environ)
        full_env.setdefault("PYTHONUNBUFFERED", "1")
        if env:
            full_env.update({k: str(v) for k, v in env.items()})
        with open(err_path, "wb") as err:
            p = subprocess.Popen(argv, stdin=stdin, stdout=subprocess.PIPE, stderr=err,
                                 env=full_env, cwd=cwd, text=True, bufsize=1,
                                 start_new_session=False)
        proc = Proc(name, argv, p, out_path, err_path)
        self.procs.append(proc)
        with open(os.path.join(self.log_dir, "pids"), "a") as f:
            f.write("%d %s %s\n" % (p.pid, name, " ".join(argv)))
        return proc

    def abandon(self, proc):
        """Stops a start that is retried (its picked port was taken before it could bind) and
        stops recording it: its exit status says nothing about the product, so stop_all does
        not report it. Its logs stay."""
        proc.stop()
        self.procs.remove(proc)

    def stop_all(self, grace=5.0):
        """Stop every recorded process, newest first. Returns {name.pid: exit status}."""
        status = {}
        for proc in reversed(self.procs):
            try:
                status["%s.%d" % (proc.name, proc.pid)] = proc.stop(grace)
            except Exception as e:  # keep stopping the others
                status["%s.%d" % (proc.name, proc.pid)] = repr(e)
        return status

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop_all()


# --------------------------------------------------------------------------------------------
# Certificates, files

def make_dev_cert(directory, cn="localhost", dns=("localhost",), ips=("127.0.0.1",),
                  days=7, name="dev"):
    """ECDSA P-256 self-signed certificate. Returns (cert_path, key_path)."""
    cert = os.path.join(directory, name + ".crt")
    key = os.path.join(directory, name + ".key")
    san = ",".join(["DNS:%s" % d for d in dns] + ["IP:%s" % i for i in ips])
    argv = ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
            "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key, "-out", cert,
            "-days", str(days), "-sha256", "-subj", "/CN=%s" % cn]
    if san:
        argv += ["-addext", "subjectAltName=%s" % san]
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    os.chmod(key, 0o600)
    return cert, key


def cert_pubkey_sha256(cert_path):
    """base64 SHA-256 of the certificate's SubjectPublicKeyInfo (a pin)."""
    der = subprocess.run(
        "openssl x509 -in '%s' -pubkey -noout | openssl pkey -pubin -outform DER" % cert_path,
        shell=True, check=True, stdout=subprocess.PIPE).stdout
    import base64
    return base64.b64encode(hashlib.sha256(der).digest()).decode()


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def sha256_bytes(data):
    return hashlib.sha256(data).hexdigest()


def write_random_file(path, size, seed=1):
    """Deterministic pseudo-random content (for transfer tests); returns its sha256."""
    import random
    rnd = random.Random(seed)
    h = hashlib.sha256()
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(left, 1 << 20)
            chunk = rnd.randbytes(n)
            f.write(chunk)
            h.update(chunk)
            left -= n
    return h.hexdigest()


# --------------------------------------------------------------------------------------------
# ffprobe / HTTP

def ffprobe_frames(url, seconds=5, transport="tcp", timeout=None, extra_args=()):
    """Read `seconds` of the first video stream and count frames.

    Returns {"codec_name": str, "nb_read_frames": int, "returncode": int, "stderr": str,
    "json": parsed ffprobe output}. Does not raise on ffprobe failure: check codec_name."""
    argv = ["ffprobe", "-v", "error"]
    if url.startswith("rtsp") and transport:
        argv += ["-rtsp_transport", transport]
    argv += list(extra_args)
    argv += ["-count_frames", "-read_intervals", "%%+%g" % seconds, "-select_streams", "v",
             "-show_entries", "stream=codec_name,width,height,nb_read_frames", "-of", "json",
             url]
    try:
        r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           timeout=timeout if timeout is not None else seconds + 30)
    except subprocess.TimeoutExpired as e:
        return {"codec_name": None, "nb_read_frames": 0, "returncode": None,
                "stderr": "timeout: %s" % (e.stderr or ""), "json": None}
    try:
        j = json.loads(r.stdout) if r.stdout.strip() else {}
    except ValueError:
        j = None
    streams = (j or {}).get("streams") or [{}]
    s = streams[0]
    try:
        frames = int(s.get("nb_read_frames", 0))
    except (TypeError, ValueError):
        frames = 0
    return {"codec_name": s.get("codec_name"), "nb_read_frames": frames,
            "width": s.get("width"), "height": s.get("height"), "returncode": r.returncode,
            "stderr": r.stderr, "json": j}


def ffprobe_streams(url, transport="tcp", timeout=30):
    """`ffprobe -show_streams` as parsed JSON (list of stream dicts); raises on failure."""
    argv = ["ffprobe", "-v", "error"]
    if url.startswith("rtsp") and transport:
        argv += ["-rtsp_transport", transport]
    argv += ["-show_streams", "-of", "json", url]
    r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                       timeout=timeout)
    if r.returncode != 0:
        raise RuntimeError("ffprobe %s failed (%d): %s" % (url, r.returncode, r.stderr.strip()))
    return json.loads(r.stdout).get("streams", [])


def http_get(host, port, path, headers=None, timeout=10.0, method="GET"):
    """One HTTP/1.1 request. Returns (status, {lower-case header: value}, body bytes)."""
    c = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        c.request(method, path, headers=headers or {})
        r = c.getresponse()
        body = r.read()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, body
    finally:
        c.close()


def rtsp_request(host, port, url, method="OPTIONS", cseq=1, headers=None, timeout=10.0):
    """Send one RTSP request on a new connection; returns (status, headers dict, raw head)."""
    lines = ["%s %s RTSP/1.0" % (method, url), "CSeq: %d" % cseq]
    lines += ["%s: %s" % kv for kv in (headers or {}).items()]
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        buf = b""
        while b"\r\n\r\n" not in buf:
            d = s.recv(65536)
            if not d:
                break
            buf += d
    head = buf.split(b"\r\n\r\n", 1)[0].decode("latin-1")
    first, *rest = head.split("\r\n")
    m = re.match(r"RTSP/1\.0 (\d{3})", first)
    hdrs = {}
    for ln in rest:
        if ":" in ln:
            k, v = ln.split(":", 1)
            hdrs[k.strip().lower()] = v.strip()
    return (int(m.group(1)) if m else None), hdrs, head


# --------------------------------------------------------------------------------------------
# Starting the project's pieces

class Camera:
    def __init__(self, proc, rtsp_port, http_port):
        self.proc, self.rtsp_port, self.http_port = proc, rtsp_port, http_port

    def rtsp_url(self, host="127.0.0.1", mount="/stream1"):
        return "rtsp://%s:%d%s" % (host, self.rtsp_port, mount)


def start_camera(procs, rtsp_port=0, http_port=0, snapshot=None, http_dir=None, tcp_only=False,
                 name="camera", timeout=20.0, extra=()):
    argv = [PYTHON, CAMERA, "--rtsp-port", rtsp_port, "--http-port", http_port]
    if snapshot:
        argv += ["--snapshot", snapshot]
    if http_dir:
        argv += ["--http-dir", http_dir]
    if tcp_only:
        argv += ["--tcp-only"]
    argv += list(extra)
    p = procs.start(name, argv)
    m = p.wait_line(r"^ready rtsp=(\d+) http=(\d+)$", timeout)
    return Camera(p, int(m.group(1)), int(m.group(2)))


def start_client_agent(procs, gateway_host, gateway_port, agent_id, key_ref, key_hex,
                       services, tls=True, ca=None, insecure=False, server_name=None,
                       reconnect=False, name="pyagent", timeout=15.0, extra=()):
    """The independent Python agent (camtunnel_client.py agent); waits for its ready line."""
    argv = [PYTHON, CLIENT, "agent", "--gateway", "%s:%d" % (gateway_host, gateway_port),
            "--tls" if tls else "--plain", "--agent-id", agent_id, "--key-ref", key_ref,
            "--key-hex", key_hex, "-v"]
    if ca:
        argv += ["--ca", ca]
    if insecure:
        argv += ["--insecure"]
    if server_name:
        argv += ["--server-name", server_name]
    if reconnect:
        argv += ["--reconnect"]
    for s in services:
        argv += ["--service", s]
    argv += list(extra)
    p = procs.start(name, argv)
    p.wait_ready(timeout)
    return p


def find_binary(name, subdir=None):
    """A built program: $CAMTUNNEL_BUILD_DIR (set by ctest), $CAMTUNNEL_BINARY_DIR, then
    build/release, then build/asan."""
    dirs = [os.environ.get("CAMTUNNEL_BUILD_DIR"), os.environ.get("CAMTUNNEL_BINARY_DIR"),
            os.path.join(SOURCE_DIR, "build", "release"),
            os.path.join(SOURCE_DIR, "build", "asan")]
    for d in dirs:
        if not d:
            continue
        for cand in ([os.path.join(d, subdir, name)] if subdir else []) + [
                os.path.join(d, name), os.path.join(d, name.replace("camtunnel-", ""), name)]:
            if os.path.isfile(cand) and os.access(cand, os.X_OK):
                return cand
    return None


def wait_until(predicate, timeout=10.0, interval=0.05, what="condition"):
    deadline = time.monotonic() + timeout
    while True:
        v = predicate()
        if v:
            return v
        if time.monotonic() >= deadline:
            raise TimeoutError("%s not reached within %.1f s" % (what, timeout))
        time.sleep(interval)


if __name__ == "__main__":
    # Smoke test of the helpers themselves: camera + ffprobe + snapshot + dev cert.
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        with Processes(d) as procs:
            cam = start_camera(procs)
            print("camera", cam.rtsp_port, cam.http_port)
            print(json.dumps({k: v for k, v in ffprobe_frames(cam.rtsp_url(), 2).items()
                              if k != "json"}))
            st, h, body = http_get("127.0.0.1", cam.http_port, "/snapshot.jpg")
            print("snapshot", st, h.get("content-type"), len(body), sha256_bytes(body)[:16])
            c, k = make_dev_cert(d)
            print("cert", c, sha256_file(c)[:16], cert_pubkey_sha256(c))
            print("stop", procs.stop_all())
    sys.exit(0)
