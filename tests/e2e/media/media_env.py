#!/usr/bin/python3
"""Shared set-up of the media acceptance tests: one gateway (agent TLS and plain listeners,
frontend on 127.0.0.1 and [::1] at the same port so `<agent>.localhost` works whichever address
it resolves to), one Digest camera (digest_camera.py), camtunnel-agents over TLS and plain, and
helpers to run the real clients (ffmpeg, ffprobe, gst-launch-1.0, curl) and to read metrics.

One MediaEnv per test module (setUpClass), so cameras and agents start once per module.
"""

import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
E2E_DIR = os.path.dirname(HERE)
sys.path.insert(0, E2E_DIR)
sys.path.insert(0, HERE)

import support  # noqa: E402  (tests/e2e/support.py: Processes, make_dev_cert, ports)

PYTHON = support.PYTHON
DIGEST_CAMERA = os.path.join(HERE, "digest_camera.py")
RTSPSRC_CLIENT = os.path.join(HERE, "rtspsrc_client.py")
USER, PASSWORD = "admin", "secret"
SESSION_TIMEOUT = 6          # seconds; the long tests stream for more than twice this
SESSION_GRACE = 2            # the camera expires a silent session after timeout + grace
FPS = 25


def binary(name, subdir):
    """A built program: $CAMTUNNEL_BUILD_DIR/<subdir>/<name> when that is set (CMake sets it;
    no fallback then, so a test never runs another build's binaries), else the locations
    support.find_binary knows (build/release, build/asan)."""
    build = os.environ.get("CAMTUNNEL_BUILD_DIR")
    p = os.path.join(build, subdir, name) if build else support.find_binary(name, subdir)
    if not p or not os.access(p, os.X_OK):
        raise RuntimeError("%s not built (CAMTUNNEL_BUILD_DIR=%s)" % (name, build))
    return p


def module_tmpdir(prefix):
    """(directory, cleanup) for one test module's files and logs. With
    CAMTUNNEL_E2E_KEEP_LOGS=1 the directory is kept (and named on stderr) for post-mortems."""
    import shutil
    import tempfile
    d = tempfile.mkdtemp(prefix=prefix)
    if os.environ.get("CAMTUNNEL_E2E_KEEP_LOGS"):
        sys.stderr.write("%s: keeping %s\n" % (prefix, d))
        return d, lambda: None
    return d, lambda: shutil.rmtree(d, ignore_errors=True)


class Agent:
    def __init__(self, agent_id, tls, services, proc):
        self.id, self.tls, self.services, self.proc = agent_id, tls, services, proc

    @property
    def link(self):
        return "tls" if self.tls else "plain"


class MediaEnv:
    """Gateway + camera + agents. `agents`: list of (agent id, tls?, [services]) where a
    service is one of the camera's (rtsp, http) or name=PORT for anything else."""

    def __init__(self, tmpdir, agents, gateway_args=(), anchors=()):
        self.tmp = tmpdir
        self.anchor_mounts = list(anchors)
        self.anchors = []
        self.anchor_stop = threading.Event()
        self.procs = support.Processes(os.path.join(tmpdir, "logs"))
        self.agent_specs = agents
        self.gateway_args = list(gateway_args)
        self.gateway_bin = binary("camtunnel-gateway", "gateway")
        self.agent_bin = binary("camtunnel-agent", "agent")
        self.agents = {}

    # ------------------------------------------------------------------ start / stop

    def start(self):
        try:
            self._start_camera()
            self._start_anchors()
            self._start_gateway()
            for agent_id, tls, services in self.agent_specs:
                self._start_agent(agent_id, tls, services)
            self.wait_agents([a[0] for a in self.agent_specs])
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self):
        self.anchor_stop.set()
        for a in self.anchors:
            try:
                a.result(timeout=10)
            except Exception:  # the camera may already be gone; stopping is what matters
                pass
        return self.procs.stop_all()

    def stop_and_check(self):
        """Stops everything (SIGTERM, by PID) and raises if any process did not exit 0: a
        gateway or agent that crashed during the tests, or a sanitizer report, fails them."""
        status = self.stop()
        bad = {name: st for name, st in status.items() if st != 0}
        if bad:
            import shutil
            import tempfile
            kept = tempfile.mkdtemp(prefix="e2e-media-failed-")
            shutil.copytree(self.procs.log_dir, os.path.join(kept, "logs"))
            raise AssertionError("processes did not exit 0 on SIGTERM: %s (logs kept in %s)"
                                 % (bad, kept))

    def _start_camera(self):
        self.camera = self.procs.start("camera", [
            PYTHON, DIGEST_CAMERA, "--user", USER, "--password", PASSWORD,
            "--session-timeout", SESSION_TIMEOUT, "--session-grace", SESSION_GRACE, "--fps", FPS])
        m = self.camera.wait_line(r"^ready rtsp=(\d+) http=(\d+)$", 30)
        self.rtsp_port, self.http_port = int(m.group(1)), int(m.group(2))
        # The camera's own snapshot, to compare what comes through the tunnel with.
        status, _, body = support.http_get("127.0.0.1", self.http_port, "/open.jpg")
        assert status == 200 and body, status
        self.snapshot_sha256 = support.sha256_bytes(body)

    def _start_anchors(self):
        """One client per mount, straight to the camera, playing until stop(): the shared
        media of each mount is then prepared and running before the tests' clients arrive.
        GStreamer's RTSP server 1.22 can abort (rtsp-media.c gst_rtsp_media_get_rates:
        assertion failed) when many clients SETUP and PLAY a shared media that is still
        starting; cameras are not like that, and the gateway is not under test there."""
        from rtsp_client import RtspClient, connect_tcp

        def play(mount):
            c = RtspClient(connect_tcp("127.0.0.1", self.rtsp_port), USER, PASSWORD,
                           user_agent="media-test-anchor")
            try:
                return c.stream(self.camera_rtsp_url(mount), 3600,
                                keepalive=SESSION_TIMEOUT / 2, stop=self.anchor_stop)
            finally:
                c.close()

        start = self.camera_mark()
        for mount in self.anchor_mounts:
            self.anchors.append(Background(play, mount))
        for mount in self.anchor_mounts:
            self.camera.wait_line(r"^rtsp request method=PLAY uri=\S+%s/ " % re.escape(mount),
                                  20, start)
        time.sleep(0.5)   # first packets flowing

    def _start_gateway(self):
        self.cert, self.key = support.make_dev_cert(self.tmp)
        self.keys_file = os.path.join(self.tmp, "streamer.keys")
        with open(self.keys_file, "w") as f:
            subprocess.run([self.gateway_bin, "new-streamer-key", "k1"], check=True, stdout=f)
        os.chmod(self.keys_file, 0o600)
        last = None
        for _ in range(4):
            # The frontend must hold the same port on 127.0.0.1 and [::1]: pick one free on
            # both, and retry if somebody takes it before the gateway binds.
            port = support.free_port("127.0.0.1")
            try:
                with socket.socket(socket.AF_INET6) as s6:
                    s6.bind(("::1", port))
            except OSError as e:
                last = e
                continue
            argv = [self.gateway_bin, "--agent_tls_listen=127.0.0.1:0",
                    "--agent_plain_listen=127.0.0.1:0", "--cert=%s" % self.cert,
                    "--key=%s" % self.key, "--allow_plain_with_tls",
                    "--streamer_keys=%s" % self.keys_file,
                    "--frontend_listen=127.0.0.1:%d,[::1]:%d" % (port, port),
                    "--admin_listen=127.0.0.1:0"] + self.gateway_args
            gw = self.procs.start("gateway", argv)
            try:
                m = gw.wait_line(r"ready agent_tls=(\d+) agent_plain=(\d+) frontend=(\d+) "
                                 r"admin=(\d+)", 15)
            except TimeoutError as e:
                last = e
                gw.stop()
                continue
            self.gateway = gw
            self.agent_tls_port, self.agent_plain_port = int(m.group(1)), int(m.group(2))
            self.fp, self.admin_port = int(m.group(3)), int(m.group(4))
            assert self.fp == port, (self.fp, port)
            return
        raise RuntimeError("gateway did not start: %s" % last)

    def _start_agent(self, agent_id, tls, services):
        out = subprocess.run([self.gateway_bin, "derive-key", "--streamer_keys=%s" % self.keys_file,
                              "--agent=%s" % agent_id], check=True, stdout=subprocess.PIPE,
                             text=True).stdout
        key_ref = re.search(r"key_ref=(\S+)", out).group(1)
        key_hex = re.search(r"\bkey=([0-9a-f]{64})", out).group(1)
        key_file = os.path.join(self.tmp, "%s.key" % agent_id)
        with open(key_file, "w") as f:
            f.write(key_hex + "\n")
        os.chmod(key_file, 0o600)
        ports = {"rtsp": self.rtsp_port, "http": self.http_port}
        argv = [self.agent_bin, "--agent_id", agent_id, "--key_ref", key_ref,
                "--key_file", key_file, "--log_level", "debug"]
        if tls:
            argv += ["--gateway", "https://127.0.0.1:%d" % self.agent_tls_port,
                     "--ca_file", self.cert]
        else:
            argv += ["--gateway", "http://127.0.0.1:%d" % self.agent_plain_port]
        for s in services:
            name, _, port = s.partition("=")   # "rtsp", "http" (the camera's), or "name=PORT"
            argv += ["--service", "%s=127.0.0.1:%d" % (name, int(port) if port else ports[name])]
        self.agents[agent_id] = Agent(agent_id, tls, services, self.procs.start(agent_id, argv))

    def wait_agents(self, ids, timeout=20.0):
        def connected():
            try:
                listed = {a["id"] for a in self.admin_json("/api/v1/agents")["agents"]}
            except OSError:
                return False
            return set(ids) <= listed
        support.wait_until(connected, timeout, 0.1, "agents %s connected" % ids)

    # ------------------------------------------------------------------ URLs and observation

    def host_url(self, agent, path, user=None, scheme="rtsp"):
        cred = "%s@" % user if user else ""
        return "%s://%s%s.localhost:%d%s" % (scheme, cred, agent, self.fp, path)

    def path_url(self, agent, path, user=None, scheme="rtsp"):
        cred = "%s@" % user if user else ""
        return "%s://%s127.0.0.1:%d/%s%s" % (scheme, cred, self.fp, agent, path)

    def camera_rtsp_url(self, path):
        return "rtsp://127.0.0.1:%d%s" % (self.rtsp_port, path)

    def admin_json(self, path):
        with urllib.request.urlopen("http://127.0.0.1:%d%s" % (self.admin_port, path),
                                    timeout=5) as r:
            return json.loads(r.read())

    def metrics(self):
        """{(name, frozenset of (label, value)): float} from the admin /metrics."""
        with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % self.admin_port,
                                    timeout=5) as r:
            text = r.read().decode()
        out = {}
        for ln in text.splitlines():
            if not ln or ln.startswith("#"):
                continue
            m = re.match(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)$", ln)
            if not m:
                continue
            labels = frozenset(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(2) or ""))
            out[(m.group(1), labels)] = float(m.group(3))
        return out

    @staticmethod
    def metric_sum(metrics, name, **labels):
        want = set(labels.items())
        return sum(v for (n, ls), v in metrics.items() if n == name and want <= set(ls))

    def camera_mark(self):
        """Position in the camera's event log; pass to camera_events."""
        with self.camera._cond:
            return len(self.camera.lines)

    def camera_events(self, start=0, pattern=None):
        with self.camera._cond:
            lines = list(self.camera.lines[start:])
        if pattern is None:
            return lines
        rx = re.compile(pattern)
        return [m for m in (rx.search(ln) for ln in lines) if m]

    def wait_camera_events(self, start, pattern, n, timeout=5.0):
        """camera_events once at least n match (the camera's log reaches us a little after its
        answer reaches the client), or whatever matched when `timeout` ran out."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.camera_events(start, pattern)
            if len(found) >= n or time.monotonic() >= deadline:
                return found
            time.sleep(0.05)

    def agent_log(self, agent_id):
        with open(self.agents[agent_id].proc.err_path, encoding="utf-8", errors="replace") as f:
            return f.read()

    def gateway_log(self):
        with open(self.gateway.err_path, encoding="utf-8", errors="replace") as f:
            return f.read()


# ---------------------------------------------------------------------- real clients

def run(argv, timeout, env=None):
    """Runs a client; returns (returncode or None on timeout, stdout, stderr, seconds)."""
    t0 = time.monotonic()
    try:
        r = subprocess.run([str(a) for a in argv], stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           timeout=timeout, env=env)
        return r.returncode, r.stdout, r.stderr, time.monotonic() - t0
    except subprocess.TimeoutExpired as e:
        def txt(x):
            return x.decode(errors="replace") if isinstance(x, bytes) else (x or "")
        return None, txt(e.stdout), txt(e.stderr), time.monotonic() - t0


def ffmpeg_read(url, seconds, transport="tcp", timeout=None):
    """`ffmpeg -rtsp_transport T -i URL -t SECONDS -c copy -f null -`: reads (without
    decoding) `seconds` of stream time. Returns {"frames", "rc", "wall", "stderr"}."""
    rc, out, err, wall = run(
        ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-nostats",
         "-rtsp_transport", transport, "-i", url, "-t", seconds, "-map", "0:v", "-c", "copy",
         "-f", "null", "-", "-progress", "pipe:1"],
        timeout if timeout is not None else seconds + 30)
    frames = [int(x) for x in re.findall(r"^frame=(\d+)$", out, re.M)]
    return {"frames": frames[-1] if frames else 0, "rc": rc, "wall": wall, "stderr": err}


def ffprobe(url, transport="tcp", timeout=30):
    """`ffprobe -show_streams`: (rc, stdout, stderr)."""
    rc, out, err, _ = run(["ffprobe", "-v", "error", "-rtsp_transport", transport,
                           "-show_entries", "stream=codec_name", "-of", "csv", url], timeout)
    return rc, out, err


def rtspsrc_read(url, seconds, timeout=None):
    """GStreamer rtspsrc for `seconds` (rtspsrc_client.py): RTP over the RTSP connection for
    rtsp://, RTSP over HTTP for rtsph://. Returns its JSON result (frames, errors, eos,
    status) plus rc and stderr."""
    argv = [PYTHON, RTSPSRC_CLIENT, url, seconds] + ([] if url.startswith("rtsph:") else
                                                      ["--tcp"])
    rc, out, err, wall = run(argv, timeout if timeout is not None else seconds + 30)
    try:
        res = json.loads(out.strip().splitlines()[-1])
    except (ValueError, IndexError):
        res = {"frames": 0, "errors": [], "eos": None, "status": None}
    res.update(rc=rc, stderr=err[-2000:], wall=wall)
    return res


class Background:
    """Runs fn(*args) in a thread; .result() joins and returns its value (or re-raises)."""

    def __init__(self, fn, *args, **kwargs):
        self._value, self._error = None, None
        self._t = threading.Thread(target=self._run, args=(fn, args, kwargs), daemon=True)
        self._t.start()

    def _run(self, fn, args, kwargs):
        try:
            self._value = fn(*args, **kwargs)
        except BaseException as e:  # handed to the test that asks
            self._error = e

    def result(self, timeout=90):
        self._t.join(timeout)
        if self._t.is_alive():
            raise TimeoutError("background job still running after %d s" % timeout)
        if self._error is not None:
            raise self._error
        return self._value


# ---------------------------------------------------------------------- raw sockets

class RawConn:
    """A frontend connection spoken to byte by byte (for the refusal tests)."""

    def __init__(self, port, host="127.0.0.1", timeout=10.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.buf = b""

    def send(self, data):
        self.sock.sendall(data.encode() if isinstance(data, str) else data)

    def _fill(self):
        d = self.sock.recv(65536)
        if not d:
            return False
        self.buf += d
        return True

    def read_message(self):
        """One response (head + Content-Length body): (status, head text, body), or None at
        EOF before any byte of it."""
        while b"\r\n\r\n" not in self.buf:
            if not self._fill():
                if self.buf:
                    raise AssertionError("EOF inside a head: %r" % self.buf[:200])
                return None
        head, _, rest = self.buf.partition(b"\r\n\r\n")
        text = head.decode("latin-1")
        m = re.search(r"^content-length:\s*(\d+)\s*$", text, re.I | re.M)
        n = int(m.group(1)) if m else 0
        self.buf = rest
        while len(self.buf) < n:
            if not self._fill():
                raise AssertionError("EOF inside a body")
        body, self.buf = self.buf[:n], self.buf[n:]
        status = int(text.split(" ", 2)[1])
        return status, text, body

    def at_eof(self):
        """True if the peer closed (FIN or RST) and no unread byte is left."""
        if self.buf:
            return False
        try:
            return not self._fill()
        except ConnectionResetError:
            return True
        except socket.timeout:
            return False

    def close(self):
        self.sock.close()
