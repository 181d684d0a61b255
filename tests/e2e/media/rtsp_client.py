#!/usr/bin/python3
"""A small RTSP client for the media tests: Digest auth, RTP over the RTSP connection
(interleaved), keepalives, RTCP receiver reports, and HTTP CONNECT to reach a camera through the
gateway's CONNECT form (which ffmpeg cannot use for RTSP).

    sock = connect_tcp("127.0.0.1", 8554)                       # or
    sock = connect_via_proxy("127.0.0.1", 8554, "cam-1:rtsp")   # CONNECT cam-1:rtsp
    c = RtspClient(sock, user="admin", password="secret")
    stats = c.stream("rtsp://cam-1/stream1", seconds=13, keepalive=3.0, rtcp_interval=1.0)

`stream` runs OPTIONS, DESCRIBE, SETUP (RTP/AVP/TCP interleaved 0-1), PLAY, then reads for
`seconds`, sending GET_PARAMETER keepalives and RTCP RRs (own SSRC) on channel 1 when asked,
and ends with TEARDOWN. It returns what happened (packets, frames, keepalive answers, whether
and when the camera ended the stream). Standard library only.
"""

import hashlib
import os
import re
import secrets
import socket
import struct
import time
import urllib.parse


class RtspError(Exception):
    def __init__(self, msg, status=None, head=""):
        super().__init__(msg)
        self.status = status
        self.head = head


def connect_tcp(host, port, timeout=10.0):
    s = socket.create_connection((host, port), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def connect_via_proxy(proxy_host, proxy_port, target, timeout=10.0, headers=None):
    """Open a tunnel with `CONNECT target HTTP/1.1`; returns the socket after a 200.

    Raises RtspError(status=...) with the proxy's answer on anything else."""
    s = connect_tcp(proxy_host, proxy_port, timeout)
    lines = ["CONNECT %s HTTP/1.1" % target, "Host: %s" % target]
    lines += ["%s: %s" % kv for kv in (headers or {}).items()]
    s.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
    buf = b""
    while b"\r\n\r\n" not in buf:
        d = s.recv(4096)
        if not d:
            break
        buf += d
    head, _, rest = buf.partition(b"\r\n\r\n")
    m = re.match(rb"HTTP/1\.[01] (\d{3})", head)
    status = int(m.group(1)) if m else None
    if status != 200:
        s.close()
        raise RtspError("CONNECT %s: %r" % (target, head[:200]), status, head.decode("latin-1"))
    if rest:
        # Nothing may follow the 200 before we speak; keep it anyway for the RTSP reader.
        s = _Prefixed(s, rest)
    return s


class _Prefixed:
    """A socket with bytes already read in front of it."""

    def __init__(self, sock, prefix):
        self._s, self._p = sock, prefix

    def recv(self, n):
        if self._p:
            d, self._p = self._p[:n], self._p[n:]
            return d
        return self._s.recv(n)

    def __getattr__(self, name):
        return getattr(self._s, name)


def _md5(s):
    return hashlib.md5(s.encode("utf-8")).hexdigest()


def _params(rest):
    out = {}
    for m in re.finditer(r'(\w+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))', rest):
        out[m.group(1).lower()] = m.group(2) if m.group(2) is not None else m.group(3)
    return out


class Response:
    def __init__(self, status, reason, headers, body, head):
        self.status, self.reason, self.headers, self.body, self.head = (
            status, reason, headers, body, head)

    def header(self, name, default=None):
        return self.headers.get(name.lower(), default)


class RtspClient:
    def __init__(self, sock, user=None, password=None, user_agent="camtunnel-media-test"):
        self.sock = sock
        self.user, self.password = user, password
        self.user_agent = user_agent
        self.cseq = 0
        self.buf = b""
        self.challenge = None   # params of the last Digest challenge
        self.nc = 0
        self.session = None
        self.session_timeout = None
        self.eof = False
        # Interleaved frames seen while waiting for responses or reading.
        self.packets = {}       # channel -> count
        self.frames = 0         # RTP packets with the marker bit (one per video frame)
        self.rtp_bytes = 0
        self.camera_ssrc = None
        self.max_seq = None
        self.first_rtp_at = None
        self.last_rtp_at = None
        self.requests = []      # (method, url, status)

    # ---------------------------------------------------------------- wire

    def _fill(self, timeout):
        self.sock.settimeout(timeout)
        try:
            d = self.sock.recv(65536)
        except socket.timeout:
            return False
        except OSError:
            d = b""
        if not d:
            self.eof = True
            return False
        self.buf += d
        return True

    def _take_frame_or_head(self):
        """Consumes one interleaved frame (returns ('frame', ch, data)) or one response
        (returns ('response', Response)) from self.buf; None if incomplete."""
        if not self.buf:
            return None
        if self.buf[0:1] == b"$":
            if len(self.buf) < 4:
                return None
            ch, n = self.buf[1], struct.unpack("!H", self.buf[2:4])[0]
            if len(self.buf) < 4 + n:
                return None
            data = self.buf[4:4 + n]
            self.buf = self.buf[4 + n:]
            return ("frame", ch, data)
        # Skip stray CR/LF between messages.
        stripped = self.buf.lstrip(b"\r\n")
        if stripped is not self.buf and len(stripped) != len(self.buf):
            self.buf = stripped
            return self._take_frame_or_head()
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            return None
        head = self.buf[:end].decode("latin-1")
        lines = head.split("\r\n")
        headers = {}
        for ln in lines[1:]:
            k, _, v = ln.partition(":")
            headers[k.strip().lower()] = v.strip()
        n = int(headers.get("content-length", "0") or 0)
        if len(self.buf) < end + 4 + n:
            return None
        body = self.buf[end + 4:end + 4 + n]
        self.buf = self.buf[end + 4 + n:]
        m = re.match(r"(RTSP|HTTP)/\d\.\d (\d{3}) ?(.*)", lines[0])
        if not m:
            # A request from the server (e.g. ANNOUNCE/GET_PARAMETER): not expected here.
            return ("request", lines[0], headers)
        return ("response", Response(int(m.group(2)), m.group(3), headers, body, head))

    def _on_frame(self, ch, data):
        self.packets[ch] = self.packets.get(ch, 0) + 1
        if ch % 2 == 0 and len(data) >= 12:
            now = time.monotonic()
            self.first_rtp_at = self.first_rtp_at or now
            self.last_rtp_at = now
            self.rtp_bytes += len(data)
            if data[1] & 0x80:
                self.frames += 1
            seq = struct.unpack("!H", data[2:4])[0]
            self.camera_ssrc = struct.unpack("!I", data[8:12])[0]
            self.max_seq = seq

    def pump(self, until, want_response=False):
        """Reads frames until monotonic time `until` (or EOF); with want_response, returns the
        first response that arrives."""
        while True:
            item = self._take_frame_or_head()
            while item is not None:
                if item[0] == "frame":
                    self._on_frame(item[1], item[2])
                elif item[0] == "response" and want_response:
                    return item[1]
                item = self._take_frame_or_head()
            left = until - time.monotonic()
            if left <= 0 or self.eof:
                return None
            self._fill(min(left, 0.5))

    def send_request(self, method, url, headers=None, body=b""):
        self.cseq += 1
        lines = ["%s %s RTSP/1.0" % (method, url), "CSeq: %d" % self.cseq,
                 "User-Agent: %s" % self.user_agent]
        if self.session:
            lines.append("Session: %s" % self.session)
        auth = self._authorization(method, url)
        if auth:
            lines.append("Authorization: %s" % auth)
        lines += ["%s: %s" % kv for kv in (headers or {}).items()]
        if body:
            lines.append("Content-Length: %d" % len(body))
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + body)

    def request(self, method, url, headers=None, body=b"", timeout=10.0):
        """Sends a request and waits for its response (retrying once after a Digest
        challenge). Raises RtspError on EOF/timeout; returns the Response otherwise."""
        for attempt in (0, 1):
            self.send_request(method, url, headers, body)
            r = self.pump(time.monotonic() + timeout, want_response=True)
            if r is None:
                raise RtspError("%s %s: no response (%s)" % (
                    method, url, "connection closed" if self.eof else "timeout"))
            self.requests.append((method, url, r.status))
            if (r.status == 401 and attempt == 0 and self.user is not None
                    and "digest" in r.header("www-authenticate", "").lower()):
                self.challenge = _params(r.header("www-authenticate").partition(" ")[2])
                self.nc = 0
                continue
            return r
        return r

    def _authorization(self, method, uri):
        if not self.challenge or self.user is None:
            return None
        c = self.challenge
        ha1 = _md5("%s:%s:%s" % (self.user, c.get("realm", ""), self.password))
        ha2 = _md5("%s:%s" % (method, uri))
        parts = ['username="%s"' % self.user, 'realm="%s"' % c.get("realm", ""),
                 'nonce="%s"' % c.get("nonce", ""), 'uri="%s"' % uri]
        if "auth" in [q.strip() for q in c.get("qop", "").split(",")]:
            self.nc += 1
            nc, cnonce = "%08x" % self.nc, secrets.token_hex(8)
            resp = _md5("%s:%s:%s:%s:auth:%s" % (ha1, c["nonce"], nc, cnonce, ha2))
            parts += ["qop=auth", "nc=%s" % nc, 'cnonce="%s"' % cnonce]
        else:
            resp = _md5("%s:%s:%s" % (ha1, c.get("nonce", ""), ha2))
        parts.append('response="%s"' % resp)
        if "opaque" in c:
            parts.append('opaque="%s"' % c["opaque"])
        return "Digest " + ", ".join(parts)

    # ---------------------------------------------------------------- RTCP

    def rtcp_rr(self, ssrc):
        """A compound RTCP packet: RR with one report block (about the camera's SSRC) + SDES
        CNAME."""
        if self.camera_ssrc is not None:
            block = struct.pack("!IIIIII", self.camera_ssrc, 0, (self.max_seq or 0), 0, 0, 0)
            rr = struct.pack("!BBHI", 0x81, 201, 7, ssrc) + block
        else:
            rr = struct.pack("!BBHI", 0x80, 201, 1, ssrc)
        cname = b"media-test@127.0.0.1"
        chunk = struct.pack("!I", ssrc) + bytes([1, len(cname)]) + cname + b"\x00"
        chunk += b"\x00" * (-len(chunk) % 4)
        sdes = struct.pack("!BBH", 0x81, 202, len(chunk) // 4) + chunk
        return rr + sdes

    def send_interleaved(self, channel, data):
        self.sock.sendall(struct.pack("!BBH", 0x24, channel, len(data)) + data)

    # ---------------------------------------------------------------- a whole session

    def stream(self, url, seconds, keepalive=None, keepalive_method="GET_PARAMETER",
               rtcp_interval=None, ssrc=None, use_content_base=True, teardown=True, stop=None):
        """Plays `url` for `seconds` (RTP over TCP). keepalive: seconds between keepalive
        requests (None: none); use_content_base=False addresses every request to `url` (and
        `url/<control>`) instead of the camera's Content-Base, as a simple client would;
        `stop` (a threading.Event) ends the play early when set."""
        out = {"url": url, "requests": self.requests, "keepalive_status": [],
               "rtcp_sent": 0, "ssrc": ssrc}
        r = self.request("OPTIONS", url)
        if r.status != 200:
            raise RtspError("OPTIONS %s: %d %s" % (url, r.status, r.reason), r.status, r.head)
        r = self.request("DESCRIBE", url, {"Accept": "application/sdp"})
        if r.status != 200:
            raise RtspError("DESCRIBE %s: %d %s" % (url, r.status, r.reason), r.status, r.head)
        sdp = r.body.decode("latin-1")
        base = r.header("content-base") if use_content_base else None
        base = base or (url if url.endswith("/") else url + "/")
        out["content_base"] = r.header("content-base")
        control = None
        in_video = False
        for ln in sdp.splitlines():
            if ln.startswith("m="):
                in_video = ln.startswith("m=video")
            elif in_video and ln.startswith("a=control:"):
                control = ln[len("a=control:"):].strip()
        if control is None:
            raise RtspError("no video control in SDP:\n" + sdp)
        setup_url = control if control.startswith("rtsp://") else urllib.parse.urljoin(
            base, control)
        r = self.request("SETUP", setup_url,
                         {"Transport": "RTP/AVP/TCP;unicast;interleaved=0-1"})
        if r.status != 200:
            raise RtspError("SETUP %s: %d %s" % (setup_url, r.status, r.reason), r.status,
                            r.head)
        sess = r.header("session", "")
        self.session = sess.split(";", 1)[0].strip()
        m = re.search(r"timeout=(\d+)", sess)
        self.session_timeout = int(m.group(1)) if m else None
        out["session"], out["session_timeout"] = self.session, self.session_timeout
        play_url = base
        r = self.request("PLAY", play_url, {"Range": "npt=0.000-"})
        if r.status != 200:
            raise RtspError("PLAY %s: %d %s" % (play_url, r.status, r.reason), r.status, r.head)
        start = time.monotonic()
        end = start + seconds
        next_ka = start + keepalive if keepalive else None
        next_rtcp = start + rtcp_interval if rtcp_interval else None
        frames0 = self.frames
        while not self.eof:
            now = time.monotonic()
            if now >= end or (stop is not None and stop.is_set()):
                break
            if next_ka is not None and now >= next_ka:
                self.send_request(keepalive_method, play_url)
                self.requests.append((keepalive_method, play_url, None))
                next_ka += keepalive
                # The answer is read by the loop below; remember how many we expect.
                out["keepalive_status"].append(None)
            if next_rtcp is not None and now >= next_rtcp:
                if ssrc is not None:
                    self.send_interleaved(1, self.rtcp_rr(ssrc))
                    out["rtcp_sent"] += 1
                next_rtcp += rtcp_interval
            wake = min(x for x in (end, next_ka, next_rtcp) if x is not None)
            item = None
            while True:
                item = self._take_frame_or_head()
                if item is None:
                    break
                if item[0] == "frame":
                    self._on_frame(item[1], item[2])
                elif item[0] == "response":
                    for i, st in enumerate(out["keepalive_status"]):
                        if st is None:
                            out["keepalive_status"][i] = item[1].status
                            break
            left = wake - time.monotonic()
            if left > 0:
                self._fill(min(left, 0.5))
        stopped = time.monotonic()
        out["played_seconds"] = stopped - start
        out["ended_by_camera"] = self.eof
        out["last_rtp_after"] = (self.last_rtp_at - start) if self.last_rtp_at else None
        out["frames"] = self.frames - frames0
        out["packets"] = dict(self.packets)
        out["rtp_bytes"] = self.rtp_bytes
        if teardown and not self.eof:
            try:
                r = self.request("TEARDOWN", play_url, timeout=5.0)
                out["teardown_status"] = r.status
            except (RtspError, OSError) as e:
                out["teardown_status"] = repr(e)
        return out

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


if __name__ == "__main__":
    import argparse
    import json
    ap = argparse.ArgumentParser(description="play an RTSP URL for a while (RTP over TCP)")
    ap.add_argument("url")
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--user")
    ap.add_argument("--password")
    ap.add_argument("--connect", metavar="PROXY_HOST:PORT:TARGET",
                    help="reach the camera through CONNECT TARGET at PROXY (e.g. "
                         "127.0.0.1:8554:cam-1:rtsp)")
    ap.add_argument("--keepalive", type=float)
    ap.add_argument("--rtcp", type=float)
    ap.add_argument("--no-content-base", action="store_true")
    a = ap.parse_args()
    if a.connect:
        ph, pp, target = a.connect.split(":", 2)
        sock = connect_via_proxy(ph, int(pp), target)
    else:
        u = urllib.parse.urlsplit(a.url)
        sock = connect_tcp(u.hostname, u.port or 554)
    c = RtspClient(sock, a.user, a.password)
    res = c.stream(a.url, a.seconds, keepalive=a.keepalive, rtcp_interval=a.rtcp,
                   ssrc=int.from_bytes(os.urandom(4), "big") if a.rtcp else None,
                   use_content_base=not a.no_content_base)
    print(json.dumps(res, indent=1, default=str))
