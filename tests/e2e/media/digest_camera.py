#!/usr/bin/python3
"""A camera that behaves like real ones: RTSP and HTTP behind Digest authentication, short RTSP
sessions that need keepalives, and observable RTCP. For the media acceptance tests
(tests/e2e/media/).

  digest_camera.py [--bind 127.0.0.1] [--rtsp-port 0] [--http-port 0]
                   [--user admin --password secret] [--realm camera]
                   [--session-timeout 6] [--session-grace 2]
                   [--width 320 --height 240 --fps 25 --bitrate 300]

RTSP (GstRtspServer, H.264 test pattern, shared media per mount, RTP over TCP only):
  /stream1   Digest-protected, GStreamer's own check (lenient: it verifies the response over
             the `uri` of the Authorization header and never compares that uri with the request
             line, so it survives a proxy that rewrites request lines)
  /strict    Digest-protected and strict like many real cameras: the Authorization `uri` must
             equal the request-line URI byte for byte (RFC 2617 3.2.2.5), else 401
  /open      no authentication
  /live      no authentication (a second open mount, for tests that want clients apart)
  Without --user every mount is open.
  Sessions: a session expires --session-timeout (announced in the Session header) plus
  --session-grace seconds after its last keepalive, which is an RTSP request carrying its id
  (GET_PARAMETER, OPTIONS, ...) or RTCP sent by the client on the connection that uses the
  session; the expired session is removed and its connection closed (checked every 0.25 s).
  The grace covers clients that keep sessions alive with RTCP alone (GStreamer's rtspsrc over
  TCP): RFC 3550 spaces receiver reports up to 1.5 x 5 s / 1.22 = 6.2 s apart. Stock
  GStreamer never expires a session whose RTP flows over the RTSP connection (every packet it
  delivers counts as a keepalive) and adds 5 s of grace; cameras do expire such sessions, so
  this one keeps its own watch.
  The RTSP port is a tap in front of the GStreamer server (which listens on an internal port):
  it copies every byte both ways and reads the client's side (for RTSP over HTTP, the base64
  body of the POST), to see interleaved RTCP per connection and session.
HTTP (keep-alive HTTP/1.1, Digest per RFC 7616 with MD5 and qop=auth, strict uri check):
  /snapshot.jpg  Digest-protected (open without --user)
  /open.jpg      never protected
  POST /onvif/device_service  Digest-protected (open without --user), and POST /echo, never
                 protected: read a Content-Length or chunked body, answer "sha256=HEX length=N"
  --snapshot FILE serves that JPEG; by default one frame of the test pattern made at start-up.

Observation: one line per event on stdout (flushed), so a test can prove what reached the
camera:
  ready rtsp=PORT http=PORT
  rtsp request method=M uri=U session=S auth=none|ok|challenge|bad-response|bad-uri
  rtsp session-new id=S timeout=T
  rtsp session-expired id=S                  no keepalive within the timeout
  rtsp session-removed id=S
  rtcp conn=N channel=C pt=P ssrc=X session=S via=rtsp|http
                                             an interleaved frame on an odd channel (RTCP) from
                                             the client of tap connection N (via=http: inside
                                             the POST of RTSP over HTTP); P and X are the type
                                             and sender SSRC of its first packet
  rtpbin-rtcp mount=/M pt=P ssrc=X           the same RTCP as received by the media's RTP
                                             session (GStreamer's own view; SR/RR only)
  http conn=N method=M path=P status=C auth=none|ok|challenge|bad-uri|bad-response|stale
SIGTERM/SIGINT: clean exit, status 0. Run with Debian's /usr/bin/python3 (python3-gi).
"""

import argparse
import base64
import hashlib
import http.server
import itertools
import os
import re
import secrets
import signal
import socket
import socketserver
import struct
import sys
import tempfile
import threading
import time

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtsp", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtsp, GstRtspServer  # noqa: E402

_out_lock = threading.Lock()


def event(line):
    with _out_lock:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def launch_line(width, height, fps, bitrate):
    return ("( videotestsrc is-live=true ! video/x-raw,width=%d,height=%d,framerate=%d/1 "
            "! x264enc tune=zerolatency speed-preset=ultrafast bitrate=%d key-int-max=%d "
            "! rtph264pay name=pay0 pt=96 config-interval=1 )" % (width, height, fps, bitrate, fps))


def make_snapshot(path, width, height):
    pipe = Gst.parse_launch(
        "videotestsrc num-buffers=1 pattern=smpte ! video/x-raw,width=%d,height=%d "
        "! jpegenc ! filesink location=%s" % (width, height, path))
    pipe.set_state(Gst.State.PLAYING)
    msg = pipe.get_bus().timed_pop_filtered(10 * Gst.SECOND,
                                            Gst.MessageType.EOS | Gst.MessageType.ERROR)
    pipe.set_state(Gst.State.NULL)
    if msg is None or msg.type != Gst.MessageType.EOS or not os.path.getsize(path):
        raise RuntimeError("could not make a snapshot JPEG")


def parse_auth_params(value):
    """`Digest k=v, k="v", ...` -> (scheme lower-case, {k lower-case: v}); quoted strings may
    hold commas and backslash escapes."""
    value = value.strip()
    scheme, _, rest = value.partition(" ")
    params = {}
    i, n = 0, len(rest)
    while i < n:
        while i < n and rest[i] in " \t,":
            i += 1
        j = rest.find("=", i)
        if j < 0:
            break
        key = rest[i:j].strip().lower()
        i = j + 1
        if i < n and rest[i] == '"':
            i += 1
            v = []
            while i < n and rest[i] != '"':
                if rest[i] == "\\" and i + 1 < n:
                    i += 1
                v.append(rest[i])
                i += 1
            i += 1
            params[key] = "".join(v)
        else:
            j = rest.find(",", i)
            j = n if j < 0 else j
            params[key] = rest[i:j].strip()
            i = j
    return scheme.lower(), params


def md5(s):
    return hashlib.md5(s.encode("utf-8")).hexdigest()


# --------------------------------------------------------------------------------------------
# RTSP

class SessionWatch:
    """Last keepalive time of every RTSP session (see start_rtsp)."""

    def __init__(self):
        self.timeout = 60    # announced in the Session header
        self.grace = 0       # tolerated beyond it
        self._lock = threading.Lock()
        self._sessions = {}   # id -> [session, client, last request (monotonic s)]

    def add(self, session, client):
        with self._lock:
            self._sessions[session.get_sessionid()] = [session, client, time.monotonic()]

    def touch(self, sid):
        with self._lock:
            rec = self._sessions.get(sid)
            if rec is not None:
                rec[2] = time.monotonic()

    def discard(self, sid):
        with self._lock:
            self._sessions.pop(sid, None)

    def expired(self):
        now = time.monotonic()
        with self._lock:
            gone = [sid for sid, rec in self._sessions.items()
                    if now - rec[2] > self.timeout + self.grace]
            return [self._sessions.pop(sid)[:2] for sid in gone]


sessions_watch = SessionWatch()


class CameraAuth(GstRtspServer.RTSPAuth):
    """Digest for the protected mounts, nothing for the others, and a log line per request.

    From Python the permissions of an RTSPToken cannot be filled (its structure is copied), so
    authorization is decided here: an authenticated user (any token set by the Digest check) may
    do everything; anybody may use the open mounts."""

    def __init__(self, protected, strict):
        super().__init__()
        self.protected = tuple(protected)   # mount paths needing Digest
        self.strict = tuple(strict)         # of those, the ones with the strict uri check

    @staticmethod
    def _mount_of(path):
        return "/" + path.lstrip("/").split("/", 1)[0]

    def do_check(self, ctx, check):
        if check != GstRtspServer.RTSP_AUTH_CHECK_URL:
            return True   # media factory access/construct, transport settings: decided below
        req = ctx.request
        _, method, uri, _ = req.parse_request()
        method_name = GstRtsp.rtsp_method_as_text(method)
        r, session = req.get_header(GstRtsp.RTSPHeaderField.SESSION, 0)
        session = session.split(";", 1)[0].strip() if r == GstRtsp.RTSPResult.OK and session \
            else "-"
        if session != "-":
            sessions_watch.touch(session)
        path = ctx.uri.abspath if ctx.uri is not None else uri
        mount = self._mount_of(path)
        if mount not in self.protected:
            event("rtsp request method=%s uri=%s session=%s auth=none"
                  % (method_name, uri, session))
            return True
        r, authz = req.get_header(GstRtsp.RTSPHeaderField.AUTHORIZATION, 0)
        if r != GstRtsp.RTSPResult.OK:
            authz = None
        verdict = "challenge"
        if authz and mount in self.strict:
            _, params = parse_auth_params(authz)
            if params.get("uri") != uri:
                # The digest was computed for another URI than the one requested: refuse as a
                # strict camera does, with a fresh challenge (hide the header from the check).
                req.remove_header(GstRtsp.RTSPHeaderField.AUTHORIZATION, -1)
                verdict = "bad-uri"
                event("rtsp request method=%s uri=%s session=%s auth=%s digest_uri=%s"
                      % (method_name, uri, session, verdict, params.get("uri")))
                return GstRtspServer.RTSPAuth.do_check(
                    self, ctx, GstRtspServer.RTSP_AUTH_CHECK_MEDIA_FACTORY_ACCESS)
        if ctx.token is None and authz:
            GstRtspServer.RTSPAuth.do_authenticate(self, ctx)
        if ctx.token is not None:
            event("rtsp request method=%s uri=%s session=%s auth=ok" % (method_name, uri, session))
            return True
        if authz:
            verdict = "bad-response"
        event("rtsp request method=%s uri=%s session=%s auth=%s"
              % (method_name, uri, session, verdict))
        # The parent's factory check finds no token and answers 401 with a Digest challenge.
        return GstRtspServer.RTSPAuth.do_check(
            self, ctx, GstRtspServer.RTSP_AUTH_CHECK_MEDIA_FACTORY_ACCESS)


def parse_rtcp_first(data):
    """(pt, sender ssrc) of the first packet of an RTCP compound packet, or None."""
    if len(data) < 8 or (data[0] >> 6) != 2:
        return None
    pt = data[1]
    ssrc = struct.unpack("!I", data[4:8])[0]
    return pt, ssrc


def watch_rtcp(media, mount):
    """Log every RTCP SR/RR compound packet the media's RTP sessions receive from clients."""
    def on_rtcp(_session, buf, *_):
        ok, info = buf.map(Gst.MapFlags.READ)
        if not ok:
            return
        try:
            first = parse_rtcp_first(bytes(info.data))
        finally:
            buf.unmap(info)
        if first and first[0] in (200, 201):
            event("rtpbin-rtcp mount=%s pt=%d ssrc=%08x" % (mount, first[0], first[1]))

    def on_prepared(m):
        for i in range(m.n_streams()):
            sess = m.get_stream(i).get_rtpsession()
            if sess is not None:
                sess.connect("on-receiving-rtcp", on_rtcp)

    media.connect("prepared", on_prepared)


# --------------------------------------------------------------------------------------------
# RTSP connection tap

class RtspTap:
    """The camera's RTSP port: relays every connection to the GStreamer server (bound to an
    internal port) and reads what the client sends, so RTCP from a client can be attributed
    to its connection and session: each interleaved frame on an odd channel ($ 1, $ 3: RTCP by
    the SETUP convention) is logged and counts as a keepalive of the session the connection
    uses (learned from the Session header of its requests). RTSP over HTTP: the POST half is
    read through its base64 body the same way. Every byte is forwarded before it is looked
    at, and server-to-client bytes are copied untouched."""

    def __init__(self, bind, port, upstream_port, watch):
        self.upstream = (bind, upstream_port)
        self.watch = watch
        self.ids = itertools.count(1)
        self.sock = socket.socket(socket.AF_INET6 if ":" in bind else socket.AF_INET)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((bind, port))
        self.sock.listen(128)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client, next(self.ids)),
                             daemon=True).start()

    def _serve(self, client, conn_id):
        try:
            server = socket.create_connection(self.upstream)
        except OSError:
            client.close()
            return
        for s in (client, server):
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        back = threading.Thread(target=self._copy, args=(server, client), daemon=True)
        back.start()
        try:
            self._client_to_server(client, server, conn_id)
        finally:
            back.join()
            client.close()
            server.close()

    @staticmethod
    def _copy(src, dst):
        """Raw copy server (src) -> client (dst); EOF becomes a half-close. When the client
        is gone (a write fails), the server is left alone: the client's reader still forwards
        what the client sent before its reset (a TEARDOWN right before it) and then ends the
        server side. When the server fails, both sides are closed."""
        while True:
            try:
                d = src.recv(65536)
            except OSError:
                d = None
            if not d:
                try:
                    dst.shutdown(socket.SHUT_WR if d is not None else socket.SHUT_RDWR)
                except OSError:
                    pass
                return
            try:
                dst.sendall(d)
            except OSError:
                try:
                    src.shutdown(socket.SHUT_RD)
                except OSError:
                    pass
                return

    def _client_to_server(self, client, server, conn_id):
        """Forwards the client's bytes and reads them: RTSP requests (for the Session id) and
        interleaved frames; in the POST half of RTSP over HTTP, the same inside the base64
        body; the GET half carries nothing after its head."""
        state = {"conn": conn_id, "session": None, "buf": b"", "via": "rtsp"}
        mode = None         # "rtsp", "post-head", "post" (base64), "ignore"
        pending = b""       # undecided first bytes, POST head, or base64 not yet decoded
        try:
            while True:
                d = client.recv(65536)
                if not d:
                    break
                server.sendall(d)   # forward first: parsing never delays or drops a byte
                if mode == "ignore":
                    continue
                if mode == "rtsp":
                    self._parse(state, d)
                    continue
                pending += d
                if mode is None:
                    if len(pending) < 5:
                        continue
                    mode = ("post-head" if pending.startswith(b"POST ") else
                            "ignore" if pending.startswith(b"GET ") else "rtsp")
                    if mode == "rtsp":
                        self._parse(state, pending)
                    if mode != "post-head":
                        pending = b""
                        continue
                if mode == "post-head":
                    state["via"] = "http"
                    end = pending.find(b"\r\n\r\n")
                    if end < 0:
                        continue
                    pending, mode = pending[end + 4:], "post"
                pending = b"".join(pending.split())   # base64 may be wrapped
                n = len(pending) // 4 * 4
                if n:
                    self._parse(state, base64.b64decode(pending[:n]))
                    pending = pending[n:]
            server.shutdown(socket.SHUT_WR)
        except (OSError, ValueError):
            # The client reset (or the server went away): what was read was forwarded above;
            # end the server side as a client's close would.
            try:
                server.shutdown(socket.SHUT_WR)
            except OSError:
                pass

    def _parse(self, state, data):
        buf = state["buf"] + data
        while buf:
            if buf[0:1] == b"$":
                if len(buf) < 4:
                    break
                ch, n = buf[1], struct.unpack("!H", buf[2:4])[0]
                if len(buf) < 4 + n:
                    break
                frame, buf = buf[4:4 + n], buf[4 + n:]
                if ch % 2 == 1:
                    first = parse_rtcp_first(frame)
                    if first:
                        event("rtcp conn=%d channel=%d pt=%d ssrc=%08x session=%s via=%s"
                              % (state["conn"], ch, first[0], first[1], state["session"] or "-",
                                 state["via"]))
                    if state["session"]:
                        self.watch.touch(state["session"])
                continue
            if buf[0:1] in (b"\r", b"\n"):
                buf = buf[1:]
                continue
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                break
            head = buf[:end].decode("latin-1")
            m = re.search(r"(?im)^content-length:\s*(\d+)", head)
            n = int(m.group(1)) if m else 0
            if len(buf) < end + 4 + n:
                break
            buf = buf[end + 4 + n:]
            m = re.search(r"(?im)^session:\s*([^;\r\n]+)", head)
            if m:
                state["session"] = m.group(1).strip()
        state["buf"] = buf


def start_rtsp(a):
    server = GstRtspServer.RTSPServer()
    server.set_address(a.bind)
    server.set_service("0")   # internal port; clients reach it through the RtspTap
    mounts = server.get_mount_points()
    for mount in ("/stream1", "/strict", "/open", "/live"):
        factory = GstRtspServer.RTSPMediaFactory()
        factory.set_launch(launch_line(a.width, a.height, a.fps, a.bitrate))
        factory.set_shared(True)   # gst-rtsp-server 1.22 can abort on concurrent SETUPs otherwise
        factory.set_protocols(GstRtsp.RTSPLowerTrans.TCP)   # nothing may bypass the tunnel
        factory.connect("media-configure", lambda _f, media, m=mount: watch_rtcp(media, m))
        mounts.add_factory(mount, factory)
    protected = ("/stream1", "/strict") if a.user else ()
    auth = CameraAuth(protected, ("/strict",) if a.user else ())
    auth.set_supported_methods(GstRtsp.RTSPAuthMethod.DIGEST)
    auth.set_realm(a.realm)
    if a.user:
        auth.add_digest(a.user, a.password, GstRtspServer.RTSPToken())
    server.set_auth(auth)

    pool = server.get_session_pool()
    # GStreamer never expires a session whose RTP it can deliver over the RTSP connection (every
    # packet sent counts as a keepalive), and grants 5 s beyond the announced timeout. Cameras
    # do expire such sessions when no keepalive comes, and a proxy in the path must carry the
    # keepalives: so this camera keeps its own watch (SessionWatch), touched by requests that
    # carry a session id (CameraAuth.do_check) and by RTCP from the session's connection
    # (RtspTap). An expired session is removed and its connection closed.
    watch = sessions_watch
    watch.timeout, watch.grace = a.session_timeout, a.session_grace

    def on_new_session(client, session):
        session.set_timeout(a.session_timeout)
        session.set_property("extra-timeout", 0)
        watch.add(session, client)
        event("rtsp session-new id=%s timeout=%d" % (session.get_sessionid(),
                                                     session.get_timeout()))

    def on_client(_server, client):
        client.connect("new-session", on_new_session)

    def on_removed(_pool, session):
        watch.discard(session.get_sessionid())
        event("rtsp session-removed id=%s" % session.get_sessionid())

    def tick():
        for session, client in watch.expired():
            event("rtsp session-expired id=%s" % session.get_sessionid())
            pool.remove(session)
            client.close()
        pool.cleanup()
        return True

    server.connect("client-connected", on_client)
    pool.connect("session-removed", on_removed)
    GLib.timeout_add(250, tick)
    if server.attach(None) == 0:
        raise OSError("cannot listen on %s (RTSP, internal)" % a.bind)
    return RtspTap(a.bind, a.rtsp_port, server.get_bound_port(), watch)


# --------------------------------------------------------------------------------------------
# HTTP

class DigestHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"   # keep-alive: two requests may share one connection
    snapshot = None
    user = None
    password = None
    realm = "camera"
    nonces = {}                     # nonce -> highest nc seen
    nonces_lock = threading.Lock()
    conn_ids = itertools.count(1)

    def setup(self):
        super().setup()
        self.conn_id = next(self.conn_ids)

    def do_GET(self):
        self._serve(True)

    def do_HEAD(self):
        self._serve(False)

    def do_POST(self):
        """Reads the request body (Content-Length or chunked, as ONVIF clients send SOAP) and
        answers with its sha256 and length, so a test can prove the body arrived whole.
        /onvif/device_service is Digest-protected like the snapshot; /echo never is."""
        path = self.path.split("?", 1)[0]
        try:
            data = self._read_body()
        except ValueError:
            self.close_connection = True
            return self._reply(400, b"bad body\n", "text/plain", True, "none")
        if path not in ("/onvif/device_service", "/echo"):
            return self._reply(404, b"not found\n", "text/plain", True, "none")
        verdict = "none"
        if path != "/echo" and self.user:
            verdict = self._check_digest()
            if verdict != "ok":
                return self._challenge(True, verdict)
        answer = ("sha256=%s length=%d\n" % (hashlib.sha256(data).hexdigest(), len(data)))
        self._reply(200, answer.encode(), "text/plain", True, verdict)

    def _read_body(self):
        self.body_read = True
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            out = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass   # trailer fields
                    return out
                out += self.rfile.read(size)
                if self.rfile.readline() not in (b"\r\n", b"\n"):
                    raise ValueError("chunk without CRLF")
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _serve(self, body):
        path = self.path.split("?", 1)[0]
        if path not in ("/snapshot.jpg", "/open.jpg"):
            return self._reply(404, b"not found\n", "text/plain", body, "none")
        verdict = "none"
        if path == "/snapshot.jpg" and self.user:
            verdict = self._check_digest()
            if verdict != "ok":
                return self._challenge(body, verdict)
        with open(self.snapshot, "rb") as f:
            data = f.read()
        self._reply(200, data, "image/jpeg", body, verdict)

    def _check_digest(self):
        value = self.headers.get("Authorization")
        if not value:
            return "challenge"
        scheme, p = parse_auth_params(value)
        if scheme != "digest" or p.get("username") != self.user or p.get("realm") != self.realm:
            return "bad-response"
        if p.get("uri") != self.path:
            return "bad-uri"   # RFC 7616 3.4.6: the uri must be the request-target
        nonce, nc = p.get("nonce", ""), p.get("nc", "")
        with self.nonces_lock:
            last = self.nonces.get(nonce)
        if last is None:
            return "stale"
        ha1 = md5("%s:%s:%s" % (self.user, self.realm, self.password))
        ha2 = md5("%s:%s" % (self.command, p["uri"]))
        if p.get("qop") == "auth":
            try:
                n = int(nc, 16)
            except ValueError:
                return "bad-response"
            expect = md5("%s:%s:%s:%s:auth:%s" % (ha1, nonce, nc, p.get("cnonce", ""), ha2))
            if p.get("response") != expect:
                return "bad-response"
            with self.nonces_lock:
                if n <= self.nonces.get(nonce, 0):
                    return "stale"   # replayed nonce count
                self.nonces[nonce] = n
            return "ok"
        return "bad-response"       # qop=auth is required

    def _challenge(self, body, verdict):
        nonce = secrets.token_hex(16)
        with self.nonces_lock:
            self.nonces[nonce] = 0
        stale = ", stale=true" if verdict == "stale" else ""
        self._reply(401, b"unauthorized\n", "text/plain", body, verdict, [(
            "WWW-Authenticate",
            'Digest realm="%s", qop="auth", algorithm=MD5, nonce="%s", opaque="%s"%s'
            % (self.realm, nonce, secrets.token_hex(8), stale))])

    def _reply(self, status, data, ctype, body, verdict, extra=()):
        # Read and drop any request body so the connection stays usable.
        n = int(self.headers.get("Content-Length") or 0)
        if n and not getattr(self, "body_read", False):
            self.rfile.read(n)
        self.body_read = False
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        for k, v in extra:
            self.send_header(k, v)
        self.end_headers()
        if body:
            self.wfile.write(data)
        event("http conn=%d method=%s path=%s status=%d auth=%s"
              % (self.conn_id, self.command, self.path, status, verdict))

    def log_message(self, fmt, *args):
        if os.environ.get("CAMERA_VERBOSE"):
            sys.stderr.write("digest_camera http: %s\n" % (fmt % args))


class HTTPServer(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    ap.add_argument("--bind", default="127.0.0.1")
    ap.add_argument("--rtsp-port", type=int, default=0)
    ap.add_argument("--http-port", type=int, default=0)
    ap.add_argument("--user", help="Digest user (without it nothing is protected)")
    ap.add_argument("--password", default="")
    ap.add_argument("--realm", default="camera")
    ap.add_argument("--session-timeout", type=int, default=6, help="RTSP session timeout, s")
    ap.add_argument("--session-grace", type=float, default=2.0,
                    help="seconds tolerated beyond the timeout before a session expires")
    ap.add_argument("--snapshot", help="JPEG served at /snapshot.jpg and /open.jpg")
    ap.add_argument("--width", type=int, default=320)
    ap.add_argument("--height", type=int, default=240)
    ap.add_argument("--fps", type=int, default=25)
    ap.add_argument("--bitrate", type=int, default=300, help="H.264 kbit/s")
    a = ap.parse_args(argv)

    Gst.init(None)
    tmp = None
    snapshot = a.snapshot
    if snapshot is None:
        tmp = tempfile.TemporaryDirectory(prefix="digest-camera-")
        snapshot = os.path.join(tmp.name, "snapshot.jpg")
        make_snapshot(snapshot, a.width, a.height)
    elif not os.path.isfile(snapshot):
        ap.error("no such snapshot file: %s" % snapshot)

    try:
        server = start_rtsp(a)
    except OSError as e:
        sys.stderr.write("digest_camera: %s\n" % e)
        return 1

    DigestHandler.snapshot = snapshot
    DigestHandler.user = a.user
    DigestHandler.password = a.password
    DigestHandler.realm = a.realm
    try:
        httpd = HTTPServer((a.bind, a.http_port), DigestHandler)
    except OSError as e:
        sys.stderr.write("digest_camera: cannot listen on %s:%d (HTTP): %s\n"
                         % (a.bind, a.http_port, e))
        return 1
    threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.2},
                     daemon=True).start()

    loop = GLib.MainLoop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, sig, lambda *_: (loop.quit(), False)[1])
    event("ready rtsp=%d http=%d" % (server.port, httpd.server_address[1]))
    loop.run()

    httpd.shutdown()
    httpd.server_close()
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
