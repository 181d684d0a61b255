#!/usr/bin/python3
"""A camera that behaves like real ones: RTSP and HTTP behind Digest authentication, short RTSP
sessions, and observable RTCP. For the media acceptance tests (tests/e2e/media/).

  digest_camera.py [--bind 127.0.0.1] [--rtsp-port 0] [--http-port 0]
                   [--user admin --password secret] [--realm camera]
                   [--session-timeout 6] [--width 320 --height 240 --fps 25]

RTSP (GstRtspServer, H.264 test pattern, shared media per mount, RTP over TCP only):
  /stream1   Digest-protected, GStreamer's own check (lenient: it verifies the response over
             the `uri` of the Authorization header and never compares that uri with the request
             line, so it survives a proxy that rewrites request lines)
  /strict    Digest-protected and strict like many real cameras: the Authorization `uri` must
             equal the request-line URI byte for byte (RFC 2617 3.2.2.5), else 401
  /open      no authentication
  Without --user every mount is open. A session expires --session-timeout seconds after the
  last RTSP request carrying its id (GET_PARAMETER, OPTIONS, ... keepalives), also while its RTP
  flows over the RTSP connection (stock GStreamer never expires such a session: every packet
  it delivers counts as a keepalive); the expired session is removed and its connection closed
  (checked every 0.25 s). RTCP from the client does not refresh sessions here.
HTTP (keep-alive HTTP/1.1, Digest per RFC 7616 with MD5 and qop=auth, strict uri check):
  /snapshot.jpg  Digest-protected (open without --user)
  /open.jpg      never protected
  --snapshot FILE serves that JPEG; by default one frame of the test pattern made at start-up.

Observation: one line per event on stdout (flushed), so a test can prove what reached the
camera:
  ready rtsp=PORT http=PORT
  rtsp request method=M uri=U session=S auth=none|ok|challenge|bad-response|bad-uri
  rtsp session-new id=S timeout=T
  rtsp session-expired id=S                  no keepalive request within the timeout
  rtsp session-removed id=S
  rtcp mount=/M pt=201 ssrc=XXXXXXXX        every RTCP compound packet received whose first
                                             packet is a receiver report (PT 201) or SR (200)
  http conn=N method=M path=P status=C auth=none|ok|challenge|bad-uri|bad-response|stale
SIGTERM/SIGINT: clean exit, status 0. Run with Debian's /usr/bin/python3 (python3-gi).
"""

import argparse
import hashlib
import http.server
import itertools
import os
import secrets
import signal
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


def launch_line(width, height, fps):
    return ("( videotestsrc is-live=true ! video/x-raw,width=%d,height=%d,framerate=%d/1 "
            "! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=%d "
            "! rtph264pay name=pay0 pt=96 config-interval=1 )" % (width, height, fps, fps))


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
        self.timeout = 60
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
            gone = [sid for sid, rec in self._sessions.items() if now - rec[2] > self.timeout]
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
            event("rtcp mount=%s pt=%d ssrc=%08x" % (mount, first[0], first[1]))

    def on_prepared(m):
        for i in range(m.n_streams()):
            sess = m.get_stream(i).get_rtpsession()
            if sess is not None:
                sess.connect("on-receiving-rtcp", on_rtcp)

    media.connect("prepared", on_prepared)


def start_rtsp(a):
    server = GstRtspServer.RTSPServer()
    server.set_address(a.bind)
    server.set_service(str(a.rtsp_port))
    mounts = server.get_mount_points()
    for mount in ("/stream1", "/strict", "/open"):
        factory = GstRtspServer.RTSPMediaFactory()
        factory.set_launch(launch_line(a.width, a.height, a.fps))
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
    # do expire such sessions when no keepalive request comes, and a proxy in the path must
    # carry those requests: so this camera keeps its own watch. A session is alive while RTSP
    # requests carrying its id (GET_PARAMETER, OPTIONS, ...) arrive within the timeout; RTCP does
    # not count here. An expired session is removed and its connection closed.
    watch = sessions_watch
    watch.timeout = a.session_timeout

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
        raise OSError("cannot listen on %s:%d (RTSP)" % (a.bind, a.rtsp_port))
    return server


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
        if n:
            self.rfile.read(n)
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
    ap.add_argument("--snapshot", help="JPEG served at /snapshot.jpg and /open.jpg")
    ap.add_argument("--width", type=int, default=320)
    ap.add_argument("--height", type=int, default=240)
    ap.add_argument("--fps", type=int, default=25)
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
    event("ready rtsp=%d http=%d" % (server.get_bound_port(), httpd.server_address[1]))
    loop.run()

    httpd.shutdown()
    httpd.server_close()
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
