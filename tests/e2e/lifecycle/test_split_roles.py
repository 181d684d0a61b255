#!/usr/bin/python3
"""Activation and managing servers as separate processes (PROTOCOL.md section 10.4), with a
real gateway, the C++ agent in front of a GStreamer camera, and ffprobe.

The activation server (--role=activation) admits the camera and hands it over to the managing
server (--role=managing) by a MACed call on the managing server's admin listener; the agent
secret comes back sealed, and the activation server's database never holds it. Attacks on that
call (a wrong MAC, a replayed request, a stale one) are refused and counted; a managing server
that does not answer gives the camera 503 and Retry-After, and the camera's retry then gets a
secret (the one the managing server issued meanwhile was never used, so it is replaced).

AgentKeepsItsSecret: an activation answer whose manager URL the agent cannot use still carries
the secret, which is issued once. The agent must keep it and reactivate with its proof
(a fake activation server in this file checks the proof with tests/proto/manager_vectors.py).
"""

import http.client
import json
import os
import re
import signal
import socket
import sqlite3
import ssl
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
import manager_vectors as mv  # noqa: E402
from harness import Env, start_camera, start_gateway, wait_err_line  # noqa: E402
from support import ffprobe_frames, free_port, make_dev_cert, wait_until  # noqa: E402
from test_lifecycle import (OPERATOR, Manager, factory_secret, manager_binary,  # noqa: E402
                            read_agent_secret, write_factory_master, write_factory_secret,
                            write_streamers)

SERIAL = "cam-split-1"


def start_role(env, name, role, args):
    """A camtunnel-manager in `role` with its own certificate, state and ports."""
    directory = env.path(name)
    os.makedirs(directory, exist_ok=True)
    cert = make_dev_cert(directory, name=name)
    last = None
    for _ in range(5):      # the picked port can be taken before the manager binds it
        port = free_port()
        argv = [manager_binary(), "--role=%s" % role, "--listen=127.0.0.1:%d" % port,
                "--admin_listen=127.0.0.1:0", "--cert=%s" % cert[0], "--key=%s" % cert[1],
                "--store=%s" % os.path.join(directory, "state.db"), "--heartbeat_ms=1000",
                "--activation_burst=50"] + [a.replace("{port}", str(port)) for a in args]
        p = env.procs.start(name, argv)
        try:
            m = p.wait_line(r"^camtunnel-manager: ready port=(\d+) admin=(\d+) streamers=\d+ "
                            r"plain=(\d+) role=%s$" % role, 10)
        except (TimeoutError, RuntimeError) as e:
            last = e
            env.procs.abandon(p)
            continue
        return Manager(p, int(m.group(1)), int(m.group(2)), cert[0])
    raise RuntimeError("%s did not start: %s" % (name, last))


class SplitRoles(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.env = Env("split_roles")
        try:
            cls.gw = start_gateway(cls.env.procs, cls.env.path("gw"), tls=True)
            streamers = write_streamers(cls.env, cls.gw)
            cls.master_file = write_factory_master(cls.env)
            cls.handover_key = os.urandom(32)
            cls.key_file = cls.env.path("handover_key")
            with open(cls.key_file, "w") as f:
                f.write(cls.handover_key.hex() + "\n")
            cls.managing = start_role(cls.env, "managing", "managing", [
                "--handover_key_file=%s" % cls.key_file, "--streamers=%s" % streamers])
            cls.activation = start_role(cls.env, "activation", "activation", [
                "--handover_key_file=%s" % cls.key_file,
                "--handover_url=http://127.0.0.1:%d" % cls.managing.admin_port,
                "--handover_timeout_ms=1000",
                "--factory_master_file=%s" % cls.master_file, "--operators=%s" % OPERATOR,
                "--manager_url=%s" % cls.managing.url])
            cls.cam = start_camera(cls.env.procs, tcp_only=True)
            factory_file, cls.factory_hex = write_factory_secret(cls.env, cls.master_file, SERIAL)
            cls.ca = cls.env.path("ca-bundle.pem")
            with open(cls.ca, "w") as f:
                for path in (cls.activation.cert, cls.managing.cert, cls.gw.cert[0]):
                    with open(path) as c:
                        f.write(c.read())
            cls.state = cls.env.path("agent-state")
            cls.agent = cls.env.procs.start("agent", [
                harness.agent_binary(), "--state_file", cls.state,
                "--activation_url", cls.activation.url, "--serial", SERIAL,
                "--factory_secret_file", factory_file, "--operator", OPERATOR,
                "--service", "rtsp=127.0.0.1:%d" % cls.cam.rtsp_port, "--ca_file", cls.ca])
        except BaseException:
            cls.env.close(check=False)
            raise

    @classmethod
    def tearDownClass(cls):
        cls.env.close()

    def secret(self):
        return read_agent_secret(self.state)

    def handover(self, body, mac=None):
        """POST a hand-over as an activation server would (or an attacker)."""
        raw = json.dumps(body).encode()
        c = http.client.HTTPConnection("127.0.0.1", self.managing.admin_port, timeout=5)
        headers = {"Content-Type": "application/json"}
        if mac is not False:
            headers["Camtunnel-Handover-Mac"] = (mac or mv.handover_mac(self.handover_key,
                                                                        raw)).hex()
        c.request("POST", "/api/v1/handover", body=raw, headers=headers)
        r = c.getresponse()
        return r.status, json.loads(r.read() or b"{}")

    def test_1_activates_through_the_activation_server_links_to_the_managing_one(self):
        wait_err_line(self.agent, r"activated agent=%s manager=%s$"
                      % (SERIAL, re.escape(self.managing.url)), 15)
        self.gw.wait_agent(SERIAL, True, 15)
        info = ffprobe_frames(self.gw.frontend_url("rtsp", SERIAL, "/stream1"), 3)
        self.assertEqual(info["codec_name"], "h264", info["stderr"])
        self.assertGreaterEqual(info["nb_read_frames"], 50, info)
        a = wait_until(lambda: self.managing.agents().get(SERIAL), 10, what="agent at managing")
        self.assertTrue(a["linked"])
        self.assertEqual(a["operator"], OPERATOR)
        # The activation server admitted it, the managing one enrolled it: each counted once.
        self.assertEqual(self.activation.metrics().get(
            "camtunnel_manager_activations_total", result="activated"), 1)
        self.assertEqual(self.activation.metrics().get(
            "camtunnel_manager_handover_calls_total", result="answered"), 1)
        self.assertEqual(self.managing.metrics().get(
            "camtunnel_manager_handovers_total", result="activated"), 1)
        # The Internet-facing activation server holds no agent secret, not even in its database.
        db = sqlite3.connect(self.env.path("activation", "state.db"))
        try:
            self.assertEqual(db.execute("SELECT COUNT(*) FROM agents").fetchone()[0], 0)
        finally:
            db.close()
        secret = self.secret()
        with open(self.env.path("activation", "state.db"), "rb") as f:
            self.assertNotIn(secret, f.read())
        self.assertEqual(self.activation.agents(), {})

    def test_2_each_role_serves_only_its_own_part(self):
        st, body = self.managing.post_activate({"serial": SERIAL, "operator": OPERATOR,
                                                "factory_secret": self.factory_hex})
        self.assertEqual(st, 404, body)
        self.assertIn(b"activation server", body)
        ctx = ssl.create_default_context(cafile=self.activation.cert)
        c = http.client.HTTPSConnection("127.0.0.1", self.activation.port, context=ctx, timeout=5)
        c.request("GET", "/camtunnel/v1/manager", headers={
            "Connection": "Upgrade", "Upgrade": "camtunnel/1", "Camtunnel-Agent": SERIAL,
            "Camtunnel-Nonce": "AAAAAAAAAAAAAAAAAAAAAA"})
        r = c.getresponse()
        self.assertEqual(r.status, 404)
        self.assertIn(b"managing server", r.read())

    def test_3_forged_replayed_and_stale_handovers_are_refused_and_counted(self):
        fresh = {"serial": "cam-forged", "operator": OPERATOR,
                 "ts_ms": int(time.time() * 1000), "nonce": os.urandom(16).hex()}
        st, _ = self.handover(fresh, mac=mv.handover_mac(os.urandom(32), json.dumps(fresh)
                                                         .encode()))
        self.assertEqual(st, 401)
        st, _ = self.handover(fresh, mac=False)
        self.assertEqual(st, 401)
        # With the key: enrolled once; the same request again is a replay.
        st, body = self.handover(fresh)
        self.assertEqual(st, 200, body)
        sealed = bytes.fromhex(body["sealed_secret"])
        secret = mv.open_handover_secret(self.handover_key, b"cam-forged",
                                         bytes.fromhex(fresh["nonce"]), sealed)
        self.assertEqual(len(secret), 32)
        st, body = self.handover(fresh)
        self.assertEqual((st, body.get("result")), (409, "replayed"))
        stale = dict(fresh, nonce=os.urandom(16).hex(), ts_ms=fresh["ts_ms"] - 10 * 60 * 1000)
        st, body = self.handover(stale)
        self.assertEqual((st, body.get("result")), (401, "stale"))
        m = self.managing.metrics()
        self.assertEqual(m.get("camtunnel_manager_handovers_total", result="bad_mac"), 2)
        self.assertEqual(m.get("camtunnel_manager_handovers_total", result="replayed"), 1)
        self.assertEqual(m.get("camtunnel_manager_handovers_total", result="stale"), 1)

    def test_4_reactivation_proof_is_checked_by_the_managing_server(self):
        wait_until(lambda: os.path.exists(self.state), 15, what="agent state")
        proof = mv.reactivation_proof(self.secret(), SERIAL).hex()
        st, body = self.activation.post_activate({
            "serial": SERIAL, "operator": OPERATOR, "factory_secret": self.factory_hex,
            "agent_proof": proof})
        self.assertEqual(st, 200, body)
        answer = json.loads(body)
        self.assertEqual(answer["manager_url"], self.managing.url)
        self.assertNotIn("agent_secret", answer)
        st, body = self.activation.post_activate({
            "serial": SERIAL, "operator": OPERATOR, "factory_secret": self.factory_hex,
            "agent_proof": "00" * 32})
        self.assertEqual(st, 409, body)
        self.assertIn(b"agent_proof", body)
        # Linked already: without a proof the secret is never issued again.
        self.managing.agents()
        st, body = self.activation.post_activate({
            "serial": SERIAL, "operator": OPERATOR, "factory_secret": self.factory_hex})
        self.assertEqual(st, 409, body)
        self.assertNotIn(b"agent_secret", body)

    def test_5_a_silent_managing_server_gives_503_and_the_retry_succeeds(self):
        serial = "cam-split-2"
        request = {"serial": serial, "operator": OPERATOR,
                   "factory_secret": factory_secret(self.master_file, serial)}
        os.kill(self.managing.proc.pid, signal.SIGSTOP)
        try:
            started = time.monotonic()
            ctx = ssl.create_default_context(cafile=self.activation.cert)
            c = http.client.HTTPSConnection("127.0.0.1", self.activation.port, context=ctx,
                                            timeout=60)
            c.request("POST", "/api/v1/activate", body=json.dumps(request),
                      headers={"Content-Type": "application/json"})
            r = c.getresponse()
            body = r.read()
            self.assertEqual(r.status, 503, body)
            self.assertEqual(r.getheader("Retry-After"), "5")
            self.assertNotIn(b"agent_secret", body)
            # The 1 s hand-over timeout answered, not the client's patience (a busy machine may
            # add seconds; this bounds a hang).
            self.assertLess(time.monotonic() - started, 30)
        finally:
            os.kill(self.managing.proc.pid, signal.SIGCONT)
        self.assertEqual(self.activation.metrics().get(
            "camtunnel_manager_handover_calls_total", result="unreachable"), 1)
        # The stopped server may still have enrolled the request it found in its socket after
        # SIGCONT; that secret never reached a camera, so the retry gets a fresh one.
        st, body = self.activation.post_activate(request)
        self.assertEqual(st, 200, body)
        secret = bytes.fromhex(json.loads(body)["agent_secret"])
        db = sqlite3.connect(self.env.path("managing", "state.db"))
        try:
            row = db.execute("SELECT secret FROM agents WHERE agent_id = ?", (serial,)).fetchone()
        finally:
            db.close()
        self.assertEqual(bytes(row[0]) if isinstance(row[0], bytes) else bytes.fromhex(row[0]),
                         secret)


class FakeActivationServer:
    """HTTPS on loopback: answers each POST /api/v1/activate from `answers` in turn and keeps
    the request bodies."""

    def __init__(self, directory, answers):
        cert = make_dev_cert(directory, name="fake-activation")
        self.cert = cert[0]
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(*cert)
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.answers, self.requests = list(answers), []
        self.stopping = False
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.stopping:
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                continue
            try:
                conn.settimeout(5)
                s = self.ctx.wrap_socket(conn, server_side=True)
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = s.recv(4096)
                    if not chunk:
                        break
                    data += chunk
                head, _, body = data.partition(b"\r\n\r\n")
                length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))
                while len(body) < length:
                    body += s.recv(4096)
                self.requests.append(json.loads(body))
                answer = (self.answers.pop(0) if self.answers else
                          {"error": "no more answers"})
                raw = json.dumps(answer).encode()
                status = "200 OK" if "agent_id" in answer else "503 Service Unavailable"
                s.sendall(b"HTTP/1.1 %s\r\nContent-Type: application/json\r\n"
                          b"Content-Length: %d\r\nConnection: close\r\n\r\n%s"
                          % (status.encode(), len(raw), raw))
                s.close()
            except (OSError, ValueError, AttributeError):
                conn.close()

    def close(self):
        self.stopping = True
        self.thread.join(5)
        self.sock.close()


class AgentKeepsItsSecret(unittest.TestCase):
    def test_a_secret_beside_an_unusable_manager_url_is_kept_and_proven(self):
        env = Env("agent_keeps_secret")
        server = None
        try:
            secret = os.urandom(32)
            server = FakeActivationServer(env.dir, [
                {"agent_id": SERIAL, "manager_url": "ftp://nowhere", "agent_secret": secret.hex()},
                {"agent_id": SERIAL, "manager_url": "ftp://still-nowhere"}])
            factory = env.path("factory_secret")
            with open(factory, "w") as f:
                f.write(os.urandom(32).hex() + "\n")
            state = env.path("agent-state")
            agent = env.procs.start("agent", [
                harness.agent_binary(), "--state_file", state,
                "--activation_url", "https://127.0.0.1:%d" % server.port, "--serial", SERIAL,
                "--factory_secret_file", factory, "--operator", OPERATOR,
                "--service", "rtsp=127.0.0.1:9", "--ca_file", server.cert])
            wait_err_line(agent, r"activation answer has no usable manager: .*secret kept", 10)
            wait_until(lambda: len(server.requests) >= 2, 20, what="the reactivation")
            self.assertNotIn("agent_proof", server.requests[0])
            self.assertEqual(server.requests[1].get("agent_proof"),
                             mv.reactivation_proof(secret, SERIAL).hex())
            with open(state) as f:
                self.assertIn("agent_secret=%s\n" % secret.hex(), f.read())
            wait_err_line(agent, r"reactivation answer unusable", 10)
        finally:
            if server:
                server.close()
            env.close()


if __name__ == "__main__":
    unittest.main()
