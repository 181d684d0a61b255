#!/usr/bin/python3
"""The agent lifecycle with real processes: camtunnel-manager (activation + managing server),
camtunnel-gateway, the C++ camtunnel-agent in managed mode in front of a GStreamer RTSP camera,
and ffprobe as the media server.

First start activates (HTTPS), links to the manager, gets an ASSIGN and streams through the
gateway; then every bad input the manager must refuse (wrong factory secret, a second activation
without the agent secret, an unknown agent on the manager link, an oversized STATUS) is checked
for its clear status and its counter; then RESTART (re-exec), an agent restart while the manager
is down (back to its Streamer from the sealed list in its state file), a manager restart that
keeps its SQLite state (the agent's secret sealed in it, --secrets_key_file), reactivation after the saved manager URL went dead, and DEACTIVATE
(state wiped, exit 0); operator claim tokens. The Failover class stops (SIGSTOP) the first of
two gateways (the manager moves the agent, the stopped gateway then redirects media requests to
the other one, the lookup names it), and drains it (the manager moves the agent at once). The
PlainLink class runs the manager link in plain (PROTOCOL.md section 10.2: activation over
HTTPS, an http:// manager URL, every frame MACed) and attacks it: tampered, replayed and
unsealed frames, a bit flipped each way by a man in the middle. The
manager-link client in this file is
independent of the C++ code: tests/proto/manager_vectors.py (Python hmac) and pyOpenSSL for the
TLS exporter.
"""

import http.client
import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import ssl
import struct
import sys
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
E2E = os.path.dirname(HERE)
for p in (E2E, os.path.join(os.path.dirname(E2E), "proto")):
    if p not in sys.path:
        sys.path.insert(0, p)

import camtunnel_client as ctc  # noqa: E402
import harness  # noqa: E402
import manager_vectors as mv  # noqa: E402
from harness import Env, start_camera, start_gateway, wait_err_line  # noqa: E402
from support import (ffprobe_frames, free_port, free_ports, http_get,  # noqa: E402
                     make_dev_cert, rtsp_request, wait_until)

SERIAL = "cam-life-1"
OPERATOR = "acme"


def manager_binary():
    return harness._binary("camtunnel-manager", "manager")


class Manager:
    def __init__(self, proc, port, admin_port, cert, plain_port=0):
        self.proc, self.port, self.admin_port, self.cert = proc, port, admin_port, cert
        self.url = "https://127.0.0.1:%d" % port
        # With a plain listener the activation answer names it (PROTOCOL.md section 10.2);
        # activation itself stays on the TLS port (self.url).
        self.plain_port = plain_port
        self.link_url = "http://127.0.0.1:%d" % plain_port if plain_port else self.url

    def admin(self, method, path, body=None):
        c = http.client.HTTPConnection("127.0.0.1", self.admin_port, timeout=5)
        c.request(method, path, body=None if body is None else json.dumps(body))
        r = c.getresponse()
        return r.status, r.read()

    def metrics(self):
        st, body = self.admin("GET", "/metrics")
        assert st == 200, st
        return harness.Metrics(harness.parse_metrics(body.decode()))

    def agents(self):
        st, body = self.admin("GET", "/api/v1/agents")
        assert st == 200, st
        return {a["id"]: a for a in json.loads(body)["agents"]}

    def post_activate(self, body):
        ctx = ssl.create_default_context(cafile=self.cert)
        c = http.client.HTTPSConnection("127.0.0.1", self.port, context=ctx, timeout=5)
        c.request("POST", "/api/v1/activate", body=json.dumps(body),
                  headers={"Content-Type": "application/json"})
        r = c.getresponse()
        return r.status, r.read()


def start_manager(env, directory, streamers_file, master_file, db, name="manager", plain=False,
                  secrets_key_file=None):
    """plain: also a --plain_listen port, and the activation answer names it (http://).
    secrets_key_file: agents' secrets sealed in the store with its keys."""
    os.makedirs(directory, exist_ok=True)
    cert = make_dev_cert(directory, name="manager")
    last = None
    for _ in range(5):      # the picked port can be taken before the manager binds it
        port, plain_port = free_ports(2) if plain else (free_port(), 0)
        argv = [
            manager_binary(), "--listen=127.0.0.1:%d" % port, "--admin_listen=127.0.0.1:0",
            "--cert=%s" % cert[0], "--key=%s" % cert[1], "--store=%s" % db,
            "--factory_master_file=%s" % master_file, "--operators=%s" % OPERATOR,
            "--streamers=%s" % streamers_file,
            "--heartbeat_ms=1000", "--health_interval_ms=500",
            # Room for every refusal the tests provoke from one source (127.0.0.1).
            "--activation_burst=50"]
        if secrets_key_file:
            argv.append("--secrets_key_file=%s" % secrets_key_file)
        if plain:
            argv += ["--plain_listen=127.0.0.1:%d" % plain_port,
                     "--manager_url=http://127.0.0.1:%d" % plain_port]
        else:
            argv += ["--manager_url=https://127.0.0.1:%d" % port]
        p = env.procs.start(name, argv)
        try:
            m = p.wait_line(r"^camtunnel-manager: ready port=(\d+) admin=(\d+) streamers=\d+ "
                            r"plain=(\d+)", 10)
        except (TimeoutError, RuntimeError) as e:
            last = e
            env.procs.abandon(p)
            continue
        return Manager(p, int(m.group(1)), int(m.group(2)), cert[0], int(m.group(3)))
    raise RuntimeError("manager did not start: %s" % last)


def write_factory_master(env):
    """A new factory master key (64 hex) in the test's folder; returns its path."""
    path = env.path("factory_master")
    with open(path, "w") as f:
        f.write(os.urandom(32).hex() + "\n")
    return path


def write_secrets_key_file(env):
    """A secrets key file made by the manager's own tool (mode 0600); returns its path."""
    path = env.path("secrets.keys")
    r = harness.subprocess.run(
        [manager_binary(), "new-secrets-key", "--secrets_key_file=%s" % path],
        stdout=harness.subprocess.PIPE, stderr=harness.subprocess.PIPE, text=True, timeout=30)
    if r.returncode != 0:
        raise RuntimeError("new-secrets-key: %s" % r.stderr)
    return path


def write_streamers(env, gw):
    """streamers.txt naming one gateway (URL, key id k1, its keys file, its admin API)."""
    path = env.path("streamers.txt")
    with open(path, "w") as f:
        f.write("https://127.0.0.1:%d k1 %s http://127.0.0.1:%d\n"
                % (gw.tls_port, env.path("gw", "streamer_keys"), gw.admin_port))
    return path


def factory_secret(master_file, serial):
    """The serial's factory secret (64 hex), made by the manager's own tool."""
    out = harness.subprocess.run(
        [manager_binary(), "factory-secret", "--factory_master_file=%s" % master_file,
         "--serial=%s" % serial], check=True, stdout=harness.subprocess.PIPE, text=True)
    return out.stdout.strip()


def write_factory_secret(env, master_file, serial=SERIAL):
    """What the factory writes into the camera: its factory secret, mode 0600.
    Returns (path, the secret in hex)."""
    secret = factory_secret(master_file, serial)
    path = env.path("factory_secret")
    with open(path, "w") as f:
        f.write(secret + "\n")
    os.chmod(path, 0o600)
    return path, secret


def read_agent_secret(state_file):
    """The agent secret in an agent's state file."""
    with open(state_file) as f:
        for line in f:
            if line.startswith("agent_secret="):
                return bytes.fromhex(line.strip().split("=", 1)[1])
    raise AssertionError("no secret in the state file")


class ManagerLink:
    """An independent manager-link client (PROTOCOL.md section 10) over pyOpenSSL."""

    def __init__(self, port, agent_id, secret, hello_secret=None):
        from OpenSSL import SSL
        ctx = SSL.Context(SSL.TLS_CLIENT_METHOD)
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        # pyOpenSSL needs a blocking socket; the kernel timeout keeps every read bounded.
        self.sock.setblocking(True)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, struct.pack("ll", 5, 0))
        self.conn = SSL.Connection(ctx, self.sock)
        self.conn.set_connect_state()
        self.conn.do_handshake()
        nonce = os.urandom(16)
        head = ("GET /camtunnel/v1/manager HTTP/1.1\r\nHost: m\r\nConnection: Upgrade\r\n"
                "Upgrade: camtunnel/1\r\nCamtunnel-Agent: %s\r\nCamtunnel-Nonce: %s\r\n\r\n"
                % (agent_id, mv_b64(nonce)))
        self.conn.sendall(head.encode())
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            chunk = self._recv()
            if not chunk:
                break
        end = self.buf.find(b"\r\n\r\n")
        self.head = self.buf[:end + 4].decode(errors="replace")
        self.buf = self.buf[end + 4:]
        self.status = int(self.head.split(" ")[1]) if self.head.startswith("HTTP/1.1 ") else 0
        if self.status != 101:
            return
        hdrs = dict(l.split(": ", 1) for l in self.head.split("\r\n")[1:] if ": " in l)
        mnonce = mv_unb64(hdrs["Camtunnel-Nonce"])
        exporter = self.conn.export_keying_material(b"EXPORTER-camtunnel", 32)
        self.manager_proof_ok = mv.manager_proof(secret, agent_id, nonce, mnonce, "tls",
                                                 exporter) == mv_unb64(hdrs["Camtunnel-Proof"])
        proof = mv.manager_agent_proof(hello_secret or secret, agent_id, nonce, mnonce, "tls",
                                       exporter)
        self.send(1, [(1, proof), (3, b"e2e-link/1")])

    def _recv(self):
        from OpenSSL import SSL
        try:
            chunk = self.conn.recv(65536)
        except (SSL.ZeroReturnError, SSL.SysCallError, SSL.Error):
            chunk = b""
        self.buf += chunk
        return chunk

    def send(self, ftype, fields):
        self.conn.sendall(mv.frame(ftype, fields))

    def frame(self):
        """(type, {tag: value}) or None at EOF."""
        while len(self.buf) < 4 or len(self.buf) < 4 + int.from_bytes(self.buf[1:4], "big"):
            if not self._recv():
                return None
        n = int.from_bytes(self.buf[1:4], "big")
        ftype, payload, self.buf = self.buf[0], self.buf[4:4 + n], self.buf[4 + n:]
        fields = {}
        while payload:
            tag, ln = payload[0], struct.unpack(">H", payload[1:3])[0]
            fields.setdefault(tag, payload[3:3 + ln])
            payload = payload[3 + ln:]
        return ftype, fields

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def mv_b64(b):
    import base64
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def mv_unb64(t):
    import base64
    return base64.urlsafe_b64decode(t + "=" * (-len(t) % 4))


class Lifecycle(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.env = Env("lifecycle")
        try:
            cls.gw = start_gateway(cls.env.procs, cls.env.path("gw"), tls=True)
            streamers = write_streamers(cls.env, cls.gw)
            cls.master_file = write_factory_master(cls.env)
            cls.db = cls.env.path("manager.db")
            cls.streamers = streamers
            cls.secrets_keys = write_secrets_key_file(cls.env)
            cls.mgr = start_manager(cls.env, cls.env.path("mgr"), streamers, cls.master_file,
                                    cls.db, secrets_key_file=cls.secrets_keys)
            cls.cam = start_camera(cls.env.procs, tcp_only=True)
            # The factory writes this camera's own secret; made here by the manager's tool.
            cls.factory_file, cls.factory_hex = write_factory_secret(cls.env, cls.master_file)
            cls.ca = cls.env.path("ca-bundle.pem")
            with open(cls.ca, "w") as f:
                for path in (cls.mgr.cert, cls.gw.cert[0]):
                    with open(path) as c:
                        f.write(c.read())
            cls.state = cls.env.path("agent-state")
            cls.agent = cls.env.procs.start("agent", [
                harness.agent_binary(), "--state_file", cls.state,
                "--activation_url", cls.mgr.url, "--serial", SERIAL,
                "--factory_secret_file", cls.factory_file, "--operator", OPERATOR,
                "--service", "rtsp=127.0.0.1:%d" % cls.cam.rtsp_port, "--ca_file", cls.ca])
        except BaseException:
            cls.env.close(check=False)
            raise

    @classmethod
    def tearDownClass(cls):
        cls.env.close()

    def secret(self):
        return read_agent_secret(self.state)

    def test_1_first_start_activates_links_and_streams(self):
        wait_err_line(self.agent, r"activated agent=%s manager=%s$"
                      % (SERIAL, re.escape(self.mgr.url)), 15)
        gw_url = "https://127.0.0.1:%d" % self.gw.tls_port
        wait_err_line(self.agent, r"connected gateway=%s agent=%s$"
                      % (re.escape(gw_url), SERIAL), 15)
        self.gw.wait_agent(SERIAL, True, 10)
        self.assertEqual(os.stat(self.state).st_mode & 0o777, 0o600)
        info = ffprobe_frames(self.gw.frontend_url("rtsp", SERIAL, "/stream1"), 3)
        self.assertEqual(info["codec_name"], "h264", info["stderr"])
        self.assertGreaterEqual(info["nb_read_frames"], 50, info)
        wait_until(lambda: "state=connected" in
                   self.mgr.agents().get(SERIAL, {}).get("last_status", ""), 10,
                   what="STATUS at the manager")
        a = self.mgr.agents()[SERIAL]
        self.assertTrue(a["linked"])
        self.assertEqual(a["streamer"], gw_url)
        m = self.mgr.metrics()
        self.assertEqual(m.get("camtunnel_manager_activations_total", result="activated"), 1)

    def test_1b_the_store_holds_the_agent_secret_sealed(self):
        # docs/manager.md, "Secrets at rest": a copy of the database is not the camera's
        # credentials.
        secret = self.secret()
        db = sqlite3.connect(self.db)
        try:
            row = db.execute("SELECT secret FROM agents WHERE agent_id = ?", (SERIAL,)).fetchone()
        finally:
            db.close()
        stored = bytes(row[0])
        self.assertEqual(len(stored), 62)  # version | key id | nonce | ciphertext | tag
        self.assertNotIn(secret, stored)

    def test_2_wrong_factory_secret_is_refused_and_counted(self):
        st, body = self.mgr.post_activate({"serial": "cam-other", "operator": OPERATOR,
                                           "factory_secret": self.factory_hex})
        self.assertEqual(st, 401, body)
        self.assertIn(b"bad factory secret", body)
        self.assertGreaterEqual(self.mgr.metrics().get("camtunnel_manager_activations_total",
                                                       result="bad_factory_secret"), 1)

    def test_3_second_activation_without_agent_secret_is_refused(self):
        test_1 = self.mgr.agents()
        self.assertIn(SERIAL, test_1)
        st, body = self.mgr.post_activate({"serial": SERIAL, "operator": OPERATOR,
                                           "factory_secret": self.factory_hex})
        self.assertEqual(st, 409, body)
        self.assertNotIn(b"agent_secret", body)
        self.assertGreaterEqual(self.mgr.metrics().get("camtunnel_manager_activations_total",
                                                       result="already_active"), 1)
        # With proof of the existing secret: the manager URL again, never the secret.
        st, body = self.mgr.post_activate({
            "serial": SERIAL, "operator": OPERATOR,
            "factory_secret": self.factory_hex,
            "agent_proof": mv.reactivation_proof(self.secret(), SERIAL).hex()})
        self.assertEqual(st, 200, body)
        self.assertEqual(json.loads(body)["manager_url"], self.mgr.url)
        self.assertNotIn("agent_secret", json.loads(body))

    def test_3b_claim_token_binds_a_serial_to_its_operator(self):
        serial = "cam-claimed-1"
        factory = factory_secret(self.master_file, serial)
        token = "LBL-" + os.urandom(8).hex()
        st, body = self.mgr.admin("PUT", "/api/v1/claims/%s" % serial,
                                  {"operator": "globex", "token": token})
        self.assertEqual(st, 200, body)
        st, body = self.mgr.admin("GET", "/api/v1/claims")
        self.assertEqual(st, 200, body)
        self.assertIn(serial, body.decode())
        self.assertNotIn(token, body.decode())
        # The wrong token (or the firmware's operator id) is refused, counted and audited.
        st, body = self.mgr.post_activate({"serial": serial, "operator": token + "x",
                                           "factory_secret": factory})
        self.assertEqual(st, 403, body)
        st, body = self.mgr.post_activate({"serial": serial, "operator": OPERATOR,
                                           "factory_secret": factory})
        self.assertEqual(st, 403, body)
        self.assertEqual(self.mgr.metrics().get("camtunnel_manager_activations_total",
                                                result="bad_claim_token"), 2)
        st, body = self.mgr.admin("GET", "/api/v1/audit")
        audit = json.loads(body)["audit"]
        self.assertIn(("bad_claim_token", serial), [(e["action"], e["subject"]) for e in audit])
        self.assertNotIn(token, body.decode())
        st, body = self.mgr.post_activate({"serial": serial, "operator": token,
                                           "factory_secret": factory})
        self.assertEqual(st, 200, body)
        self.assertEqual(self.mgr.agents()[serial]["operator"], "globex")

    def test_4_unknown_agent_on_the_manager_link_is_refused(self):
        link = ManagerLink(self.mgr.port, "cam-unknown", bytes(32))
        link.close()
        self.assertEqual(link.status, 401, link.head)
        self.assertGreaterEqual(self.mgr.metrics().get("camtunnel_manager_link_errors_total",
                                                       reason="unknown_agent"), 1)
        link = ManagerLink(self.mgr.port, SERIAL, self.secret(), hello_secret=bytes(32))
        self.assertEqual(link.status, 101)
        self.assertTrue(link.manager_proof_ok)
        f = link.frame()
        link.close()
        self.assertEqual((f[0], f[1].get(16)), (10, b"\x00\x01"), f)   # ERROR bad proof
        self.assertGreaterEqual(self.mgr.metrics().get("camtunnel_manager_link_errors_total",
                                                       reason="bad_proof"), 1)

    def test_5_oversized_status_is_refused(self):
        # This link takes the agent's place; the agent, told "replaced", would link again and
        # replace this one in turn (GOAWAY instead of the answer under test). It is held
        # stopped meanwhile and relinks afterwards (test 6 waits for that).
        os.kill(self.agent.pid, signal.SIGSTOP)
        self.addCleanup(os.kill, self.agent.pid, signal.SIGCONT)
        link = ManagerLink(self.mgr.port, SERIAL, self.secret())
        self.assertEqual(link.status, 101)
        self.assertEqual(link.frame()[0], 2)     # WELCOME
        ftype, fields = link.frame()
        self.assertEqual(ftype, 16)              # ASSIGN, opened independently
        url, ref, key = mv.decode_streamer(mv.key_seal_key(self.secret(), SERIAL), SERIAL,
                                           fields[18])
        self.assertEqual(key, mv.derive_agent_key(self.gw.keys["k1"], SERIAL, ref))
        link.send(5, [(12, b"x" * 5000)])
        f = link.frame()
        link.close()
        self.assertEqual((f[0], f[1].get(16)), (10, b"\x00\x03"), f)   # ERROR malformed
        self.assertGreaterEqual(self.mgr.metrics().get("camtunnel_manager_link_errors_total",
                                                       reason="malformed_frame"), 1)

    def test_6_restart_reexecutes_the_agent(self):
        # The link of test 5 replaced the agent's own: wait for the agent to be linked again.
        # Until then "linked" may still be test 5's link, closed by the test but not yet seen
        # closed by the manager, which would take the restart and send it nowhere (seen once
        # under ASan); the agent's own link, once up, replaces whatever link is current.
        def relinked():
            with open(self.agent.err_path, encoding="utf-8", errors="replace") as f:
                data = f.read()
            at = data.rfind("manager link ended (manager GOAWAY replaced)")
            return at >= 0 and "manager linked" in data[at:]
        wait_until(relinked, 20, 0.05, what="the agent linked again after test 5's link")
        start = harness.err_size(self.agent)
        answers = []

        def restart_taken():
            answers.append(self.mgr.admin("POST", "/api/v1/agents/%s/restart" % SERIAL))
            return answers[-1][0] == 200
        wait_until(restart_taken, 20, 0.2, what="restart taken (agent relinked)")
        self.assertEqual(answers[-1][0], 200, answers[-1])
        wait_err_line(self.agent, r"re-executing for RESTART", 10, start)
        wait_err_line(self.agent, r"state loaded agent=%s" % SERIAL, 10, start)
        wait_err_line(self.agent, r"connected gateway=", 15, start)
        self.assertTrue(self.agent.alive())

    def test_7_agent_and_manager_restart_keep_their_state(self):
        self.mgr.proc.stop()
        port = self.mgr.port
        # The agent restarts while its manager is down: it goes back to its Streamer from the
        # sealed list in its state file, without the manager.
        self.assertEqual(self.agent.stop(), 0)
        agent = self.env.procs.start("agent2", self.agent.argv)
        type(self).agent = agent
        wait_err_line(agent, r"state loaded agent=%s" % SERIAL, 10)
        wait_err_line(agent, r"restored 1 streamers from the state file", 10)
        wait_err_line(agent, r"connected gateway=https://127.0.0.1:%d agent=%s$"
                      % (self.gw.tls_port, SERIAL), 15)
        # Same port (the agent's saved manager URL) and the same SQLite file.
        start = harness.err_size(agent)
        cert_dir = os.path.dirname(self.mgr.cert)
        p = self.env.procs.start("manager2", [
            manager_binary(), "--listen=127.0.0.1:%d" % port, "--admin_listen=127.0.0.1:0",
            "--cert=%s" % self.mgr.cert, "--key=%s" % os.path.join(cert_dir, "manager.key"),
            "--store=%s" % self.db, "--factory_master_file=%s" % self.master_file,
            "--operators=%s" % OPERATOR, "--manager_url=%s" % self.mgr.url,
            "--streamers=%s" % self.streamers, "--heartbeat_ms=1000",
            "--secrets_key_file=%s" % self.secrets_keys])
        m = p.wait_line(r"^camtunnel-manager: ready port=(\d+) admin=(\d+)", 10)
        type(self).mgr = Manager(p, port, int(m.group(2)), self.mgr.cert)
        wait_err_line(agent, r"manager linked", 40, start)
        a = self.mgr.agents()[SERIAL]
        self.assertEqual(a["state"], "active")
        self.assertEqual(a["operator"], OPERATOR)

    def test_7b_unreachable_manager_leads_to_reactivation(self):
        # The saved manager URL goes dead (a moved manager); after --reactivate_after_s the
        # agent proves its secret to the activation server and gets the current URL back.
        self.assertEqual(self.agent.stop(), 0)
        with open(self.state) as f:
            text = f.read()
        dead = "https://127.0.0.1:%d" % free_port()
        with open(self.state, "w") as f:
            f.write(text.replace("manager_url=%s" % self.mgr.url, "manager_url=%s" % dead))
        try:
            before = self.mgr.metrics().get("camtunnel_manager_activations_total",
                                            result="reactivated")
        except KeyError:   # a counter with a label value appears with its first event
            before = 0
        agent = self.env.procs.start("agent3", self.agent.argv + ["--reactivate_after_s", "1"])
        type(self).agent = agent
        wait_err_line(agent, r"reactivated agent=%s manager=%s$"
                      % (SERIAL, re.escape(self.mgr.url)), 20)
        wait_err_line(agent, r"manager linked", 15)
        self.assertEqual(self.mgr.metrics().get("camtunnel_manager_activations_total",
                                                result="reactivated"), before + 1)
        with open(self.state) as f:
            self.assertIn("manager_url=%s\n" % self.mgr.url, f.read())

    def test_8_deactivate_wipes_state_and_exits(self):
        wait_until(lambda: self.mgr.agents()[SERIAL]["linked"], 20, what="agent linked")
        st, body = self.mgr.admin("POST", "/api/v1/agents/%s/deactivate" % SERIAL)
        self.assertEqual(st, 200, body)
        self.assertEqual(self.agent.wait(10), 0)
        self.assertFalse(os.path.exists(self.state))
        self.assertEqual(self.mgr.agents()[SERIAL]["state"], "deactivated")
        link = ManagerLink(self.mgr.port, SERIAL, bytes(32))
        link.close()
        self.assertEqual(link.status, 401)
        # The Streamer refuses the agent's key at once (pushed to its denylist), although the
        # key itself is valid for days: a camera holding it cannot come back.
        wait_until(lambda: SERIAL in json.loads(
            harness.http_get("127.0.0.1", self.gw.admin_port, "/api/v1/denylist")[2])["agents"],
            10, what="the gateway's denylist has the agent")
        with self.assertRaises(ctc.UpgradeRejected) as cm:
            ctc.connect_control(self.gw.agent_config(SERIAL))
        self.assertEqual(cm.exception.status, 401)
        self.assertGreaterEqual(self.mgr.metrics().get("camtunnel_manager_revocations_total",
                                                       result="pushed"), 1)
        self.assertEqual(self.mgr.metrics().get("camtunnel_manager_revocations_pending"), 0)


class Failover(unittest.TestCase):
    """Two gateways in the ASSIGN list, each with its frontend in streamers.txt. The first one
    is stopped (SIGSTOP: it still completes TCP handshakes from its backlog, so only deadlines
    notice): the agent moves to the second (by itself, or by the manager's SWITCH once the
    stopped gateway's /readyz goes silent). Once it runs again, the first gateway redirects media
    requests for the agent to the second (the manager told it where the agent went), and the
    manager's lookup names the second. Then the operator moves it back, and finally the first
    gateway drains: the manager moves the agent off it at once (the drain's own GOAWAY hint is
    60 s here, so only the manager's SWITCH moves it that fast)."""

    @classmethod
    def setUpClass(cls):
        cls.env = Env("lifecycle-failover")
        try:
            # Short heartbeats and no reconnect window: failover within seconds, not minutes.
            fast = ["--heartbeat_ms=500", "--reconnect_window_ms=0"]
            cls.gw1 = start_gateway(cls.env.procs, cls.env.path("gw1"),
                                    extra=fast + ["--drain_reconnect_ms=60000"], name="gw1")
            cls.gw2 = start_gateway(cls.env.procs, cls.env.path("gw2"), extra=fast, name="gw2")
            streamers = cls.env.path("streamers.txt")
            with open(streamers, "w") as f:
                for gw, d in ((cls.gw1, "gw1"), (cls.gw2, "gw2")):
                    f.write("https://127.0.0.1:%d k1 %s http://127.0.0.1:%d "
                            "frontend=rtsp://127.0.0.1:%d\n"
                            % (gw.tls_port, cls.env.path(d, "streamer_keys"), gw.admin_port,
                               gw.frontend_port))
            master_file = write_factory_master(cls.env)
            cls.mgr = start_manager(cls.env, cls.env.path("mgr"), streamers, master_file,
                                    cls.env.path("manager.db"))
            cls.snapshot = cls.env.path("snapshot.jpg")
            harness.write_snapshot(cls.snapshot)
            cls.cam = start_camera(cls.env.procs, tcp_only=True, snapshot=cls.snapshot)
            factory_file, _ = write_factory_secret(cls.env, master_file)
            ca = cls.env.path("ca-bundle.pem")
            with open(ca, "w") as f:
                for path in (cls.mgr.cert, cls.gw1.cert[0], cls.gw2.cert[0]):
                    with open(path) as c:
                        f.write(c.read())
            cls.agent = cls.env.procs.start("agent", [
                harness.agent_binary(), "--state_file", cls.env.path("agent-state"),
                "--activation_url", cls.mgr.url, "--serial", SERIAL,
                "--factory_secret_file", factory_file, "--operator", OPERATOR,
                "--service", "rtsp=127.0.0.1:%d" % cls.cam.rtsp_port,
                "--service", "http=127.0.0.1:%d" % cls.cam.http_port, "--ca_file", ca])
            cls.url1 = "https://127.0.0.1:%d" % cls.gw1.tls_port
            cls.url2 = "https://127.0.0.1:%d" % cls.gw2.tls_port
        except BaseException:
            cls.env.close(check=False)
            raise

    @classmethod
    def tearDownClass(cls):
        if cls.gw1.proc.alive():
            os.kill(cls.gw1.proc.pid, 18)  # SIGCONT
        cls.env.close()

    def relocations(self, gw):
        st, _, body = gw.admin_get("/api/v1/relocations")
        self.assertEqual(st, 200, body)
        return {r["agent"]: r["frontend"] for r in json.loads(body)["relocations"]}

    def lookup(self):
        st, body = self.mgr.admin("GET", "/api/v1/lookup/%s" % SERIAL)
        self.assertEqual(st, 200, body)
        return json.loads(body)

    def test_1_fails_over_to_the_next_streamer_when_the_first_stops(self):
        wait_err_line(self.agent, r"connected gateway=%s agent=%s$"
                      % (re.escape(self.url1), SERIAL), 15)
        start = harness.err_size(self.agent)
        os.kill(self.gw1.proc.pid, 19)  # SIGSTOP
        t0 = time.monotonic()
        try:
            wait_err_line(self.agent, r"connected gateway=%s agent=%s$"
                          % (re.escape(self.url2), SERIAL), 20, start)
            connected_s = time.monotonic() - t0
            # Until a media request through the second gateway reads video (item measured in
            # docs/manager.md): the agent is online there and a tunnel opens.
            url = self.gw2.frontend_url("rtsp", SERIAL, "/stream1")
            info = None
            while time.monotonic() - t0 < 60:
                info = ffprobe_frames(url, 1, timeout=10)
                if info["codec_name"] == "h264" and info["nb_read_frames"] > 0:
                    break
            video_s = time.monotonic() - t0
            self.assertEqual(info["codec_name"], "h264", info["stderr"])
            sys.stderr.write("\nfailover: SIGSTOP of gateway 1 -> agent connected to gateway 2 "
                             "in %.1f s, ffprobe read video through it at %.1f s\n"
                             % (connected_s, video_s))
            self.assertLess(video_s, 60.0)  # bounds a hang; the time itself is printed above
            # The agent left by itself (handshake deadline) or on the manager's SWITCH (the
            # stopped gateway's /readyz went silent), whichever came first.
            self.assertTrue(harness.err_size(self.agent) > start)
            wait_until(lambda: ("streamer=%s state=connected" % self.url2) in
                       self.mgr.agents()[SERIAL].get("last_status", ""), 10,
                       what="STATUS naming the second Streamer")
            # The manager's own view: the stopped gateway's /readyz no longer answers.
            wait_until(lambda: self.mgr.metrics().get("camtunnel_manager_streamer_healthy",
                                                      streamer="0") == 0, 10,
                       what="first Streamer unhealthy at the manager")
            self.assertEqual(self.mgr.metrics().get("camtunnel_manager_streamer_healthy",
                                                    streamer="1"), 1)
        finally:
            os.kill(self.gw1.proc.pid, 18)  # SIGCONT: it must exit cleanly at tear-down

    def test_2_the_left_streamer_redirects_to_where_the_agent_went(self):
        gw2_frontend = "127.0.0.1:%d" % self.gw2.frontend_port
        # The manager's PUT waited (retried) while gateway 1 was stopped.
        wait_until(lambda: self.relocations(self.gw1).get(SERIAL) == gw2_frontend, 15,
                   what="gateway 1 has the relocation")
        self.assertEqual(self.gw1.agents().get(SERIAL), None)
        # RTSP: 302 with the same URL on gateway 2; ffprobe follows it and reads video.
        url1 = self.gw1.frontend_url("rtsp", SERIAL, "/stream1")
        st, hdrs, head = rtsp_request("127.0.0.1", self.gw1.frontend_port, url1,
                                              method="DESCRIBE", cseq=7)
        self.assertEqual(st, 302, head)
        self.assertEqual(hdrs["location"], self.gw2.frontend_url("rtsp", SERIAL, "/stream1"))
        self.assertEqual(hdrs["cseq"], "7")
        info = ffprobe_frames(url1, 2)
        self.assertEqual(info["codec_name"], "h264", info["stderr"])
        self.assertGreater(info["nb_read_frames"], 0, info)
        # Host form becomes path form on the other gateway (its host suffix is unknown here).
        st, hdrs, head = rtsp_request(
            "127.0.0.1", self.gw1.frontend_port,
            self.gw1.frontend_url("rtsp", SERIAL, "/stream1", host_form=True))
        self.assertEqual((st, hdrs.get("location")),
                         (302, self.gw2.frontend_url("rtsp", SERIAL, "/stream1")), head)
        # HTTP: 307 with the Location; following it reaches the camera, bytes compared.
        http1 = self.gw1.frontend_url("http", SERIAL, "/snapshot.jpg")
        r = harness.subprocess.run(
            ["curl", "-sS", "--max-time", "10", "-o", "/dev/null", "-w",
             "%{http_code} %{redirect_url}", http1], stdout=harness.subprocess.PIPE, text=True)
        self.assertEqual(r.stdout, "307 %s" % self.gw2.frontend_url("http", SERIAL,
                                                                     "/snapshot.jpg"))
        got = self.env.path("redirected.jpg")
        r = harness.subprocess.run(["curl", "-sS", "-L", "--max-time", "10", "-o", got, http1])
        self.assertEqual(r.returncode, 0)
        with open(got, "rb") as a, open(self.snapshot, "rb") as b:
            self.assertEqual(a.read(), b.read())
        self.assertGreaterEqual(self.gw1.metric("camtunnel_frontend_requests_total",
                                                protocol="rtsp", status="302"), 2)
        # The manager's lookup: gateway 2 and its frontend.
        found = self.lookup()
        self.assertEqual((found["streamer"], found["frontend"], found["source"]),
                         (self.url2, "rtsp://%s" % gw2_frontend, "status"))
        st, body = self.mgr.admin("GET", "/api/v1/lookup/cam-nobody")
        self.assertEqual(st, 404, body)
        self.assertGreaterEqual(self.mgr.metrics().get("camtunnel_manager_relocations_total",
                                                       result="pushed"), 1)

    def test_2b_the_gateway_relocation_api_checks_its_input(self):
        def call(head, body=b"", pause=False):
            with socket.create_connection(("127.0.0.1", self.gw1.admin_port), timeout=5) as c:
                c.sendall(head)
                if pause:
                    time.sleep(0.2)  # the body in a later segment: the gateway waits for it
                c.sendall(body)
                data = b""
                while True:
                    chunk = c.recv(4096)
                    if not chunk:
                        break
                    data += chunk
            return int(data.split(b" ", 2)[1]), data

        def put(agent, body, pause=False):
            head = ("PUT /api/v1/relocations/%s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n"
                    "\r\n" % (agent, len(body))).encode()
            return call(head, body, pause)

        st, data = put("cam-test-x", b'{"frontend":"rtsp://127.0.0.9:8554"}', pause=True)
        self.assertEqual(st, 200, data)
        self.assertEqual(self.relocations(self.gw1).get("cam-test-x"), "127.0.0.9:8554")
        for bad in (b'{"frontend":"rtsp://h:1/x"}', b'{"frontend":"rtsp://a b:1"}',
                    b'{"frontend":1}', b"not json"):
            self.assertEqual(put("cam-test-x", bad)[0], 400, bad)
        # Over 1 KiB: refused on the head alone (the body is never sent, so no reset races).
        big = (b"PUT /api/v1/relocations/cam-test-x HTTP/1.1\r\nHost: x\r\n"
               b"Content-Length: 2000\r\n\r\n")
        self.assertEqual(call(big)[0], 413)
        self.assertEqual(put("CAM", b'{"frontend":"rtsp://h:1"}')[0], 400)
        delete = b"DELETE /api/v1/relocations/cam-test-x HTTP/1.1\r\nHost: x\r\n\r\n"
        self.assertEqual(call(delete)[0], 200)
        self.assertEqual(call(delete)[0], 404)

    def test_3_move_switches_the_agent_to_the_chosen_streamer(self):
        wait_until(lambda: self.mgr.metrics().get("camtunnel_manager_streamer_healthy",
                                                  streamer="0") == 1, 10,
                   what="first Streamer healthy again")
        start = harness.err_size(self.agent)
        st, body = self.mgr.admin("POST", "/api/v1/agents/%s/move?streamer=%s"
                                  % (SERIAL, self.url1))
        self.assertEqual(st, 200, body)
        wait_err_line(self.agent, r"switching to streamer %s" % re.escape(self.url1), 10, start)
        wait_err_line(self.agent, r"connected gateway=%s agent=%s$"
                      % (re.escape(self.url1), SERIAL), 10, start)
        self.gw1.wait_agent(SERIAL, True, 10)
        st, body = self.mgr.admin("POST", "/api/v1/agents/%s/move?streamer=https://nowhere:1"
                                  % SERIAL)
        self.assertEqual(st, 400, body)
        # Back on gateway 1: its relocation is withdrawn, gateway 2 now points at gateway 1.
        wait_until(lambda: SERIAL not in self.relocations(self.gw1), 10,
                   what="gateway 1's relocation withdrawn")
        wait_until(lambda: self.relocations(self.gw2).get(SERIAL) ==
                   "127.0.0.1:%d" % self.gw1.frontend_port, 10,
                   what="gateway 2 redirects to gateway 1")
        self.assertEqual(self.lookup()["streamer"], self.url1)

    def test_4_a_draining_streamer_s_agents_are_moved_by_the_manager(self):
        self.gw1.wait_agent(SERIAL, True, 10)
        start = harness.err_size(self.agent)
        moves = self.mgr.metrics().get("camtunnel_manager_health_moves_total")
        st, _, body = http_get("127.0.0.1", self.gw1.admin_port, "/api/v1/drain", method="POST")
        self.assertEqual(st, 202, body)
        # The drain's GOAWAY says "come back in 60 s"; the manager's SWITCH moves it now.
        wait_err_line(self.agent, r"switching to streamer %s" % re.escape(self.url2), 10, start)
        wait_err_line(self.agent, r"connected gateway=%s agent=%s$"
                      % (re.escape(self.url2), SERIAL), 10, start)
        info = ffprobe_frames(self.gw2.frontend_url("rtsp", SERIAL, "/stream1"), 2)
        self.assertEqual(info["codec_name"], "h264", info["stderr"])
        self.assertGreater(self.mgr.metrics().get("camtunnel_manager_health_moves_total"),
                           moves)
        # Its assignment in SQLite names gateway 2 first.
        self.assertEqual(self.mgr.agents()[SERIAL]["streamer"], self.url2)
        self.assertEqual(self.mgr.metrics().get("camtunnel_manager_streamer_healthy",
                                                streamer="0"), 0)


class PlainManagerLink:
    """An independent plain manager-link client (PROTOCOL.md section 10.2): the upgrade over
    plain TCP, the manager proof with transport "plain" and no exporter, then every frame sealed
    and opened with section 7 MACs under the manager session key (tests/proto/manager_vectors.py
    for the keys, tests/e2e/camtunnel_client.py for the MACs)."""

    def __init__(self, port, agent_id, secret, hello=None):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.agent_nonce = os.urandom(16)
        self.sock.sendall(("GET /camtunnel/v1/manager HTTP/1.1\r\nHost: m\r\n"
                           "Connection: Upgrade\r\nUpgrade: camtunnel/1\r\nCamtunnel-Agent: %s\r\n"
                           "Camtunnel-Nonce: %s\r\n\r\n" % (agent_id, mv_b64(self.agent_nonce)))
                          .encode())
        self.buf = b""
        while b"\r\n\r\n" not in self.buf and self._recv():
            pass
        end = self.buf.find(b"\r\n\r\n")
        self.head = self.buf[:end + 4].decode(errors="replace")
        self.buf = self.buf[end + 4:]
        self.status = int(self.head.split(" ")[1]) if self.head.startswith("HTTP/1.1 ") else 0
        self.tx = self.rx = 0
        if self.status != 101:
            return
        hdrs = dict(l.split(": ", 1) for l in self.head.split("\r\n")[1:] if ": " in l)
        mnonce = mv_unb64(hdrs["Camtunnel-Nonce"])
        self.manager_proof_ok = mv.manager_proof(
            secret, agent_id, self.agent_nonce, mnonce, "plain", b"") == \
            mv_unb64(hdrs["Camtunnel-Proof"])
        self.skey = mv.manager_session_key(secret, self.agent_nonce, mnonce)
        proof = mv.manager_agent_proof(secret, agent_id, self.agent_nonce, mnonce, "plain", b"")
        self.hello = hello if hello is not None else self.seal(
            1, [(1, proof), (2, struct.pack(">I", 1)), (3, b"e2e-plain-link/1")])
        self.sock.sendall(self.hello)

    def _recv(self):
        try:
            chunk = self.sock.recv(65536)
        except OSError:
            chunk = b""
        self.buf += chunk
        return chunk

    def seal(self, ftype, fields):
        data = ctc.seal_frame(self.skey, ctc.DIR_A2G, self.tx, ftype, fields)
        self.tx += 1
        return data

    def raw_frame(self):
        """(type, {tag: value}, mac_ok) of the next frame, MAC checked in sequence; None at
        EOF."""
        while True:
            r = ctc.parse_frame(self.buf)
            if r is not None:
                break
            if not self._recv():
                return None
        frame, used = r
        self.buf = self.buf[used:]
        try:
            frame = ctc.open_frame(self.skey, ctc.DIR_G2A, self.rx, frame)
            ok = True
        except ctc.BadMac:
            ok = False
        self.rx += 1
        fields = {}
        for tag, value in frame.fields:
            fields.setdefault(tag, value)
        return frame.type, fields, ok

    def frame(self):
        f = self.raw_frame()
        assert f is None or f[2], "manager frame with a bad MAC: %r" % (f,)
        return None if f is None else f[:2]

    def eof(self):
        return not self.buf and not self._recv()

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


class TamperRelay:
    """A man in the middle on the plain manager link: forwards both ways and flips one bit of
    the first frame after the HTTP heads, on its first two connections only. Connection 1: the
    agent's HELLO, in its capabilities value (header 4 + proof field 35 + tag and length 3: 42
    bytes in), so the proof stays right and only the MAC can tell. Connection 2: the manager's
    WELCOME, in its capabilities value (7 bytes in)."""

    def __init__(self, target_port):
        self.target_port = target_port
        self.lsock = socket.socket()
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(8)
        self.port = self.lsock.getsockname()[1]
        self.connections = 0
        self.socks = []     # closed by close(): a pump only half-closes
        self.tampered = []  # "up" / "down", as done
        self.stopping = False
        import threading
        self.threading = threading
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.stopping:
            try:
                a, _ = self.lsock.accept()
            except OSError:
                return
            self.connections += 1
            self.socks.append(a)
            try:
                m = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
            except OSError:
                continue
            self.socks.append(m)
            up = 42 if self.connections == 1 else None
            down = 7 if self.connections == 2 else None
            self.threading.Thread(target=self._pump, args=(a, m, up, "up"), daemon=True).start()
            self.threading.Thread(target=self._pump, args=(m, a, down, "down"),
                                  daemon=True).start()

    def _pump(self, src, dst, offset, name):
        seen = b""
        head_end = None
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    dst.shutdown(socket.SHUT_WR)
                    return
                if offset is not None:
                    before = len(seen)
                    seen += data
                    if head_end is None and b"\r\n\r\n" in seen:
                        head_end = seen.find(b"\r\n\r\n") + 4
                    if head_end is not None and len(seen) > head_end + offset:
                        at = head_end + offset - before
                        data = data[:at] + bytes([data[at] ^ 0x80]) + data[at + 1:]
                        self.tampered.append(name)
                        offset = None
                dst.sendall(data)
        except OSError:
            pass

    def close(self):
        self.stopping = True
        self.lsock.close()
        for sock in self.socks:
            try:
                sock.close()
            except OSError:
                pass


class PlainLink(unittest.TestCase):
    """A plain manager link (PROTOCOL.md section 10.2) with real processes: the manager listens
    in plain for links (--plain_listen) and hands out an http:// manager URL; activation stays
    HTTPS. The managed agent activates, links in plain, follows ASSIGN to a TLS gateway and
    streams. Then the attacks a plain path allows: a tampered frame (independent client and a
    man in the middle on the agent's own link), a HELLO replayed from another link, activation
    tried in clear; each refused, closed and counted."""

    @classmethod
    def setUpClass(cls):
        cls.env = Env("lifecycle-plain")
        cls.relay = None
        try:
            cls.gw = start_gateway(cls.env.procs, cls.env.path("gw"), tls=True)
            streamers = write_streamers(cls.env, cls.gw)
            master_file = write_factory_master(cls.env)
            cls.mgr = start_manager(cls.env, cls.env.path("mgr"), streamers, master_file,
                                    cls.env.path("manager.db"), plain=True)
            cls.cam = start_camera(cls.env.procs, tcp_only=True)
            factory_file, cls.factory_hex = write_factory_secret(cls.env, master_file)
            ca = cls.env.path("ca-bundle.pem")
            with open(ca, "w") as f:
                for path in (cls.mgr.cert, cls.gw.cert[0]):
                    with open(path) as c:
                        f.write(c.read())
            cls.state = cls.env.path("agent-state")
            cls.agent = cls.env.procs.start("agent", [
                harness.agent_binary(), "--state_file", cls.state,
                "--activation_url", cls.mgr.url, "--serial", SERIAL,
                "--factory_secret_file", factory_file, "--operator", OPERATOR,
                "--service", "rtsp=127.0.0.1:%d" % cls.cam.rtsp_port, "--ca_file", ca])
            cls.gw_url = "https://127.0.0.1:%d" % cls.gw.tls_port
        except BaseException:
            cls.env.close(check=False)
            raise

    @classmethod
    def tearDownClass(cls):
        if cls.relay is not None:
            cls.relay.close()
        cls.env.close()

    def secret(self):
        return read_agent_secret(self.state)

    def link_errors(self, reason):
        try:
            return self.mgr.metrics().get("camtunnel_manager_link_errors_total", reason=reason)
        except KeyError:
            return 0

    def test_1_activates_over_https_links_in_plain_and_streams(self):
        wait_err_line(self.agent, r"activated agent=%s manager=%s$"
                      % (SERIAL, re.escape(self.mgr.link_url)), 15)
        self.assertTrue(self.mgr.link_url.startswith("http://"))
        wait_err_line(self.agent, r"manager linked url=%s agent=%s transport=plain$"
                      % (re.escape(self.mgr.link_url), SERIAL), 15)
        wait_err_line(self.agent, r"connected gateway=%s agent=%s$"
                      % (re.escape(self.gw_url), SERIAL), 15)
        self.gw.wait_agent(SERIAL, True, 10)
        info = ffprobe_frames(self.gw.frontend_url("rtsp", SERIAL, "/stream1"), 2)
        self.assertEqual(info["codec_name"], "h264", info["stderr"])
        self.assertGreater(info["nb_read_frames"], 0, info)
        wait_until(lambda: "state=connected" in
                   self.mgr.agents().get(SERIAL, {}).get("last_status", ""), 10,
                   what="STATUS over the plain link")
        a = self.mgr.agents()[SERIAL]
        self.assertEqual((a["linked"], a["transport"], a["streamer"]),
                         (True, "plain", self.gw_url))
        m = self.mgr.metrics()
        self.assertEqual(m.get("camtunnel_manager_plain_links"), 1)
        self.assertEqual(m.get("camtunnel_manager_activations_total", result="activated"), 1)
        self.assertEqual(self.link_errors("bad_mac"), 0)
        promtool = shutil.which("promtool")
        if promtool:    # the new series keep the exposition lint-clean
            st, body = self.mgr.admin("GET", "/metrics")
            r = harness.subprocess.run([promtool, "check", "metrics"], input=body,
                                       stdout=harness.subprocess.PIPE,
                                       stderr=harness.subprocess.PIPE)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        # The secret never crossed the plain port: only the HTTPS answer carried it, and the
        # state file holds it.
        self.assertEqual(len(self.secret()), 32)

    def test_2_activation_in_clear_is_refused(self):
        body = json.dumps({"serial": SERIAL, "operator": OPERATOR,
                           "factory_secret": self.factory_hex})
        c = http.client.HTTPConnection("127.0.0.1", self.mgr.plain_port, timeout=5)
        c.request("POST", "/api/v1/activate", body=body,
                  headers={"Content-Type": "application/json"})
        r = c.getresponse()
        answer = r.read()
        c.close()
        self.assertEqual(r.status, 403, answer)
        self.assertIn(b"HTTPS only", answer)
        self.assertNotIn(b"agent_secret", answer)
        self.assertEqual(self.mgr.metrics().get(
            "camtunnel_manager_plain_activations_refused_total"), 1)

    def test_3_tampered_and_replayed_frames_are_refused_and_counted(self):
        secret = self.secret()
        before = self.link_errors("bad_mac")
        link = PlainManagerLink(self.mgr.plain_port, SERIAL, secret)
        self.assertEqual(link.status, 101, link.head)
        self.assertTrue(link.manager_proof_ok)
        self.assertEqual(link.frame()[0], 2)              # WELCOME, MAC checked (sequence 0)
        ftype, fields = link.frame()                      # ASSIGN (sequence 1), opened here
        self.assertEqual(ftype, 16)
        url, ref, key = mv.decode_streamer(mv.key_seal_key(secret, SERIAL), SERIAL, fields[18])
        self.assertEqual((url, key), (self.gw_url,
                                      mv.derive_agent_key(self.gw.keys["k1"], SERIAL, ref)))
        status = bytearray(link.seal(5, [(12, b"streamer=%s state=connected"
                                          % self.gw_url.encode())]))
        status[10] ^= 0x20                                # one bit of the text, on the path
        link.sock.sendall(bytes(status))
        ftype, fields, ok = link.raw_frame()
        self.assertTrue(ok)                               # the ERROR is MACed too (sequence 2)
        self.assertEqual((ftype, fields.get(16)), (10, b"\x00\x04"))   # ERROR bad MAC
        self.assertTrue(link.eof())
        hello = link.hello
        link.close()
        self.assertEqual(self.link_errors("bad_mac"), before + 1)
        # A HELLO recorded on that link, replayed on a new one (new manager nonce): refused.
        bad_proof = self.link_errors("bad_proof")
        replay = PlainManagerLink(self.mgr.plain_port, SERIAL, secret, hello=hello)
        self.assertEqual(replay.status, 101)
        ftype, fields, ok = replay.raw_frame()
        replay.close()
        self.assertEqual((ftype, fields.get(16)), (10, b"\x00\x01"))   # ERROR bad proof
        self.assertEqual(self.link_errors("bad_proof"), bad_proof + 1)

    def test_4_bits_flipped_on_the_agent_s_own_link_are_refused_and_counted(self):
        # The agent's link goes through a man in the middle that flips one bit of its HELLO
        # (first connection), then one bit of the manager's WELCOME (second connection). The
        # manager refuses the first (ERROR 4, counted as bad_mac), the agent the second (its
        # ERROR 4, counted as agent_bad_mac); each time the agent reconnects, and the third,
        # untouched link comes up.
        wait_until(lambda: self.mgr.agents()[SERIAL]["linked"], 20, what="agent relinked")
        self.assertEqual(self.agent.stop(), 0)
        type(self).relay = TamperRelay(self.mgr.plain_port)
        relay_url = "http://127.0.0.1:%d" % self.relay.port
        with open(self.state) as f:
            text = f.read()
        self.assertIn("manager_url=%s\n" % self.mgr.link_url, text)
        with open(self.state, "w") as f:
            f.write(text.replace("manager_url=%s\n" % self.mgr.link_url,
                                 "manager_url=%s\n" % relay_url))
        bad_mac, agent_bad_mac = self.link_errors("bad_mac"), self.link_errors("agent_bad_mac")
        agent = self.env.procs.start("agent-mitm", self.agent.argv)
        type(self).agent = agent
        wait_err_line(agent, r"manager link ended \(manager sent ERROR code=4 text=bad MAC on "
                      r"HELLO\)", 15)
        wait_err_line(agent, r"manager link ended \(bad MAC on WELCOME from the manager\)", 20)
        wait_err_line(agent, r"manager linked url=%s agent=%s transport=plain$"
                      % (re.escape(relay_url), SERIAL), 20)
        self.assertEqual(self.relay.tampered, ["up", "down"])
        self.assertEqual(self.relay.connections, 3)
        wait_until(lambda: self.mgr.agents()[SERIAL]["linked"], 10, what="linked again")
        self.assertEqual(self.link_errors("bad_mac"), bad_mac + 1)
        self.assertEqual(self.link_errors("agent_bad_mac"), agent_bad_mac + 1)
        # The agent acted on nothing it could not verify: it is still active, still streams.
        self.assertTrue(agent.alive())
        self.assertEqual(self.mgr.agents()[SERIAL]["state"], "active")
        self.gw.wait_agent(SERIAL, True, 10)

if __name__ == "__main__":
    unittest.main()
