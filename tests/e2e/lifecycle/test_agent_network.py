#!/usr/bin/python3
"""The C++ agent in hostile networks, with real processes: a camera with its clock at 1970
(libfaketime), certificates that expired before the agent was built, gateway names that resolve
to several addresses (or none), and an HTTP CONNECT proxy (tinyproxy) in front of everything.

Classes (one ctest entry each, see CMakeLists.txt):
- ClockAt1970: a managed agent whose clock reads 1970-01-01 activates at the real manager, links,
  connects to the real gateway and streams; it learns the time from the manager's WELCOME and
  keeps it in its state file.
- ExpiredCertificate: at 1970 a certificate whose notAfter is before the agent's build time is
  refused ("certificate has expired"), one valid at the build time is accepted.
- NameResolution: a gateway name resolving to ::1 and 127.0.0.1 while the gateway listens on one
  of them only; a name that does not resolve gives a clear line, backoff and a prompt SIGTERM.
- Proxy: every connection of a managed agent (activation, manager link, control, data) through
  tinyproxy with Basic auth, checked in tinyproxy's log and with ss(8); a proxy that answers
  403 to CONNECT gives a clear line and backoff.
Probes and skips what the machine lacks (libfaketime, tinyproxy, a dual-stack *.localhost).
"""

import datetime
import glob
import os
import re
import socket
import ssl
import subprocess
import sys
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
E2E = os.path.dirname(HERE)
for p in (HERE, E2E, os.path.join(os.path.dirname(E2E), "proto")):
    if p not in sys.path:
        sys.path.insert(0, p)

import harness  # noqa: E402
import test_lifecycle as tl  # noqa: E402  (the manager helpers; its classes are not run here)
from harness import Env, start_camera, start_gateway, wait_err_line  # noqa: E402
from support import ffprobe_frames, free_port, http_get, wait_port, wait_until  # noqa: E402

DAY = 86400
# nss-myhostname (deploy/install-deps.sh) resolves every *.localhost name to ::1 and 127.0.0.1.
DUAL_NAME = "gw.localhost"


def faketime_library():
    """libfaketime's multi-threaded variant (the agent has a resolver thread), or None."""
    found = glob.glob("/usr/lib/*/faketime/libfaketimeMT.so.1")
    return found[0] if found else None


def clock_1970_env():
    """Environment that sets a process's wall clock to 1970-01-01T00:00:00Z, ticking from there.
    LD_PRELOAD directly rather than the faketime(1) wrapper: the wrapper forks, so the PID we
    record (and SIGTERM at tear-down) would not be the agent's. The monotonic clock is left
    alone (timers and backoff stay real). The sanitizer build's ASan must accept a preload."""
    return {"LD_PRELOAD": faketime_library(), "FAKETIME": "@1970-01-01 00:00:00",
            "FAKETIME_DONT_FAKE_MONOTONIC": "1", "TZ": "UTC",
            "ASAN_OPTIONS": os.environ.get("ASAN_OPTIONS", "") + ":verify_asan_link_order=0"}


def require_faketime():
    lib = faketime_library()
    if lib is None:
        raise unittest.SkipTest("libfaketime is not installed (deploy/install-deps.sh)")
    # The probe that matters: does the preload really move a program's clock here?
    out = subprocess.run(["date", "+%s"], env=dict(os.environ, **clock_1970_env()),
                         stdout=subprocess.PIPE, text=True, check=True).stdout
    if int(out.strip()) > 3600:
        raise unittest.SkipTest("libfaketime has no effect on this machine (date says %s)" % out)


def agent_build_time():
    out = subprocess.run([harness.agent_binary(), "--version"], stdout=subprocess.PIPE, text=True,
                         check=True).stdout
    return int(re.search(r"build_time=(\d+)", out).group(1))


def make_cert(directory, name, not_before, not_after, dns=("localhost",)):
    """An ECDSA P-256 self-signed certificate valid from not_before to not_after (Unix s):
    python3-cryptography, because openssl(1) cannot back-date a self-signed certificate."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    import ipaddress
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, dns[0])])
    utc = datetime.timezone.utc
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(datetime.datetime.fromtimestamp(not_before, utc))
            .not_valid_after(datetime.datetime.fromtimestamp(not_after, utc))
            .add_extension(x509.SubjectAlternativeName(
                [x509.DNSName(d) for d in dns] +
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .sign(key, hashes.SHA256()))
    cert_path = os.path.join(directory, name + ".crt")
    key_path = os.path.join(directory, name + ".key")
    with open(cert_path, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(key_path, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM,
                                  serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    os.chmod(key_path, 0o600)
    return cert_path, key_path


class TlsServer:
    """A TLS server on 127.0.0.1:0 (Python's ssl) presenting one certificate; records the first
    line each client sends after a completed handshake, and how many handshakes failed."""

    def __init__(self, cert, key):
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(cert, key)
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.requests, self.failed = [], 0
        self._stop = False
        self._t = threading.Thread(target=self._loop, daemon=True)
        self._t.start()

    def _loop(self):
        while not self._stop:
            try:
                c, _ = self.sock.accept()
            except (socket.timeout, OSError):
                continue
            c.settimeout(5)
            try:
                with self.ctx.wrap_socket(c, server_side=True) as s:
                    self.requests.append(s.recv(4096).split(b"\r\n", 1)[0].decode())
            except (ssl.SSLError, OSError):
                self.failed += 1
            finally:
                c.close()

    def close(self):
        self._stop = True
        self._t.join(2)
        self.sock.close()


def write_agent_key(env, gw, agent_id):
    path = env.path("key-" + agent_id)
    with open(path, "w") as f:
        f.write(gw.agent_key(agent_id).hex() + "\n")
    os.chmod(path, 0o600)
    return path


class ManagedSetup:
    """Manager + one TLS gateway + camera + the factory secret, as test_lifecycle does."""

    @staticmethod
    def start(cls, name):
        cls.env = Env(name)
        cls.gw = start_gateway(cls.env.procs, cls.env.path("gw"), tls=True)
        cls.streamers = tl.write_streamers(cls.env, cls.gw)
        master_file = tl.write_factory_master(cls.env)
        cls.mgr = tl.start_manager(cls.env, cls.env.path("mgr"), cls.streamers, master_file,
                                   cls.env.path("manager.db"))
        cls.cam = start_camera(cls.env.procs, tcp_only=True)
        cls.factory_file, _ = tl.write_factory_secret(cls.env, master_file)
        cls.ca = cls.env.path("ca-bundle.pem")
        with open(cls.ca, "w") as f:
            for path in (cls.mgr.cert, cls.gw.cert[0]):
                with open(path) as c:
                    f.write(c.read())
        cls.state = cls.env.path("agent-state")

    @staticmethod
    def agent_argv(cls, extra=()):
        return [harness.agent_binary(), "--state_file", cls.state,
                "--activation_url", cls.mgr.url, "--serial", tl.SERIAL,
                "--factory_secret_file", cls.factory_file, "--operator", tl.OPERATOR,
                "--service", "rtsp=127.0.0.1:%d" % cls.cam.rtsp_port,
                "--ca_file", cls.ca] + list(extra)


def last_good(state_path):
    with open(state_path) as f:
        m = re.search(r"^last_good_unix_s=(\d+)$", f.read(), re.M)
    return int(m.group(1)) if m else None


class ClockAt1970(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        require_faketime()
        try:
            ManagedSetup.start(cls, "clock-1970")
            cls.agent = cls.env.procs.start("agent", ManagedSetup.agent_argv(cls),
                                            env=clock_1970_env())
        except BaseException:
            if hasattr(cls, "env"):
                cls.env.close(check=False)
            raise

    @classmethod
    def tearDownClass(cls):
        cls.env.close()

    def test_activates_links_and_streams_with_the_clock_at_1970(self):
        # The manager's and the gateway's certificates were made a moment ago: by the agent's
        # clock they are 56 years in the future, by its build time not yet valid either.
        wait_err_line(self.agent, r"activated agent=%s manager=%s$"
                      % (tl.SERIAL, re.escape(self.mgr.url)), 20)
        gw_url = "https://127.0.0.1:%d" % self.gw.tls_port
        wait_err_line(self.agent, r"connected gateway=%s agent=%s$"
                      % (re.escape(gw_url), tl.SERIAL), 20)
        self.gw.wait_agent(tl.SERIAL, True, 10)
        info = ffprobe_frames(self.gw.frontend_url("rtsp", tl.SERIAL, "/stream1"), 2)
        self.assertEqual(info["codec_name"], "h264", info["stderr"])
        self.assertGreaterEqual(info["nb_read_frames"], 20, info)
        # The time learned from the manager's WELCOME (a verified peer) is kept for the next
        # boot; the 1970 clock never is.
        wait_until(lambda: (last_good(self.state) or 0) > time.time() - 600, 15,
                   what="last_good_unix_s advanced to the manager's time")
        self.assertLessEqual(last_good(self.state), time.time() + 5)
        self.assertEqual(os.stat(self.state).st_mode & 0o777, 0o600)


class ExpiredCertificate(unittest.TestCase):
    """Static-mode agents at 1970 against a TLS server presenting chosen certificates."""

    @classmethod
    def setUpClass(cls):
        require_faketime()
        cls.env = Env("expired-cert")
        cls.build = agent_build_time()

    @classmethod
    def tearDownClass(cls):
        cls.env.close()

    def run_agent(self, name, cert, key):
        server = TlsServer(cert, key)
        self.addCleanup(server.close)
        key_file = self.env.path("agent.key")
        with open(key_file, "w") as f:
            f.write("00" * 32 + "\n")
        os.chmod(key_file, 0o600)
        agent = self.env.procs.start(name, [
            harness.agent_binary(), "--gateway", "https://localhost:%d" % server.port,
            "--agent_id", "cam-time", "--key_ref", "k1.%d" % (int(time.time()) + DAY),
            "--key_file", key_file, "--service", "rtsp=127.0.0.1:1", "--ca_file", cert],
            env=clock_1970_env())
        return agent, server

    def test_certificate_expired_before_the_build_is_refused_at_1970(self):
        # By the 1970 clock alone this certificate is "not yet valid" (which a clock known to
        # be behind overlooks); by the build time it has expired, and that must win.
        cert, key = make_cert(self.env.dir, "expired", self.build - 30 * DAY, self.build - DAY)
        agent, server = self.run_agent("agent-expired", cert, key)
        wait_err_line(agent, r"certificate verification failed: certificate has expired; "
                             r"reconnecting in \d+ ms", 15)
        self.assertEqual(server.requests, [])
        with open(agent.err_path) as f:
            self.assertNotIn("not yet valid", f.read(), "the build time was not the floor")
        self.assertEqual(agent.stop(), 0)

    def test_certificate_valid_at_the_build_time_is_accepted_at_1970(self):
        cert, key = make_cert(self.env.dir, "valid", self.build - 30 * DAY,
                              int(time.time()) + 30 * DAY)
        agent, server = self.run_agent("agent-valid", cert, key)
        # The handshake completes and the upgrade request follows (this server is no gateway).
        wait_until(lambda: server.requests, 15, what="an upgrade request after the handshake")
        self.assertEqual(server.requests[0], "GET /camtunnel/v1/control HTTP/1.1")
        self.assertEqual(agent.stop(), 0)


def resolves_to_both(name):
    try:
        families = {ai[0] for ai in socket.getaddrinfo(name, 1, type=socket.SOCK_STREAM)}
    except socket.gaierror:
        return False
    return families >= {socket.AF_INET, socket.AF_INET6}


class NameResolution(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.env = Env("names")

    @classmethod
    def tearDownClass(cls):
        cls.env.close()

    def connect_by_name(self, listen, agent_id, service="rtsp=127.0.0.1:1"):
        if not resolves_to_both(DUAL_NAME):
            self.skipTest("%s does not resolve to both ::1 and 127.0.0.1 here" % DUAL_NAME)
        # The last --agent_tls_listen wins over start_gateway's 127.0.0.1:0.
        gw = start_gateway(self.env.procs, self.env.path(agent_id), tls=True,
                           extra=["--agent_tls_listen=%s" % listen], name="gw-" + agent_id)
        url = "https://%s:%d" % (DUAL_NAME, gw.tls_port)
        agent = self.env.procs.start("agent-" + agent_id, [
            harness.agent_binary(), "--gateway", url, "--agent_id", agent_id,
            "--key_ref", gw.key_ref(), "--key_file", write_agent_key(self.env, gw, agent_id),
            "--service", service, "--ca_file", gw.cert[0],
            "--server_name", "localhost", "--log_level", "debug"])
        wait_err_line(agent, r"connected gateway=%s agent=%s$" % (re.escape(url), agent_id), 15)
        gw.wait_agent(agent_id, True, 10)
        return agent, gw

    def test_gateway_on_ipv4_only_is_reached_after_the_ipv6_address_fails(self):
        agent, gw = self.connect_by_name("127.0.0.1:0", "cam-v4")
        # ::1 comes first (RFC 6724) and is refused; the agent went on to 127.0.0.1.
        wait_err_line(agent, r"connect to \[::1\]:%d \(%s\): Connection refused"
                      % (gw.tls_port, re.escape(DUAL_NAME)), 1)
        wait_err_line(agent, r"connected to 127\.0\.0\.1:%d \(%s\)" % (gw.tls_port, DUAL_NAME), 1)

    def test_data_connections_go_to_the_address_the_control_connection_reached(self):
        """A name with two addresses: the control connection reached 127.0.0.1 (::1 refused).
        Then another gateway starts on ::1 at the same port; a data connection that looked the
        name up again would try ::1 first and reach a gateway that knows nothing of the tunnel."""
        body = b"pinned-" + os.urandom(8).hex().encode()
        srv = socket.socket()
        srv.bind(("127.0.0.1", 0))
        srv.listen(4)
        srv.settimeout(15)

        def serve():
            try:
                c, _ = srv.accept()
                with c:
                    if harness.read_request_head(c, 5) is None:
                        return
                    c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n"
                              b"\r\n%s" % (len(body), body))
            except OSError:
                pass

        server = threading.Thread(target=serve, daemon=True)
        server.start()
        try:
            agent, gw = self.connect_by_name("127.0.0.1:0", "cam-pin",
                                             "http=127.0.0.1:%d" % srv.getsockname()[1])
            start_gateway(self.env.procs, self.env.path("cam-pin-other"), tls=True,
                          extra=["--agent_tls_listen=[::1]:%d" % gw.tls_port],
                          name="gw-cam-pin-other")
            status, _, got = http_get("127.0.0.1", gw.frontend_port, "/cam-pin/pinned")
            self.assertEqual((status, got), (200, body))
        finally:
            server.join(5)
            srv.close()

    def test_gateway_on_ipv6_only_is_reached(self):
        agent, gw = self.connect_by_name("[::1]:0", "cam-v6")
        wait_err_line(agent, r"connected to \[::1\]:%d \(%s\)" % (gw.tls_port, DUAL_NAME), 1)

    def test_name_that_does_not_resolve_logs_backs_off_and_stops_promptly(self):
        agent = self.env.procs.start("agent-nxdomain", [
            harness.agent_binary(), "--gateway", "https://no-such-gateway.invalid:8443",
            "--agent_id", "cam-nx", "--key_ref", "k1.%d" % (int(time.time()) + DAY),
            "--key_file", write_agent_key(self.env, FakeKeys(), "cam-nx"),
            "--service", "rtsp=127.0.0.1:1", "--insecure"])
        wait_err_line(agent, r"cannot resolve no-such-gateway\.invalid: .*; reconnecting in "
                             r"\d+ ms", 10)
        # The name is looked up again on the reconnect, after the backoff.
        start = harness.err_size(agent)
        wait_err_line(agent, r"cannot resolve no-such-gateway\.invalid", 10, start)
        # The loop was never blocked: SIGTERM ends the agent at once, with status 0.
        t0 = time.monotonic()
        self.assertEqual(agent.stop(), 0)
        self.assertLess(time.monotonic() - t0, 2.0)


class FakeKeys:
    """Stands in for a gateway when only an agent key file of the right shape is needed."""

    def agent_key(self, agent_id):
        return bytes(32)


def tinyproxy_binary():
    for p in ("/usr/bin/tinyproxy", "/usr/sbin/tinyproxy"):
        if os.access(p, os.X_OK):
            return p
    return None


def start_tinyproxy(env, name, connect_ports, auth=None):
    """tinyproxy in the foreground on a loopback port of its own, with a generated config.
    connect_ports: the only ports it tunnels to (CONNECT elsewhere gets 403). Returns
    (proc, port, log path)."""
    d = env.path(name)
    os.makedirs(d, exist_ok=True)
    log = os.path.join(d, "tinyproxy.log")
    last = None
    for _ in range(5):   # the picked port can be taken before tinyproxy binds it
        port = free_port()
        conf = os.path.join(d, "tinyproxy.conf")
        with open(conf, "w") as f:
            f.write("Port %d\nListen 127.0.0.1\nTimeout 60\nLogFile \"%s\"\nLogLevel Info\n"
                    "MaxClients 32\nAllow 127.0.0.1\nDisableViaHeader Yes\n" % (port, log))
            for p in connect_ports:
                f.write("ConnectPort %d\n" % p)
            if auth:
                f.write("BasicAuth %s %s\n" % auth)
        proc = env.procs.start(name, [tinyproxy_binary(), "-d", "-c", conf])
        try:
            wait_port("127.0.0.1", port, 5)
            return proc, port, log
        except Exception as e:  # noqa: BLE001
            last = e
            env.procs.abandon(proc)
    raise RuntimeError("tinyproxy did not start: %s" % last)


def established_owners(port):
    """Names and PIDs of the processes holding established TCP connections to 127.0.0.1:port."""
    out = subprocess.run(["ss", "-Htnp", "state", "established", "dst", "127.0.0.1:%d" % port],
                         stdout=subprocess.PIPE, text=True, check=True).stdout
    return set(re.findall(r'\("([^"]+)",pid=(\d+)', out))


class Proxy(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if tinyproxy_binary() is None:
            raise unittest.SkipTest("tinyproxy is not installed (deploy/install-deps.sh)")
        try:
            ManagedSetup.start(cls, "proxy")
            cls.proxy, cls.proxy_port, cls.proxy_log = start_tinyproxy(
                cls.env, "tinyproxy", (cls.mgr.port, cls.gw.tls_port), auth=("cam", "s3cr3t"))
            # Percent-encoded on purpose ("%33" is "3"): credentials are URL-decoded.
            proxy_url = "http://cam:s3cr%%33t@127.0.0.1:%d" % cls.proxy_port
            cls.agent = cls.env.procs.start(
                "agent", ManagedSetup.agent_argv(cls, ["--proxy", proxy_url]))
        except BaseException:
            if hasattr(cls, "env"):
                cls.env.close(check=False)
            raise

    @classmethod
    def tearDownClass(cls):
        cls.env.close()

    def proxy_log_text(self):
        with open(self.proxy_log, errors="replace") as f:
            return f.read()

    def test_1_every_connection_goes_through_the_proxy(self):
        wait_err_line(self.agent, r"every server connection goes through proxy "
                                  r"http://127\.0\.0\.1:%d \(with credentials\)$"
                      % self.proxy_port, 5)
        wait_err_line(self.agent, r"activated agent=%s" % tl.SERIAL, 20)
        gw_url = "https://127.0.0.1:%d" % self.gw.tls_port
        wait_err_line(self.agent, r"connected gateway=%s agent=%s$"
                      % (re.escape(gw_url), tl.SERIAL), 20)
        wait_until(lambda: self.mgr.agents().get(tl.SERIAL, {}).get("linked"), 15,
                   what="manager link up")
        # Data connections too: a stream through the tunnel.
        info = ffprobe_frames(self.gw.frontend_url("rtsp", tl.SERIAL, "/stream1"), 2)
        self.assertEqual(info["codec_name"], "h264", info["stderr"])
        # tinyproxy tunnelled to both servers (activation and the manager link share a port)...
        log = self.proxy_log_text()
        self.assertRegex(log, r"CONNECT 127\.0\.0\.1:%d HTTP/1\.1" % self.mgr.port)
        self.assertRegex(log, r"CONNECT 127\.0\.0\.1:%d HTTP/1\.1" % self.gw.tls_port)
        # ...and the agent holds no connection of its own to either: tinyproxy does.
        agent_pid = str(self.agent.pid)
        for port in (self.mgr.port, self.gw.tls_port):
            owners = established_owners(port)
            self.assertIn("tinyproxy", {n for n, _ in owners}, (port, owners))
            self.assertNotIn(agent_pid, {p for _, p in owners}, (port, owners))
        # The credentials never reach the log.
        with open(self.agent.err_path) as f:
            self.assertNotIn("s3cr", f.read())

    def test_2_proxy_refusing_connect_gives_a_clear_error_and_backoff(self):
        # A second tinyproxy that tunnels only to port 1: CONNECT to the gateway gets 403.
        _, port, _ = start_tinyproxy(self.env, "tinyproxy-403", (1,))
        agent = self.env.procs.start("agent-403", [
            harness.agent_binary(), "--gateway", "https://127.0.0.1:%d" % self.gw.tls_port,
            "--agent_id", "cam-403", "--key_ref", self.gw.key_ref(),
            "--key_file", write_agent_key(self.env, self.gw, "cam-403"),
            "--service", "rtsp=127.0.0.1:1", "--ca_file", self.gw.cert[0],
            "--proxy", "http://127.0.0.1:%d" % port])
        wait_err_line(agent, r"proxy http://127\.0\.0\.1:%d refused CONNECT 127\.0\.0\.1:%d: "
                             r"403 .*; reconnecting in \d+ ms" % (port, self.gw.tls_port), 10)
        start = harness.err_size(agent)
        wait_err_line(agent, r"refused CONNECT .*403", 10, start)   # and again, after backoff
        self.assertEqual(agent.stop(), 0)

    def test_3_missing_proxy_credentials_are_named(self):
        agent = self.env.procs.start("agent-407", [
            harness.agent_binary(), "--gateway", "https://127.0.0.1:%d" % self.gw.tls_port,
            "--agent_id", "cam-407", "--key_ref", self.gw.key_ref(),
            "--key_file", write_agent_key(self.env, self.gw, "cam-407"),
            "--service", "rtsp=127.0.0.1:1", "--ca_file", self.gw.cert[0],
            "--proxy", "http://127.0.0.1:%d" % self.proxy_port])
        wait_err_line(agent, r"refused CONNECT 127\.0\.0\.1:%d: 407 .*proxy credentials missing "
                             r"or wrong.*; reconnecting in \d+ ms" % self.gw.tls_port, 10)
        self.assertEqual(agent.stop(), 0)


if __name__ == "__main__":
    unittest.main()
