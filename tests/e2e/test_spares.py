#!/usr/bin/python3
"""Spare data connections (PROTOCOL.md section 8.1) against a running gateway.

The independent Python agent (in-process, "record" mode, so each test drives OPEN, SPARE and
the data connections itself) sets the `spare-data` capability. Each test uses its own agent id
and asserts the answers, the bytes through the tunnel and the counters; afterwards the gateway
is alive and holds no connection more than before (the checks of test_bad_input).

- an agent that opened a tunnel is asked for a spare; its next tunnel runs on it (OPEN on the
  spare, OPENED back, the request and answer byte for byte), and a new spare is asked for;
- agents without the capability, or that never opened, are not asked;
- attacker moves: another agent's spare id (403), a forged proof (401), a replay (404), bytes
  before OPEN (closed, counted), a wrong tunnel id in the answer (502 to the media server);
- OPEN_FAILED on a spare gives 502; a spare that dies before answering falls back to OPEN on the
  control connection and the request still succeeds; an unused spare closes after its idle time;
- an agent whose open finds no spare held while one is on its way is asked for one more (counted
  as missed), and is back to one once they idle out;
- early data (capability bit 3): the routed request, body included, follows OPEN before the
  agent answers and is never sent twice; without the bit nothing follows OPEN before OPENED;
  OPEN_FAILED after early data is a 502; a spare lost after early data falls back and the new
  data connection carries the whole request again.

SparesCppAgent: camtunnel-agent keeps the spare the gateway asks for, and its next tunnel runs
on it: snapshots byte for byte from a camera service of the test's own, and a camera that
refuses answers OPEN_FAILED on the spare (502).
"""

import errno
import queue
import socket
import time
import unittest

import camtunnel_client as ctc
from harness import Env, InProcessAgent, TcpService, read_request_head, start_cpp_agent, \
    start_gateway
from test_bad_input import _GatewayChecks, http_get_raw

OPEN_TIMEOUT_MS = 1500
SPARE_IDLE_MS = 2000


def read_frame(stream, timeout=5.0):
    """The next frame on a data connection, or None at EOF; bytes after it stay unread."""
    deadline = time.monotonic() + timeout
    buf = b""
    while True:
        got = ctc.parse_frame(buf)
        if got is not None:
            frame, used = got
            stream.unread(buf[used:])
            return frame
        chunk = stream.recv(65536, deadline)
        if not chunk:
            return None
        buf += chunk


def ends(stream, timeout=5.0):
    """True if the peer ends the connection (EOF or reset) within the timeout."""
    deadline = time.monotonic() + timeout
    try:
        while stream.recv(65536, deadline):
            pass
        return True
    except (ConnectionError, OSError):
        return True
    except TimeoutError:
        return False


def serve_snapshot(stream, body):
    """Plays the camera on a tunnel: reads the request head, answers `body`, half-closes.
    Returns the request head the camera got."""
    deadline = time.monotonic() + 5
    head = stream.read_until(b"\r\n\r\n", 65536, deadline)
    stream.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n"
                   b"Connection: close\r\n\r\n%s" % (len(body), body), deadline)
    stream.shutdown_write()
    return head


class Spares(_GatewayChecks, unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.env = Env("spares")
        cls.gw = start_gateway(cls.env.procs, cls.env.path("gw"), extra=[
            "--open_timeout_ms=%d" % OPEN_TIMEOUT_MS, "--spare_idle_ms=%d" % SPARE_IDLE_MS])

    @classmethod
    def tearDownClass(cls):
        cls.env.close()

    def agent(self, agent_id, spares=True, early=False):
        caps = ctc.OUR_CAPABILITIES | (ctc.CAP_SPARE_DATA if spares else 0) | \
            (ctc.CAP_SPARE_EARLY_DATA if early else 0)
        cfg = self.gw.agent_config(agent_id, ["http=127.0.0.1:9"], capabilities=caps)
        a = InProcessAgent(cfg, mode="record").start()
        self.addCleanup(self.gw.wait_agent, agent_id, False)
        self.addCleanup(a.close)
        self.gw.wait_agent(agent_id)
        return a

    def request(self, agent_id):
        return self.background_request(http_get_raw("/%s/snapshot.jpg" % agent_id))

    def assertNothingArrives(self, stream, seconds=0.5):
        with self.assertRaises(TimeoutError):
            got = stream.recv(65536, time.monotonic() + seconds)
            self.fail("unexpected bytes: %r" % got)

    def tunnel_over_open(self, a, body):
        """A snapshot through an ordinary tunnel (OPEN on the control connection, a new data
        connection) whose camera answers `body`; returns (media server's result, service)."""
        t, res = self.request(a.cfg.agent_id)
        tid, service, nonce = a.next_open()
        data = ctc.open_data_connection(a.cfg, tid, nonce)
        serve_snapshot(data, body)
        t.join(10)
        data.close()
        return res, service

    def first_tunnel_then_spare(self, a):
        """An ordinary tunnel, after which the gateway asks for a spare; returns (spare id,
        nonce)."""
        res, service = self.tunnel_over_open(a, b"first answer")
        self.assertEqual(service, "http")
        self.assertEqual(res["r"][0], 200, res)
        self.assertEqual(res["r"][2], b"first answer")
        return a.spares.get(timeout=5)

    def held_spare(self, a):
        sid, snonce = self.first_tunnel_then_spare(a)
        spare = ctc.open_data_connection(a.cfg, sid, snonce)
        self.addCleanup(spare.close)
        self.gw.wait_metric("camtunnel_spare_connections", lambda v: v >= 1, 30)
        return sid, spare

    def test_the_next_tunnel_runs_on_the_spare_byte_for_byte(self):
        a = self.agent("cam-spare-1")
        m0 = self.gw.metrics()
        sid, spare = self.held_spare(a)
        t, res = self.request("cam-spare-1")
        f = read_frame(spare)
        self.assertIsNotNone(f, "the gateway closed the spare instead of writing OPEN on it")
        self.assertEqual(f.type, ctc.OPEN)
        self.assertEqual(f.text(ctc.T_SERVICE_NAME), "http")
        new_id = f.text(ctc.T_TUNNEL_ID)
        self.assertTrue(ctc.is_tunnel_id(new_id))
        self.assertNotEqual(new_id, sid)
        spare.sendall(ctc.encode_frame(ctc.OPENED, [(ctc.T_TUNNEL_ID, new_id)]))
        body = bytes(range(256)) * 40
        head = serve_snapshot(spare, body)
        self.assertTrue(head.startswith(b"GET /snapshot.jpg HTTP/1.1\r\n"), head)
        t.join(10)
        self.assertEqual(res["r"][0], 200, res)
        self.assertEqual(res["r"][2], body)
        with self.assertRaises(queue.Empty):
            a.opens.get(timeout=0.2)   # nothing on the control connection for this tunnel
        a.spares.get(timeout=5)        # and the next one is asked for
        for event, n in (("requested", 2), ("held", 1), ("used", 1), ("opened", 1),
                         ("sent_ahead", 0)):
            self.assertCounter(m0, n, "camtunnel_spare_connections_total", event=event)

    def early_open(self, agent_id, raw):
        """A request `raw` to an agent that takes early data, on its held spare: returns
        (thread, result, spare, new tunnel id, the bytes that followed OPEN before OPENED)."""
        a = self.agent(agent_id, early=True)
        _, spare = self.held_spare(a)
        t, res = self.background_request(raw)
        f = read_frame(spare)
        self.assertIsNotNone(f, "the gateway closed the spare instead of writing OPEN on it")
        self.assertEqual(f.type, ctc.OPEN)
        return t, res, a, spare, f.text(ctc.T_TUNNEL_ID)

    def test_with_early_data_the_request_follows_open_at_once(self):
        m0 = self.gw.metrics()
        body = b"motion=on&zone=" + bytes(range(48, 58)) * 30
        raw = ("POST /cam-spare-10/cgi-bin/config HTTP/1.1\r\nHost: x\r\n"
               "Content-Length: %d\r\n\r\n" % len(body)).encode() + body
        t, res, _, spare, new_id = self.early_open("cam-spare-10", raw)
        # Before any answer from the agent: the routed request (path rewritten), its body too.
        want = ("POST /cgi-bin/config HTTP/1.1\r\nHost: x\r\n"
                "Content-Length: %d\r\n\r\n" % len(body)).encode() + body
        self.assertEqual(spare.read_exact(len(want), time.monotonic() + 5), want)
        spare.sendall(ctc.encode_frame(ctc.OPENED, [(ctc.T_TUNNEL_ID, new_id)]))
        answer = bytes(range(256)) * 20
        spare.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n"
                      % len(answer) + answer)
        spare.shutdown_write()
        t.join(10)
        self.assertEqual(res["r"][0], 200, res)
        self.assertEqual(res["r"][2], answer)
        # Sent once: after OPENED the relay forwards nothing it had already sent ahead.
        self.assertEqual(spare.recv(65536, time.monotonic() + 5), b"")
        for event, n in (("used", 1), ("sent_ahead", 1), ("opened", 1)):
            self.assertCounter(m0, n, "camtunnel_spare_connections_total", event=event)

    def test_without_the_capability_the_request_waits_for_opened(self):
        a = self.agent("cam-spare-11")
        _, spare = self.held_spare(a)
        t, res = self.request("cam-spare-11")
        f = read_frame(spare)
        self.assertEqual(f.type, ctc.OPEN)
        self.assertNothingArrives(spare)
        spare.sendall(ctc.encode_frame(ctc.OPENED, [(ctc.T_TUNNEL_ID, f.text(ctc.T_TUNNEL_ID))]))
        head = serve_snapshot(spare, b"late")
        self.assertTrue(head.startswith(b"GET /snapshot.jpg HTTP/1.1\r\n"), head)
        t.join(10)
        self.assertEqual(res["r"][2], b"late")

    def test_early_data_refused_by_the_camera_is_a_502(self):
        m0 = self.gw.metrics()
        t, res, _, spare, new_id = self.early_open(
            "cam-spare-12", http_get_raw("/cam-spare-12/snapshot.jpg"))
        spare.read_until(b"\r\n\r\n", 65536, time.monotonic() + 5)
        spare.sendall(ctc.encode_frame(ctc.OPEN_FAILED, ctc.open_failed_fields(
            new_id, errno.ECONNREFUSED, "camera refused")))
        spare.close()   # unread bytes or not, the answer was on its way first
        t.join(10)
        self.assertEqual(res["r"][0], 502, res)
        self.assertCounter(m0, 1, "camtunnel_spare_connections_total", event="camera_refused")

    def test_early_data_on_a_spare_lost_is_sent_again_on_the_new_connection(self):
        m0 = self.gw.metrics()
        t, res, a, spare, new_id = self.early_open(
            "cam-spare-13", http_get_raw("/cam-spare-13/snapshot.jpg"))
        first = spare.read_until(b"\r\n\r\n", 65536, time.monotonic() + 5)
        self.assertTrue(first.startswith(b"GET /snapshot.jpg HTTP/1.1\r\n"), first)
        spare.reset()
        tid, service, nonce = a.next_open()
        self.assertEqual((tid, service), (new_id, "http"))
        data = ctc.open_data_connection(a.cfg, tid, nonce)
        self.assertEqual(serve_snapshot(data, b"second try"), first)   # the whole request again
        t.join(10)
        self.assertEqual(res["r"][0], 200, res)
        self.assertEqual(res["r"][2], b"second try")
        data.close()
        self.assertCounter(m0, 1, "camtunnel_spare_connections_total", event="fell_back")

    def test_only_agents_with_the_capability_that_opened_are_asked(self):
        m0 = self.gw.metrics()
        plain = self.agent("cam-spare-2", spares=False)
        res, _ = self.tunnel_over_open(plain, b"x")
        self.assertEqual(res["r"][0], 200, res)
        idle = self.agent("cam-spare-3")
        for a in (plain, idle):
            with self.assertRaises(queue.Empty):
                a.spares.get(timeout=1)
        self.assertCounter(m0, 0, "camtunnel_spare_connections_total", event="requested")

    def test_a_spare_is_its_agents_only_and_used_once(self):
        a = self.agent("cam-spare-4")
        m0 = self.gw.metrics()
        sid, snonce = self.first_tunnel_then_spare(a)
        other = self.gw.agent_config("cam-spare-5")
        for cfg, proof, status in ((other, None, 403), (a.cfg, bytes(32), 401)):
            with self.assertRaises(ctc.UpgradeRejected) as cm:
                ctc.open_data_connection(cfg, sid, snonce, proof=proof)
            self.assertEqual(cm.exception.status, status)
        spare = ctc.open_data_connection(a.cfg, sid, snonce)   # still pending: a forger cannot
        self.addCleanup(spare.close)                           # cancel it
        with self.assertRaises(ctc.UpgradeRejected) as cm:
            ctc.open_data_connection(a.cfg, sid, snonce)
        self.assertEqual(cm.exception.status, 404)
        # Nothing may come from the agent before the gateway's OPEN.
        spare.sendall(b"RTSP/1.0 200 OK\r\n\r\n")
        self.assertTrue(ends(spare), "the gateway kept a spare that spoke first")
        self.assertCounter(m0, 1, "camtunnel_spare_connections_total", event="protocol_error")
        self.gw.wait_metric("camtunnel_spare_connections", lambda v: v == 0, 30)

    def test_a_wrong_answer_on_the_spare_fails_the_request(self):
        a = self.agent("cam-spare-6")
        m0 = self.gw.metrics()
        _, spare = self.held_spare(a)
        t, res = self.request("cam-spare-6")
        f = read_frame(spare)
        self.assertEqual(f.type, ctc.OPEN)
        spare.sendall(ctc.encode_frame(ctc.OPENED, [(ctc.T_TUNNEL_ID, "0123456789abcdef")]))
        t.join(10)
        self.assertEqual(res["r"][0], 502, res)
        self.assertTrue(ends(spare))
        self.assertCounter(m0, 1, "camtunnel_spare_connections_total", event="protocol_error")

    def test_open_failed_on_the_spare_is_a_502(self):
        a = self.agent("cam-spare-7")
        m0 = self.gw.metrics()
        _, spare = self.held_spare(a)
        t, res = self.request("cam-spare-7")
        f = read_frame(spare)
        spare.sendall(ctc.encode_frame(ctc.OPEN_FAILED, ctc.open_failed_fields(
            f.text(ctc.T_TUNNEL_ID), errno.ECONNREFUSED, "camera refused")))
        t.join(10)
        self.assertEqual(res["r"][0], 502, res)
        self.assertCounter(m0, 1, "camtunnel_spare_connections_total", event="camera_refused")

    def test_a_spare_lost_before_answering_falls_back_to_open(self):
        a = self.agent("cam-spare-8")
        m0 = self.gw.metrics()
        _, spare = self.held_spare(a)
        t, res = self.request("cam-spare-8")
        f = read_frame(spare)
        new_id = f.text(ctc.T_TUNNEL_ID)
        spare.reset()   # a NAT that forgot the connection, an agent that restarted
        tid, service, nonce = a.next_open()
        self.assertEqual((tid, service), (new_id, "http"))
        data = ctc.open_data_connection(a.cfg, tid, nonce)
        serve_snapshot(data, b"after the fall-back")
        t.join(10)
        self.assertEqual(res["r"][0], 200, res)
        self.assertEqual(res["r"][2], b"after the fall-back")
        data.close()
        self.assertCounter(m0, 1, "camtunnel_spare_connections_total", event="fell_back")

    def test_an_unused_spare_closes_after_its_idle_time(self):
        a = self.agent("cam-spare-9")
        m0 = self.gw.metrics()
        _, spare = self.held_spare(a)
        t0 = time.monotonic()
        self.assertTrue(ends(spare, SPARE_IDLE_MS / 1000 + 3))
        self.assertGreaterEqual(time.monotonic() - t0, SPARE_IDLE_MS / 1000 - 0.5)
        self.assertCounter(m0, 1, "camtunnel_spare_connections_total", event="expired")
        self.gw.wait_metric("camtunnel_spare_connections", lambda v: v == 0, 30)

    def test_an_agent_whose_opens_outrun_its_spares_gets_one_more_until_they_idle_out(self):
        a = self.agent("cam-spare-10")
        m0 = self.gw.metrics()
        first = self.first_tunnel_then_spare(a)   # asked for, not connected yet
        # So this open finds none held and goes over the control connection...
        res, _ = self.tunnel_over_open(a, b"second answer")
        second = a.spares.get(timeout=5)          # ...and the agent is asked for one more
        self.assertEqual(res["r"][0], 200, res)
        self.assertEqual(res["r"][2], b"second answer")
        self.assertCounter(m0, 1, "camtunnel_spare_connections_total", event="missed")
        spares = [ctc.open_data_connection(a.cfg, sid, n) for sid, n in (first, second)]
        for spare in spares:
            self.addCleanup(spare.close)
        self.assertCounter(m0, 2, "camtunnel_spare_connections_total", event="held")
        with self.assertRaises(queue.Empty):
            a.spares.get(timeout=0.5)              # two, not more: nothing was missed since
        # Unused, both close after the idle time, and the agent is back to one.
        for spare in spares:
            self.assertTrue(ends(spare, SPARE_IDLE_MS / 1000 + 3))
        res, _ = self.tunnel_over_open(a, b"third answer")
        self.assertEqual(res["r"][0], 200, res)
        a.spares.get(timeout=5)
        with self.assertRaises(queue.Empty):
            a.spares.get(timeout=0.5)
        self.assertCounter(m0, 1, "camtunnel_spare_connections_total", event="missed")


class SparesCppAgent(_GatewayChecks, unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.env = Env("spares-cpp")
        # Spares close after 1 s unused, so each test ends with the connections it began with.
        cls.gw = start_gateway(cls.env.procs, cls.env.path("gw"), extra=[
            "--open_timeout_ms=%d" % OPEN_TIMEOUT_MS, "--spare_idle_ms=1000"])
        cls.answers = []

        def camera(conn):
            if read_request_head(conn, 5) is None:
                return
            body = bytes((len(cls.answers) * 7 + i) % 251 for i in range(50000))
            cls.answers.append(body)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n"
                         % len(body) + body)
        cls.camera = TcpService(camera)
        start_cpp_agent(cls.env.procs, cls.gw, "cam-spare-cpp",
                        ["http=127.0.0.1:%d" % cls.camera.port])
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            closed_port = s.getsockname()[1]   # nothing listens there once closed
        start_cpp_agent(cls.env.procs, cls.gw, "cam-spare-cpp-2",
                        ["http=127.0.0.1:%d" % closed_port])

    @classmethod
    def tearDownClass(cls):
        cls.camera.close()
        cls.env.close()

    def test_the_agents_next_tunnel_runs_on_its_spare(self):
        m0 = self.gw.metrics()
        for n in range(3):
            t, res = self.background_request(http_get_raw("/cam-spare-cpp/snapshot.jpg"))
            t.join(10)
            self.assertEqual(res["r"][0], 200, res)
            self.assertEqual(res["r"][2], self.answers[-1], "answer %d differs" % n)
            # the spare asked for after this open is in place before the next request
            self.gw.wait_metric("camtunnel_spare_connections", lambda v: v == 1, 30)
        self.assertCounter(m0, 2, "camtunnel_spare_connections_total", event="opened")
        self.assertCounter(m0, 0, "camtunnel_spare_connections_total", event="fell_back")

    def test_a_camera_that_refuses_answers_open_failed_on_the_spare(self):
        m0 = self.gw.metrics()
        # The first open goes over the control connection (OPEN_FAILED there), and asks for a
        # spare all the same; the second runs on the spare and is refused on it.
        for n in range(2):
            t, res = self.background_request(http_get_raw("/cam-spare-cpp-2/snapshot.jpg"))
            t.join(10)
            self.assertEqual(res["r"][0], 502, res)
            if n == 0:
                self.assertCounter(m0, 1, "camtunnel_spare_connections_total", event="held")
        self.assertCounter(m0, 1, "camtunnel_spare_connections_total", event="camera_refused")


if __name__ == "__main__":
    unittest.main()
