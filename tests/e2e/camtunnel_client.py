#!/usr/bin/python3
"""Independent implementation of the camtunnel/1 wire protocol (agent side).

Written from proto/PROTOCOL.md alone, without looking at the C++ sources in proto/, so that a
misreading made on one side cannot hide behind the same misreading on the other. Uses only the
Python standard library and Debian's python3-openssl (pyOpenSSL, for the TLS exporter).

Library contents (all plain functions/classes, importable by unittest-based tests):
  - identifiers: check_agent_id, parse_key_ref, check_tunnel_id, parse_service, b64url_*;
  - crypto: lp, derive_agent_key, gateway_proof, agent_proof, data_proof, session_key, frame_mac;
  - frames: encode_field, encode_frame, decode_fields, parse_frame, seal_frame, open_frame;
  - connections: Stream (plain or TLS, non-blocking with deadlines), connect_stream,
    connect_control (upgrade + gateway-proof check + HELLO/WELCOME), ControlSession,
    open_data_connection, relay, Agent (serves OPENs by relaying to configured local services).

CLI (see `--help`):
  camtunnel_client.py vectors > proto/test_vectors.json
  camtunnel_client.py derive-key --streamer-key-hex HEX --agent-id cam-42 --key-ref k1.1767225600
  camtunnel_client.py agent --gateway HOST:PORT --tls --ca cert.pem --agent-id cam-42 \
      --key-ref k1.1767225600 --key-hex HEX --service rtsp=127.0.0.1:8555
  camtunnel_client.py handshake-only --gateway HOST:PORT --plain ...   (one session, JSON report)
  camtunnel_client.py selftest       (checks vectors and the plumbing against an in-process stub)
"""

import argparse
import base64
import errno as errno_mod
import hashlib
import hmac
import ipaddress
import json
import os
import queue
import random
import re
import select
import socket
import struct
import sys
import threading
import time

try:
    from OpenSSL import SSL
    from OpenSSL._util import lib as _ssl_lib
except ImportError:  # plain mode and the crypto helpers still work
    SSL = None
    _ssl_lib = None

# --------------------------------------------------------------------------------------------
# Constants (PROTOCOL.md sections 1-7)

PROTOCOL = "camtunnel/1"
CONTROL_PATH = "/camtunnel/v1/control"
DATA_PATH = "/camtunnel/v1/data"

LABEL_AGENT_KEY = b"camtunnel/1 agent-key"
LABEL_GATEWAY_PROOF = b"camtunnel/1 gateway-proof"
LABEL_AGENT_PROOF = b"camtunnel/1 agent-proof"
LABEL_DATA_PROOF = b"camtunnel/1 data-proof"
LABEL_SESSION_KEY = b"camtunnel/1 session-key"
LABEL_FRAME_MAC = b"camtunnel/1 frame-mac"

EXPORTER_LABEL = b"EXPORTER-camtunnel"
EXPORTER_LEN = 32
NONCE_LEN = 16
PROOF_LEN = 32
MAC_LEN = 16

MAX_FRAME_PAYLOAD = 16384
MAX_HEAD_BYTES = 8192
MAX_HEAD_HEADERS = 64

TRANSPORT_TLS = "tls"
TRANSPORT_PLAIN = "plain"
DIR_A2G = "agent-to-gateway"
DIR_G2A = "gateway-to-agent"

# Frame types (section 5)
HELLO, WELCOME, PING, PONG, STATUS, OPEN, OPEN_FAILED, GOAWAY, UNSUPPORTED, ERROR = range(1, 11)
SPARE, OPENED = 11, 12   # section 8.1
ASSIGN, SWITCH, DEACTIVATE, RESTART = 16, 17, 18, 19
FRAME_NAMES = {
    HELLO: "HELLO", WELCOME: "WELCOME", PING: "PING", PONG: "PONG", STATUS: "STATUS",
    OPEN: "OPEN", OPEN_FAILED: "OPEN_FAILED", GOAWAY: "GOAWAY", UNSUPPORTED: "UNSUPPORTED",
    ERROR: "ERROR", SPARE: "SPARE", OPENED: "OPENED", ASSIGN: "ASSIGN", SWITCH: "SWITCH", DEACTIVATE: "DEACTIVATE",
    RESTART: "RESTART",
}

# Field tags (section 5)
T_PROOF = 1
T_CAPABILITIES = 2
T_VERSION = 3
T_SERVICE = 4
T_HEARTBEAT_MS = 5
T_SERVER_TIME_MS = 6
T_RECONNECT_WINDOW_MS = 7
T_TUNNEL_ID = 8
T_SERVICE_NAME = 9
T_NONCE = 10
T_ERRNO = 11
T_TEXT = 12
T_RECONNECT_AFTER_MS = 13
T_SEQUENCE = 14
T_FRAME_TYPE = 15
T_ERROR_CODE = 16
T_REDIRECT = 17
T_MAC = 255

# tag -> (name, kind, min_len, max_len, repeatable); kind: raw, uN, text
TAG_SPECS = {
    T_PROOF: ("proof", "raw", 32, 32, False),
    T_CAPABILITIES: ("capabilities", "u", 4, 4, False),
    T_VERSION: ("version", "text", 0, 64, False),
    T_SERVICE: ("service", "text", 0, 0xFFFF, True),
    T_HEARTBEAT_MS: ("heartbeat_ms", "u", 4, 4, False),
    T_SERVER_TIME_MS: ("server_time_ms", "u", 8, 8, False),
    T_RECONNECT_WINDOW_MS: ("reconnect_window_ms", "u", 4, 4, False),
    T_TUNNEL_ID: ("tunnel_id", "text", 16, 16, False),
    T_SERVICE_NAME: ("service_name", "text", 1, 32, False),
    T_NONCE: ("nonce", "raw", 16, 16, False),
    T_ERRNO: ("errno", "u", 4, 4, False),
    T_TEXT: ("text", "text", 0, 0xFFFF, False),
    T_RECONNECT_AFTER_MS: ("reconnect_after_ms", "u", 4, 4, False),
    T_SEQUENCE: ("sequence", "u", 8, 8, False),
    T_FRAME_TYPE: ("frame_type", "u", 1, 1, False),
    T_ERROR_CODE: ("error_code", "u", 2, 2, False),
    T_REDIRECT: ("redirect", "text", 0, 0xFFFF, False),
    T_MAC: ("mac", "raw", 16, 16, False),
}
STATUS_TEXT_MAX = 4096

CAP_PLAIN_FRAME_MAC = 1 << 0
CAP_OPEN_FAILED_ERRNO = 1 << 1
CAP_SPARE_DATA = 1 << 2
CAP_SPARE_EARLY_DATA = 1 << 3   # section 8.1: first bytes may follow OPEN on a spare
OUR_CAPABILITIES = CAP_PLAIN_FRAME_MAC | CAP_OPEN_FAILED_ERRNO

E_BAD_PROOF, E_FRAME_TOO_LARGE, E_MALFORMED, E_BAD_MAC, E_UNEXPECTED, E_TIMEOUT, E_INTERNAL = \
    range(1, 8)
ERROR_NAMES = {1: "bad proof", 2: "frame too large", 3: "malformed frame", 4: "bad MAC",
               5: "unexpected frame", 6: "timeout", 7: "internal"}

DEFAULT_HEARTBEAT_MS = 5000
HANDSHAKE_TIMEOUT = 5.0
CLIENT_VERSION = "camtunnel-pyclient/1.0"


# --------------------------------------------------------------------------------------------
# Errors

class ProtocolError(Exception):
    """A violation of camtunnel/1 by the peer (or by a caller's input). `code` is an ERROR code."""

    def __init__(self, message, code=E_MALFORMED):
        super().__init__(message)
        self.code = code


class FrameTooLarge(ProtocolError):
    def __init__(self, message):
        super().__init__(message, E_FRAME_TOO_LARGE)


class BadMac(ProtocolError):
    def __init__(self, message):
        super().__init__(message, E_BAD_MAC)


class BadGatewayProof(ProtocolError):
    def __init__(self, message):
        super().__init__(message, E_BAD_PROOF)


class TLSHandshakeError(ConnectionError):
    """TLS handshake failure (certificate not trusted, wrong name, peer closed...)."""


class UpgradeRejected(Exception):
    """The gateway answered the upgrade with a non-101 status."""

    def __init__(self, status, reason, headers, body=b""):
        super().__init__("upgrade rejected: %d %s" % (status, reason))
        self.status = status
        self.reason = reason
        self.headers = headers
        self.body = body


class SessionError(Exception):
    """The gateway sent ERROR (or GOAWAY) instead of WELCOME."""

    def __init__(self, message, frame=None):
        super().__init__(message)
        self.frame = frame


# --------------------------------------------------------------------------------------------
# Identifiers and encodings (section 1)

_AGENT_ID_RE = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?", re.ASCII)
_KEY_ID_RE = re.compile(r"[A-Za-z0-9_-]{1,32}", re.ASCII)
_EXPIRY_RE = re.compile(r"0|[1-9][0-9]{0,19}", re.ASCII)
_TUNNEL_ID_RE = re.compile(r"[0-9a-f]{16}", re.ASCII)
_SERVICE_NAME_RE = re.compile(r"[a-z0-9-]{1,32}", re.ASCII)
_HOSTNAME_RE = re.compile(
    r"(?=.{1,253}\Z)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*", re.ASCII)
_B64URL_RE = re.compile(r"[A-Za-z0-9_-]*", re.ASCII)


def is_agent_id(s):
    return isinstance(s, str) and _AGENT_ID_RE.fullmatch(s) is not None


def check_agent_id(s):
    if not is_agent_id(s):
        raise ProtocolError("non-canonical agent id %r" % (s,))
    return s


def is_key_id(s):
    return isinstance(s, str) and _KEY_ID_RE.fullmatch(s) is not None


def parse_key_ref(ref):
    """'k1.1767225600' -> ('k1', '1767225600', 1767225600). Raises ProtocolError."""
    if not isinstance(ref, str) or ref.count(".") != 1:
        raise ProtocolError("bad key reference %r" % (ref,))
    key_id, expiry = ref.split(".")
    if not is_key_id(key_id):
        raise ProtocolError("bad key id %r" % (key_id,))
    if _EXPIRY_RE.fullmatch(expiry) is None or int(expiry) > 2 ** 64 - 1:
        raise ProtocolError("bad expiry %r" % (expiry,))
    return key_id, expiry, int(expiry)


def is_tunnel_id(s):
    return isinstance(s, str) and _TUNNEL_ID_RE.fullmatch(s) is not None


def check_tunnel_id(s):
    if not is_tunnel_id(s):
        raise ProtocolError("bad tunnel id %r" % (s,))
    return s


def tunnel_id_shard(s):
    return int(check_tunnel_id(s), 16) >> 56


def is_service_name(s):
    return isinstance(s, str) and _SERVICE_NAME_RE.fullmatch(s) is not None


def parse_service(entry):
    """'rtsp=127.0.0.1:554' -> ('rtsp', '127.0.0.1', 554). Host: name, IPv4 or [IPv6]."""
    if not isinstance(entry, str) or "=" not in entry:
        raise ProtocolError("bad service entry %r" % (entry,))
    name, rest = entry.split("=", 1)
    if not is_service_name(name):
        raise ProtocolError("bad service name %r" % (name,))
    host, sep, port = rest.rpartition(":")
    if not sep or re.fullmatch(r"[1-9][0-9]{0,4}", port, re.ASCII) is None or int(port) > 65535:
        raise ProtocolError("bad service port in %r" % (entry,))
    if host.startswith("["):
        if not host.endswith("]"):
            raise ProtocolError("bad IPv6 host in %r" % (entry,))
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            raise ProtocolError("bad IPv6 host in %r" % (entry,))
    else:
        looks_numeric = re.fullmatch(r"[0-9.]+", host, re.ASCII) is not None
        if looks_numeric:
            try:
                ipaddress.IPv4Address(host)
            except ValueError:
                raise ProtocolError("bad IPv4 host in %r" % (entry,))
        elif _HOSTNAME_RE.fullmatch(host) is None:
            raise ProtocolError("bad host name in %r" % (entry,))
    return name, host, int(port)


def format_service(name, host, port):
    if ":" in host and not host.startswith("["):
        host = "[%s]" % host
    return "%s=%s:%d" % (name, host, port)


def b64url_encode(data):
    """Unpadded base64url (RFC 4648 section 5)."""
    return base64.urlsafe_b64encode(bytes(data)).rstrip(b"=").decode("ascii")


def b64url_decode(text, expect_len=None):
    """Strict unpadded base64url: alphabet only, no padding, canonical (unused bits zero)."""
    if not isinstance(text, str) or _B64URL_RE.fullmatch(text) is None or len(text) % 4 == 1:
        raise ProtocolError("bad base64url %r" % (text,))
    data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if b64url_encode(data) != text:
        raise ProtocolError("non-canonical base64url %r" % (text,))
    if expect_len is not None and len(data) != expect_len:
        raise ProtocolError("base64url %r decodes to %d bytes, want %d"
                            % (text, len(data), expect_len))
    return data


def _b(x):
    if isinstance(x, str):
        return x.encode("utf-8")
    return bytes(x)


def lp(x):
    """u16 big-endian length, then the bytes (strings as UTF-8)."""
    x = _b(x)
    if len(x) > 0xFFFF:
        raise ValueError("LP field longer than 65535 bytes")
    return struct.pack(">H", len(x)) + x


def u8(n):
    return struct.pack(">B", n)


def u16(n):
    return struct.pack(">H", n)


def u32(n):
    return struct.pack(">I", n)


def u64(n):
    return struct.pack(">Q", n)


# --------------------------------------------------------------------------------------------
# Keys and proofs (sections 2, 3, 7)

def _hmac(key, *parts):
    return hmac.new(bytes(key), b"".join(parts), hashlib.sha256).digest()


def _check_transport(transport, exporter):
    exporter = bytes(exporter)
    if transport == TRANSPORT_TLS:
        if len(exporter) != EXPORTER_LEN:
            raise ValueError("tls transport needs a 32-byte exporter")
    elif transport == TRANSPORT_PLAIN:
        if len(exporter) != 0:
            raise ValueError("plain transport has an empty exporter")
    else:
        raise ValueError("transport must be 'tls' or 'plain'")
    return exporter


def _check_nonce(n, what="nonce"):
    n = bytes(n)
    if len(n) != NONCE_LEN:
        raise ValueError("%s must be 16 bytes" % what)
    return n


def derive_agent_key(streamer_key, agent_id, key_ref):
    """K = HMAC(streamer_key, LP(label) || LP(agent_id) || LP(key_id) || LP(expiry))."""
    check_agent_id(agent_id)
    key_id, expiry, _ = parse_key_ref(key_ref)
    return _hmac(streamer_key, lp(LABEL_AGENT_KEY), lp(agent_id), lp(key_id), lp(expiry))


def _control_proof(label, agent_key, agent_id, key_ref, agent_nonce, gateway_nonce, transport,
                   exporter):
    check_agent_id(agent_id)
    key_id, expiry, _ = parse_key_ref(key_ref)
    exporter = _check_transport(transport, exporter)
    return _hmac(agent_key, lp(label), lp(agent_id), lp(key_id), lp(expiry),
                 lp(_check_nonce(agent_nonce, "agent nonce")),
                 lp(_check_nonce(gateway_nonce, "gateway nonce")), lp(transport), lp(exporter))


def gateway_proof(agent_key, agent_id, key_ref, agent_nonce, gateway_nonce, transport, exporter):
    return _control_proof(LABEL_GATEWAY_PROOF, agent_key, agent_id, key_ref, agent_nonce,
                          gateway_nonce, transport, exporter)


def agent_proof(agent_key, agent_id, key_ref, agent_nonce, gateway_nonce, transport, exporter):
    return _control_proof(LABEL_AGENT_PROOF, agent_key, agent_id, key_ref, agent_nonce,
                          gateway_nonce, transport, exporter)


def data_proof(agent_key, agent_id, key_ref, tunnel_id, open_nonce, transport, exporter):
    check_agent_id(agent_id)
    key_id, expiry, _ = parse_key_ref(key_ref)
    check_tunnel_id(tunnel_id)
    exporter = _check_transport(transport, exporter)
    return _hmac(agent_key, lp(LABEL_DATA_PROOF), lp(agent_id), lp(key_id), lp(expiry),
                 lp(tunnel_id), lp(_check_nonce(open_nonce, "open nonce")), lp(transport),
                 lp(exporter))


def session_key(agent_key, agent_nonce, gateway_nonce):
    return _hmac(agent_key, lp(LABEL_SESSION_KEY), lp(_check_nonce(agent_nonce, "agent nonce")),
                 lp(_check_nonce(gateway_nonce, "gateway nonce")))


def frame_mac(skey, direction, sequence, ftype, payload_without_mac):
    if direction not in (DIR_A2G, DIR_G2A):
        raise ValueError("bad direction %r" % (direction,))
    return _hmac(skey, lp(LABEL_FRAME_MAC), lp(direction), lp(u64(sequence)), lp(u8(ftype)),
                 lp(payload_without_mac))[:MAC_LEN]


# --------------------------------------------------------------------------------------------
# Frames (section 5)

class Frame:
    """A decoded frame: type, ordered (tag, value) list and the raw payload."""

    def __init__(self, ftype, fields, payload=None):
        self.type = ftype
        self.fields = [(t, bytes(v)) for t, v in fields]
        self.payload = payload if payload is not None else encode_fields(self.fields)

    @property
    def name(self):
        return FRAME_NAMES.get(self.type, "type-%d" % self.type)

    def all(self, tag):
        return [v for t, v in self.fields if t == tag]

    def get(self, tag, default=None):
        for t, v in self.fields:
            if t == tag:
                return v
        return default

    def has(self, tag):
        return any(t == tag for t, _ in self.fields)

    def uint(self, tag, default=None):
        v = self.get(tag)
        return default if v is None else int.from_bytes(v, "big")

    def text(self, tag, default=None):
        v = self.get(tag)
        return default if v is None else v.decode("utf-8")

    def describe(self):
        out = {"type": self.name}
        for t, v in self.fields:
            spec = TAG_SPECS.get(t)
            if spec is None:
                out["tag-%d" % t] = v.hex()
                continue
            name, kind = spec[0], spec[1]
            val = int.from_bytes(v, "big") if kind == "u" else (
                v.decode("utf-8", "replace") if kind == "text" else v.hex())
            if spec[4]:
                out.setdefault(name, []).append(val)
            else:
                out[name] = val
        return out

    def __repr__(self):
        return "Frame(%s)" % json.dumps(self.describe())


def encode_field(tag, value):
    value = _b(value)
    if not 0 <= tag <= 255 or len(value) > 0xFFFF:
        raise ValueError("bad field")
    return u8(tag) + u16(len(value)) + value


def encode_fields(fields):
    return b"".join(encode_field(t, v) for t, v in fields)


def encode_frame(ftype, fields, allow_oversize=False):
    payload = encode_fields(fields)
    if len(payload) > MAX_FRAME_PAYLOAD and not allow_oversize:
        raise ValueError("frame payload %d > %d" % (len(payload), MAX_FRAME_PAYLOAD))
    if len(payload) > 0xFFFFFF:
        raise ValueError("frame payload does not fit u24")
    return u8(ftype) + len(payload).to_bytes(3, "big") + payload


def decode_fields(payload):
    """Split a payload into (tag, value) pairs; a field running past the end is malformed."""
    fields, pos, n = [], 0, len(payload)
    while pos < n:
        if pos + 3 > n:
            raise ProtocolError("truncated field header at offset %d" % pos)
        tag = payload[pos]
        ln = struct.unpack_from(">H", payload, pos + 1)[0]
        if pos + 3 + ln > n:
            raise ProtocolError("field tag %d runs past the payload end" % tag)
        fields.append((tag, bytes(payload[pos + 3:pos + 3 + ln])))
        pos += 3 + ln
    return fields


def check_fields(ftype, fields, mac_allowed=False):
    """Known tags: value length/UTF-8, repetition. Unknown tags are skipped (kept, unchecked)."""
    seen = set()
    for i, (tag, value) in enumerate(fields):
        spec = TAG_SPECS.get(tag)
        if spec is None:
            continue
        name, kind, lo, hi, repeatable = spec
        if tag == T_MAC:
            if not mac_allowed:
                raise ProtocolError("unexpected mac field")
            if i != len(fields) - 1:
                raise BadMac("mac field is not the last field")
        if tag in seen and not repeatable:
            raise ProtocolError("field %s repeated" % name)
        seen.add(tag)
        if not lo <= len(value) <= hi:
            raise ProtocolError("field %s has length %d" % (name, len(value)))
        if kind == "text":
            try:
                value.decode("utf-8")
            except UnicodeDecodeError:
                raise ProtocolError("field %s is not UTF-8" % name)
        if tag == T_TEXT and ftype == STATUS and len(value) > STATUS_TEXT_MAX:
            raise ProtocolError("STATUS text longer than %d" % STATUS_TEXT_MAX)


def parse_frame(buf):
    """Parse one frame from the start of buf. Returns (Frame, consumed) or None if incomplete.

    The length cap is checked from the 4-byte header alone, before waiting for (or allocating)
    the payload."""
    if len(buf) < 4:
        return None
    ftype = buf[0]
    length = int.from_bytes(buf[1:4], "big")
    if length > MAX_FRAME_PAYLOAD:
        raise FrameTooLarge("frame length %d > %d" % (length, MAX_FRAME_PAYLOAD))
    if len(buf) < 4 + length:
        return None
    payload = bytes(buf[4:4 + length])
    return Frame(ftype, decode_fields(payload), payload), 4 + length


def decode_frame(data, mac_allowed=False):
    """Decode exactly one complete frame (bytes) and check its known fields."""
    r = parse_frame(data)
    if r is None or r[1] != len(data):
        raise ProtocolError("not exactly one frame")
    check_fields(r[0].type, r[0].fields, mac_allowed)
    return r[0]


def seal_frame(skey, direction, sequence, ftype, fields):
    """Plain mode: encode the frame with a trailing mac field (section 7)."""
    payload = encode_fields(fields)
    mac = frame_mac(skey, direction, sequence, ftype, payload)
    return encode_frame(ftype, list(fields) + [(T_MAC, mac)])


def open_frame(skey, direction, sequence, frame):
    """Plain mode: verify and strip the trailing mac field. Returns a Frame without it."""
    if not frame.fields or frame.fields[-1][0] != T_MAC:
        raise BadMac("mac field missing or not last")
    if any(t == T_MAC for t, _ in frame.fields[:-1]):
        raise BadMac("mac field misplaced")
    mac = frame.fields[-1][1]
    if len(mac) != MAC_LEN:
        raise BadMac("mac field has length %d" % len(mac))
    body = frame.payload[:-(3 + MAC_LEN)]
    want = frame_mac(skey, direction, sequence, frame.type, body)
    if not hmac.compare_digest(want, mac):
        raise BadMac("wrong frame MAC (%s seq %d)" % (direction, sequence))
    return Frame(frame.type, frame.fields[:-1], body)


# Frame builders (agent -> gateway and a few gateway -> agent ones for tests)

def hello_fields(proof, services, capabilities=OUR_CAPABILITIES, version=CLIENT_VERSION):
    f = [(T_PROOF, proof), (T_CAPABILITIES, u32(capabilities)), (T_VERSION, version)]
    f += [(T_SERVICE, s) for s in services]
    return f


def welcome_fields(capabilities, heartbeat_ms, server_time_ms, reconnect_window_ms):
    return [(T_CAPABILITIES, u32(capabilities)), (T_HEARTBEAT_MS, u32(heartbeat_ms)),
            (T_SERVER_TIME_MS, u64(server_time_ms)),
            (T_RECONNECT_WINDOW_MS, u32(reconnect_window_ms))]


def open_fields(tunnel_id, service_name, nonce):
    return [(T_TUNNEL_ID, tunnel_id), (T_SERVICE_NAME, service_name), (T_NONCE, nonce)]


def open_failed_fields(tunnel_id, err, text):
    return [(T_TUNNEL_ID, tunnel_id), (T_ERRNO, u32(err)), (T_TEXT, text)]


def error_fields(code, text=None):
    return [(T_ERROR_CODE, u16(code)), (T_TEXT, text if text is not None else
                                        ERROR_NAMES.get(code, "error"))]


# --------------------------------------------------------------------------------------------
# Streams: a socket, optionally with pyOpenSSL TLS, non-blocking underneath, with deadlines

def _deadline(timeout):
    return None if timeout is None else time.monotonic() + timeout


def _remaining(deadline):
    if deadline is None:
        return None
    r = deadline - time.monotonic()
    if r <= 0:
        raise TimeoutError("deadline passed")
    return r


class Stream:
    """Bytes over a TCP socket, plain or TLS (pyOpenSSL). `rbuf` holds bytes read ahead."""

    def __init__(self, sock, tls=None, peer=None):
        self.sock = sock
        self.tls = tls
        self.peer = peer
        self.rbuf = bytearray()
        self.rd_wants = "r"     # what the last would-block read waited for
        self.wr_wants = "w"     # what the last would-block write waited for
        self.truncated = False  # TLS EOF without close_notify
        self.write_shut = False
        self.closed = False
        sock.setblocking(False)

    @property
    def transport(self):
        return TRANSPORT_TLS if self.tls is not None else TRANSPORT_PLAIN

    def fileno(self):
        return self.sock.fileno()

    def exporter(self):
        if self.tls is None:
            return b""
        return self.tls.export_keying_material(EXPORTER_LABEL, EXPORTER_LEN, None)

    def tls_version(self):
        return self.tls.get_protocol_version_name() if self.tls is not None else None

    def pending(self):
        n = len(self.rbuf)
        if self.tls is not None and not self.closed:
            n += self.tls.pending()
        return n

    # -- non-blocking primitives: return None / 0 when they would block
    def nb_recv(self, n=65536):
        if self.rbuf:
            out = bytes(self.rbuf[:n])
            del self.rbuf[:n]
            return out
        if self.tls is None:
            try:
                return self.sock.recv(n)
            except (BlockingIOError, InterruptedError):
                self.rd_wants = "r"
                return None
        try:
            return self.tls.recv(n)
        except SSL.WantReadError:
            self.rd_wants = "r"
            return None
        except SSL.WantWriteError:
            self.rd_wants = "w"
            return None
        except SSL.ZeroReturnError:
            return b""
        except SSL.SysCallError as e:
            if e.args and e.args[0] == -1:
                self.truncated = True
                return b""
            if e.args and e.args[0] in (errno_mod.ECONNRESET, errno_mod.EPIPE):
                raise ConnectionResetError(e.args[0], "connection reset")
            raise

    def nb_send(self, data):
        if not data:
            return 0
        if self.tls is None:
            try:
                return self.sock.send(data)
            except (BlockingIOError, InterruptedError):
                self.wr_wants = "w"
                return 0
        try:
            return self.tls.send(data)
        except SSL.WantWriteError:
            self.wr_wants = "w"
            return 0
        except SSL.WantReadError:
            self.wr_wants = "r"
            return 0
        except SSL.SysCallError as e:
            code = e.args[0] if e.args else -1
            raise ConnectionResetError(code, "send failed: %s" % (e,))

    def _block(self, want, deadline):
        r = _remaining(deadline)
        rl = [self.sock] if want == "r" else []
        wl = [self.sock] if want == "w" else []
        got = select.select(rl, wl, [], r)
        if got == ([], [], []) and deadline is not None and time.monotonic() >= deadline:
            raise TimeoutError("deadline passed")

    # -- blocking (deadline-bounded) operations
    def recv(self, n=65536, deadline=None):
        """Some bytes, or b'' at EOF. Raises TimeoutError at the deadline."""
        while True:
            d = self.nb_recv(n)
            if d is not None:
                return d
            self._block(self.rd_wants, deadline)

    def sendall(self, data, deadline=None):
        data = memoryview(bytes(data))
        while data:
            k = self.nb_send(data[:65536].tobytes() if self.tls is not None else data)
            if k:
                data = data[k:]
            else:
                self._block(self.wr_wants, deadline)

    def unread(self, data):
        self.rbuf[:0] = data

    def read_until(self, marker, limit, deadline=None):
        """Read until marker; returns (head including marker, leftover stays in rbuf)."""
        buf = bytearray()
        while True:
            i = buf.find(marker)
            if i >= 0:
                end = i + len(marker)
                self.unread(buf[end:])
                return bytes(buf[:end])
            if len(buf) > limit:
                raise ProtocolError("head longer than %d bytes" % limit)
            d = self.recv(65536, deadline)
            if not d:
                raise ConnectionError("EOF before end of head (%d bytes read)" % len(buf))
            buf += d

    def read_exact(self, n, deadline=None):
        buf = bytearray()
        while len(buf) < n:
            d = self.recv(n - len(buf), deadline)
            if not d:
                raise ConnectionError("EOF after %d of %d bytes" % (len(buf), n))
            buf += d
        return bytes(buf)

    def shutdown_write(self):
        """Half-close: TLS close_notify (if TLS), then TCP FIN."""
        if self.write_shut or self.closed:
            return
        self.write_shut = True
        if self.tls is not None:
            try:
                self.tls.shutdown()
            except (SSL.Error, OSError):
                pass
        try:
            self.sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def reset(self):
        """Close with an RST (SO_LINGER 0)."""
        if self.closed:
            return
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        self.close()

    def close(self):
        if self.closed:
            return
        self.closed = True
        try:
            self.sock.close()
        except OSError:
            pass


TLS_MAX_VERSIONS = {"1.2": "TLS1_2_VERSION", "1.3": "TLS1_3_VERSION"}


def make_client_context(ca_file=None, insecure=False, tls_max=None):
    """tls_max "1.2" pins TLS 1.2 (to test the exporter binding there); default: newest."""
    if SSL is None:
        raise RuntimeError("pyOpenSSL (python3-openssl) is required for TLS")
    ctx = SSL.Context(SSL.TLS_CLIENT_METHOD)
    ctx.set_min_proto_version(SSL.TLS1_2_VERSION)
    if tls_max:
        ctx.set_max_proto_version(getattr(SSL, TLS_MAX_VERSIONS[tls_max]))
    ctx.set_mode(_ssl_lib.SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER)
    if insecure:
        ctx.set_verify(SSL.VERIFY_NONE)
    else:
        ctx.set_verify(SSL.VERIFY_PEER)
        if ca_file:
            ctx.load_verify_locations(ca_file)
        else:
            ctx.set_default_verify_paths()
    return ctx


def make_server_context(cert_file, key_file):
    ctx = SSL.Context(SSL.TLS_SERVER_METHOD)
    ctx.set_min_proto_version(SSL.TLS1_2_VERSION)
    ctx.set_mode(_ssl_lib.SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER)
    ctx.use_certificate_chain_file(cert_file)
    ctx.use_privatekey_file(key_file)
    return ctx


def _is_ip(host):
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return False


def _tls_handshake(conn, sock, deadline):
    while True:
        try:
            conn.do_handshake()
            return
        except SSL.WantReadError:
            want = "r"
        except SSL.WantWriteError:
            want = "w"
        except SSL.SysCallError as e:
            raise TLSHandshakeError("TLS handshake: connection closed (%s)" % (e,))
        except SSL.Error as e:
            raise TLSHandshakeError("TLS handshake failed: %s" % (e,))
        r = _remaining(deadline)
        rl, wl = ([sock], []) if want == "r" else ([], [sock])
        if select.select(rl, wl, [], r) == ([], [], []):
            raise TimeoutError("TLS handshake timed out")


def connect_stream(host, port, tls, ca_file=None, insecure=False, server_name=None,
                   timeout=HANDSHAKE_TIMEOUT, context=None, tls_max=None):
    """TCP connect (every address in turn), then the TLS handshake when tls is true.

    The certificate is checked against server_name (default: host) unless insecure."""
    deadline = _deadline(timeout)
    last = None
    sock = None
    for family, stype, proto, _, addr in socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM):
        s = socket.socket(family, stype, proto)
        try:
            s.settimeout(_remaining(deadline))
            s.connect(addr)
            sock = s
            break
        except OSError as e:
            last = e
            s.close()
    if sock is None:
        raise last if last else ConnectionError("no address for %s" % host)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.setblocking(False)
    if not tls:
        return Stream(sock, None, (host, port))
    ctx = context or make_client_context(ca_file, insecure, tls_max)
    conn = SSL.Connection(ctx, sock)
    name = server_name or host
    if not _is_ip(name):
        conn.set_tlsext_host_name(name.encode("ascii"))
    if not insecure:
        param = _ssl_lib.SSL_get0_param(conn._ssl)
        if _is_ip(name):
            ok = _ssl_lib.X509_VERIFY_PARAM_set1_ip_asc(param, name.encode("ascii"))
        else:
            ok = _ssl_lib.X509_VERIFY_PARAM_set1_host(param, name.encode("ascii"), 0)
        if ok != 1:
            raise RuntimeError("cannot set the expected host name")
    conn.set_connect_state()
    try:
        _tls_handshake(conn, sock, deadline)
    except BaseException:
        sock.close()
        raise
    return Stream(sock, conn, (host, port))


# --------------------------------------------------------------------------------------------
# HTTP/1.1 upgrade heads (sections 4 and 8)

def host_header(host, port, tls):
    h = "[%s]" % host if ":" in host else host
    if port != (443 if tls else 80):
        h += ":%d" % port
    return h


def build_upgrade_request(path, host, headers):
    lines = ["GET %s HTTP/1.1" % path, "Host: %s" % host, "Connection: Upgrade",
             "Upgrade: %s" % PROTOCOL]
    lines += ["%s: %s" % (k, v) for k, v in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii")


def parse_response_head(head):
    """-> (status, reason, {lower-case name: [values]})."""
    text = head.decode("latin-1")
    lines = text.split("\r\n")
    m = re.fullmatch(r"HTTP/1\.[01] ([0-9]{3})(?: (.*))?", lines[0])
    if m is None:
        raise ProtocolError("bad status line %r" % lines[0])
    headers = {}
    for line in lines[1:]:
        if line == "":
            continue
        if line[0] in " \t" or ":" not in line:
            raise ProtocolError("bad header line %r" % line)
        k, v = line.split(":", 1)
        headers.setdefault(k.strip().lower(), []).append(v.strip())
    return int(m.group(1)), m.group(2) or "", headers


def _one_header(headers, name):
    v = headers.get(name.lower(), [])
    if len(v) != 1:
        raise ProtocolError("header %s appears %d times" % (name, len(v)))
    return v[0]


def _check_101(headers):
    conn_tokens = [t.strip().lower() for v in headers.get("connection", []) for t in v.split(",")]
    if "upgrade" not in conn_tokens:
        raise ProtocolError("101 without Connection: Upgrade")
    if [v.lower() for v in headers.get("upgrade", [])] != [PROTOCOL]:
        raise ProtocolError("101 without Upgrade: %s" % PROTOCOL)


def read_response(stream, deadline):
    head = stream.read_until(b"\r\n\r\n", MAX_HEAD_BYTES * 2, deadline)
    status, reason, headers = parse_response_head(head[:-4])
    body = b""
    if status != 101:
        try:
            n = int(headers.get("content-length", ["0"])[0])
            if 0 < n <= 65536:
                body = stream.read_exact(n, deadline)
        except (ValueError, ConnectionError, TimeoutError):
            pass
    return status, reason, headers, body


# --------------------------------------------------------------------------------------------
# Agent configuration and the control session

class AgentConfig:
    def __init__(self, host, port, tls, agent_id, key_ref, key, services=(), ca_file=None,
                 insecure=False, server_name=None, capabilities=OUR_CAPABILITIES,
                 version=CLIENT_VERSION, handshake_timeout=HANDSHAKE_TIMEOUT,
                 connect_timeout=5.0, tls_max=None):
        check_agent_id(agent_id)
        parse_key_ref(key_ref)
        if len(key) != 32:
            raise ValueError("agent key K must be 32 bytes")
        self.host, self.port, self.tls = host, int(port), bool(tls)
        self.agent_id, self.key_ref, self.key = agent_id, key_ref, bytes(key)
        self.services = {}       # name -> (host, port, entry text)
        for s in services:
            name, h, p = parse_service(s)
            if name in self.services:
                raise ValueError("service %s given twice" % name)
            self.services[name] = (h, p, s)
        self.ca_file, self.insecure, self.server_name = ca_file, insecure, server_name
        self.capabilities, self.version = capabilities, version
        self.handshake_timeout = handshake_timeout
        self.connect_timeout = connect_timeout
        self.tls_max = tls_max

    def connect(self, timeout=None):
        return connect_stream(self.host, self.port, self.tls, self.ca_file, self.insecure,
                              self.server_name, timeout or self.handshake_timeout,
                              tls_max=self.tls_max)

    def host_header(self):
        return host_header(self.server_name or self.host, self.port, self.tls)


class Welcome:
    def __init__(self, frame):
        self.frame = frame
        self.capabilities = frame.uint(T_CAPABILITIES, 0)
        self.heartbeat_ms = frame.uint(T_HEARTBEAT_MS, DEFAULT_HEARTBEAT_MS)
        self.server_time_ms = frame.uint(T_SERVER_TIME_MS)
        self.reconnect_window_ms = frame.uint(T_RECONNECT_WINDOW_MS)

    def as_dict(self):
        return {"capabilities": self.capabilities, "heartbeat_ms": self.heartbeat_ms,
                "server_time_ms": self.server_time_ms,
                "reconnect_window_ms": self.reconnect_window_ms}


class ControlSession:
    """A control connection after the 101: frame I/O, with sealing in plain mode.

    `role` is 'agent' (sends agent-to-gateway) or 'gateway' (used by the selftest stub)."""

    def __init__(self, stream, agent_key, agent_nonce, gateway_nonce, role="agent"):
        self.stream = stream
        self.sealed = stream.tls is None
        self.skey = session_key(agent_key, agent_nonce, gateway_nonce)
        self.tx_dir, self.rx_dir = (DIR_A2G, DIR_G2A) if role == "agent" else (DIR_G2A, DIR_A2G)
        self.tx_seq = 0
        self.rx_seq = 0
        self.last_rx = time.monotonic()
        self.last_tx = time.monotonic()
        self.welcome = None
        self.lock = threading.Lock()

    def encode(self, ftype, fields):
        if self.sealed:
            data = seal_frame(self.skey, self.tx_dir, self.tx_seq, ftype, fields)
        else:
            data = encode_frame(ftype, fields)
        self.tx_seq += 1
        return data

    def send(self, ftype, fields, deadline=None):
        with self.lock:
            data = self.encode(ftype, fields)
            self.stream.sendall(data, deadline if deadline is not None else _deadline(10))
            self.last_tx = time.monotonic()

    def send_raw(self, data, count_as_frame=True):
        """Send bytes as they are (tests: forged/oversized frames)."""
        with self.lock:
            self.stream.sendall(data, _deadline(10))
            if count_as_frame:
                self.tx_seq += 1
            self.last_tx = time.monotonic()

    def try_parse(self):
        """A frame from the read-ahead buffer, verified and with the mac stripped, or None."""
        r = parse_frame(self.stream.rbuf)
        if r is None:
            return None
        frame, used = r
        del self.stream.rbuf[:used]
        self.last_rx = time.monotonic()
        if self.sealed:
            frame = open_frame(self.skey, self.rx_dir, self.rx_seq, frame)
        self.rx_seq += 1
        check_fields(frame.type, frame.fields, mac_allowed=False)
        return frame

    def fill(self):
        """Read whatever is available without blocking. Returns False at EOF."""
        while True:
            d = self.stream.nb_recv(65536)
            if d is None:
                return True
            if d == b"":
                return False
            self.stream.rbuf += d
            if parse_frame_header_complete(self.stream.rbuf):
                return True

    def recv(self, deadline=None):
        """Next frame, or None at EOF. Raises TimeoutError, ProtocolError."""
        while True:
            f = self.try_parse()
            if f is not None:
                return f
            d = self.stream.recv(65536, deadline)
            if not d:
                if self.stream.rbuf:
                    raise ProtocolError("EOF inside a frame")
                return None
            self.stream.rbuf += d

    def fail(self, err):
        """Send ERROR for a ProtocolError (best effort) and close."""
        try:
            self.send(ERROR, error_fields(err.code, str(err)[:200]), _deadline(1))
        except Exception:
            pass
        self.stream.close()

    def close(self):
        self.stream.close()


def parse_frame_header_complete(buf):
    if len(buf) < 4:
        return False
    return len(buf) >= 4 + int.from_bytes(buf[1:4], "big")


def connect_control(cfg, agent_nonce=None, verify_gateway=True, send_hello=True,
                    hello_proof=None, extra_headers=(), header_overrides=None, services=None,
                    timeout=None):
    """Open a control connection: TCP/TLS, upgrade, gateway-proof check, HELLO, WELCOME.

    Returns a ControlSession (with .welcome set when send_hello). Raises UpgradeRejected for a
    non-101 answer, BadGatewayProof, SessionError (ERROR/GOAWAY instead of WELCOME),
    ProtocolError, TimeoutError, OSError. Test hooks: hello_proof (a forged proof),
    header_overrides (dict name -> value or None to omit), extra_headers."""
    timeout = timeout or cfg.handshake_timeout
    deadline = _deadline(timeout)
    stream = cfg.connect(timeout)
    try:
        agent_nonce = agent_nonce if agent_nonce is not None else os.urandom(NONCE_LEN)
        exporter = stream.exporter()
        hdrs = {"Camtunnel-Agent": cfg.agent_id, "Camtunnel-Key": cfg.key_ref,
                "Camtunnel-Nonce": b64url_encode(agent_nonce)}
        for k, v in (header_overrides or {}).items():
            if v is None:
                hdrs.pop(k, None)
            else:
                hdrs[k] = v
        req = build_upgrade_request(CONTROL_PATH, cfg.host_header(),
                                    list(hdrs.items()) + list(extra_headers))
        stream.sendall(req, deadline)
        status, reason, headers, body = read_response(stream, deadline)
        if status != 101:
            raise UpgradeRejected(status, reason, headers, body)
        _check_101(headers)
        gw_nonce = b64url_decode(_one_header(headers, "Camtunnel-Nonce"), NONCE_LEN)
        gw_proof = b64url_decode(_one_header(headers, "Camtunnel-Proof"), PROOF_LEN)
        want = gateway_proof(cfg.key, cfg.agent_id, cfg.key_ref, agent_nonce, gw_nonce,
                             stream.transport, exporter)
        if verify_gateway and not hmac.compare_digest(want, gw_proof):
            raise BadGatewayProof("gateway proof does not verify")
        sess = ControlSession(stream, cfg.key, agent_nonce, gw_nonce, "agent")
        sess.agent_nonce, sess.gateway_nonce, sess.exporter = agent_nonce, gw_nonce, exporter
        if not send_hello:
            return sess
        proof = hello_proof if hello_proof is not None else agent_proof(
            cfg.key, cfg.agent_id, cfg.key_ref, agent_nonce, gw_nonce, stream.transport,
            exporter)
        svc = [v[2] for v in cfg.services.values()] if services is None else list(services)
        sess.send(HELLO, hello_fields(proof, svc, cfg.capabilities, cfg.version), deadline)
        f = sess.recv(_deadline(timeout))
        if f is None:
            raise ConnectionError("gateway closed the connection after HELLO")
        if f.type != WELCOME:
            if f.type == ERROR:
                raise SessionError("ERROR %s: %s" % (f.uint(T_ERROR_CODE), f.text(T_TEXT, "")), f)
            raise SessionError("first gateway frame is %s, not WELCOME" % f.name, f)
        sess.welcome = Welcome(f)
        return sess
    except BaseException:
        stream.close()
        raise


def open_data_connection(cfg, tunnel_id, open_nonce, proof=None, header_overrides=None,
                         timeout=None):
    """Data connection for one tunnel. Returns the Stream after the 101 (leftover bytes, the
    start of the media server's stream, stay in stream.rbuf). Raises UpgradeRejected etc."""
    timeout = timeout or cfg.handshake_timeout
    deadline = _deadline(timeout)
    stream = cfg.connect(timeout)
    try:
        if proof is None:
            proof = data_proof(cfg.key, cfg.agent_id, cfg.key_ref, tunnel_id, open_nonce,
                               stream.transport, stream.exporter())
        hdrs = {"Camtunnel-Agent": cfg.agent_id, "Camtunnel-Key": cfg.key_ref,
                "Camtunnel-Tunnel": tunnel_id, "Camtunnel-Proof": b64url_encode(proof)}
        for k, v in (header_overrides or {}).items():
            if v is None:
                hdrs.pop(k, None)
            else:
                hdrs[k] = v
        stream.sendall(build_upgrade_request(DATA_PATH, cfg.host_header(), list(hdrs.items())),
                       deadline)
        status, reason, headers, body = read_response(stream, deadline)
        if status != 101:
            raise UpgradeRejected(status, reason, headers, body)
        _check_101(headers)
        return stream
    except BaseException:
        stream.close()
        raise


# --------------------------------------------------------------------------------------------
# Relay between two Streams: bounded buffers, half-close propagation, reset on error

RELAY_BUFFER = 256 * 1024


def relay(a, b, stop=None, idle_timeout=None):
    """Copy a->b and b->a until both directions have ended. Returns (bytes a->b, bytes b->a).

    EOF on one side becomes shutdown_write on the other; an error resets both."""
    ends = (a, b)
    buf = {a: bytearray(), b: bytearray()}      # data read from key, to write to the other
    eof = {a: False, b: False}
    shut = {a: False, b: False}
    count = {a: 0, b: 0}
    other = {a: b, b: a}
    last = time.monotonic()
    try:
        while True:
            progress = False
            for src in ends:
                dst = other[src]
                while not eof[src] and len(buf[src]) < RELAY_BUFFER:
                    d = src.nb_recv(65536)
                    if d is None:
                        break
                    if d == b"":
                        eof[src] = True
                        break
                    buf[src] += d
                    count[src] += len(d)
                    progress = True
                while buf[src]:
                    k = dst.nb_send(bytes(buf[src][:65536]))
                    if not k:
                        break
                    del buf[src][:k]
                    progress = True
                if eof[src] and not buf[src] and not shut[dst]:
                    dst.shutdown_write()
                    shut[dst] = True
                    progress = True
            if shut[a] and shut[b]:
                break
            if stop is not None and stop.is_set():
                raise ConnectionAbortedError("relay stopped")
            now = time.monotonic()
            if progress:
                last = now
                if any(s.pending() for s in ends if not eof[s]):
                    continue
            elif idle_timeout is not None and now - last > idle_timeout:
                raise TimeoutError("relay idle")
            rl, wl = [], []
            for s in ends:
                reading = not eof[s] and len(buf[s]) < RELAY_BUFFER
                writing = bool(buf[other[s]])
                if (reading and s.rd_wants == "r") or (writing and s.wr_wants == "r"):
                    rl.append(s.sock)
                if (writing and s.wr_wants == "w") or (reading and s.rd_wants == "w"):
                    wl.append(s.sock)
            timeout = 0 if any(s.pending() for s in ends if not eof[s]) else 0.5
            select.select(rl, wl, [], timeout)
    except BaseException:
        a.reset()
        b.reset()
        raise
    a.close()
    b.close()
    return count[a], count[b]


# --------------------------------------------------------------------------------------------
# The agent: control loop, OPEN handling, tunnels

def _log(prefix, msg):
    sys.stderr.write("%s %s: %s\n" % (time.strftime("%H:%M:%S"), prefix, msg))
    sys.stderr.flush()


class Agent:
    """Serves one control session at a time (run_session), or reconnects (run_forever).

    Every OPEN for a configured service connects to that local service and opens a data
    connection; anything else gets OPEN_FAILED (EPERM). Counters are kept for tests."""

    def __init__(self, cfg, verbose=False, status_text=None):
        self.cfg = cfg
        self.verbose = verbose
        self.status_text = status_text
        self.stop_event = threading.Event()
        self._outq = queue.Queue()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self.session = None
        self.last_goaway = None
        self.last_error = None
        self.stats = {"sessions": 0, "opens": 0, "tunnels_ok": 0, "tunnels_failed": 0,
                      "open_failed_sent": 0, "pings_rx": 0, "pongs_rx": 0, "bytes_up": 0,
                      "bytes_down": 0}
        self.rtts_ms = []
        self._threads = []
        self._streams = set()
        self._lock = threading.Lock()

    def log(self, msg):
        if self.verbose:
            _log("agent %s" % self.cfg.agent_id, msg)

    def _wake(self):
        try:
            self._wake_w.send(b"x")
        except OSError:
            pass

    def stop(self):
        self.stop_event.set()
        self._wake()
        with self._lock:
            for s in list(self._streams):
                s.reset()

    def _post(self, ftype, fields):
        self._outq.put((ftype, fields))
        self._wake()

    def connect(self):
        sess = connect_control(self.cfg)
        self.session = sess
        self.stats["sessions"] += 1
        self.log("session up (%s%s), welcome %s" % (
            sess.stream.transport, " " + sess.stream.tls_version() if sess.stream.tls else "",
            sess.welcome.as_dict()))
        return sess

    def run_session(self, sess=None, on_ready=None):
        """Serve one session until it ends. Returns a reason string."""
        sess = sess or self.connect()
        if on_ready:
            on_ready(sess)
        hb = max(sess.welcome.heartbeat_ms, 50) / 1000.0
        ping_seq = 0
        ping_sent = {}
        if self.status_text:
            sess.send(STATUS, [(T_TEXT, self.status_text)])
        try:
            while not self.stop_event.is_set():
                while True:
                    try:
                        ftype, fields = self._outq.get_nowait()
                    except queue.Empty:
                        break
                    sess.send(ftype, fields)
                try:
                    f = sess.try_parse()
                except ProtocolError as e:
                    self.log("protocol error: %s" % e)
                    sess.fail(e)
                    return "protocol error: %s" % e
                if f is not None:
                    r = self._handle(sess, f, ping_sent)
                    if r:
                        return r
                    continue
                now = time.monotonic()
                if now - sess.last_rx > 2 * hb:
                    sess.close()
                    return "timeout: no frame for %.1f s" % (now - sess.last_rx)
                if now - sess.last_tx >= hb:
                    ping_seq += 1
                    ping_sent[ping_seq] = now
                    sess.send(PING, [(T_SEQUENCE, u64(ping_seq))])
                    continue
                if sess.stream.tls is not None and sess.stream.tls.pending():
                    if not sess.fill():
                        sess.close()
                        return "gateway closed the control connection"
                    continue
                wait = min(hb - (now - sess.last_tx), 2 * hb - (now - sess.last_rx))
                rl = [self._wake_r]
                wl = []
                (rl if sess.stream.rd_wants == "r" else wl).append(sess.stream.sock)
                r, w, _ = select.select(rl, wl, [], max(wait, 0.01))
                if self._wake_r in r:
                    try:
                        while self._wake_r.recv(4096):
                            pass
                    except OSError:
                        pass
                if sess.stream.sock in r or sess.stream.sock in w:
                    if not sess.fill():
                        if sess.stream.rbuf:
                            try:
                                while sess.try_parse() is not None:
                                    pass
                            except ProtocolError:
                                pass
                        sess.close()
                        return "gateway closed the control connection"
            sess.close()
            return "stopped"
        except (OSError, TimeoutError) as e:
            sess.close()
            return "connection error: %s" % e

    def _handle(self, sess, f, ping_sent):
        if f.type == PING:
            self.stats["pings_rx"] += 1
            sess.send(PONG, [(T_SEQUENCE, f.get(T_SEQUENCE, u64(0)))])
        elif f.type == PONG:
            self.stats["pongs_rx"] += 1
            t = ping_sent.pop(f.uint(T_SEQUENCE, -1), None)
            if t is not None:
                self.rtts_ms.append((time.monotonic() - t) * 1000.0)
        elif f.type == OPEN:
            self.stats["opens"] += 1
            return self._on_open(sess, f)
        elif f.type == SPARE:
            return self._on_spare(sess, f)
        elif f.type == GOAWAY:
            self.last_goaway = f
            self.log("GOAWAY %s" % f.describe())
            sess.close()
            return "goaway: %s" % f.text(T_TEXT, "")
        elif f.type == ERROR:
            self.last_error = f
            self.log("ERROR %s" % f.describe())
            sess.close()
            return "error %s: %s" % (f.uint(T_ERROR_CODE), f.text(T_TEXT, ""))
        elif f.type == UNSUPPORTED:
            self.log("gateway does not support frame type %s" % f.uint(T_FRAME_TYPE))
        elif f.type == WELCOME:
            sess.fail(ProtocolError("second WELCOME", E_UNEXPECTED))
            return "unexpected second WELCOME"
        elif f.type in FRAME_NAMES:
            # a known frame that a gateway must not send (HELLO, STATUS, OPEN_FAILED, manager)
            sess.fail(ProtocolError("unexpected %s from gateway" % f.name, E_UNEXPECTED))
            return "unexpected %s" % f.name
        else:
            sess.send(UNSUPPORTED, [(T_FRAME_TYPE, u8(f.type))])
        return None

    def _on_spare(self, sess, f):
        """This agent keeps no spare data connections (section 8.1 lets it leave SPARE
        unanswered; it does not set the capability, so a gateway should not even ask)."""
        self.log("SPARE %s ignored" % f.text(T_TUNNEL_ID))
        return None

    def _on_open(self, sess, f):
        tid = f.text(T_TUNNEL_ID)
        name = f.text(T_SERVICE_NAME)
        nonce = f.get(T_NONCE)
        if tid is None or not is_tunnel_id(tid) or name is None or nonce is None:
            sess.fail(ProtocolError("OPEN without valid tunnel_id/service_name/nonce"))
            return "malformed OPEN"
        self.log("OPEN %s %s" % (tid, name))
        if name not in self.cfg.services:
            self.stats["open_failed_sent"] += 1
            sess.send(OPEN_FAILED, open_failed_fields(tid, errno_mod.EPERM,
                                                      "service %s not exposed" % name))
            return None
        t = threading.Thread(target=self._tunnel, args=(tid, name, nonce), daemon=True)
        t.start()
        self._threads = [x for x in self._threads if x.is_alive()] + [t]
        return None

    def _track(self, s, add=True):
        with self._lock:
            (self._streams.add if add else self._streams.discard)(s)

    def _tunnel(self, tid, name, nonce):
        host, port, _ = self.cfg.services[name]
        try:
            ls = socket.create_connection((host, port), timeout=self.cfg.connect_timeout)
            ls.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError as e:
            err = e.errno if isinstance(e, OSError) and e.errno else (
                errno_mod.ETIMEDOUT if isinstance(e, (socket.timeout, TimeoutError))
                else errno_mod.EIO)
            self.stats["tunnels_failed"] += 1
            self.stats["open_failed_sent"] += 1
            self.log("tunnel %s: local connect %s:%d failed: %s" % (tid, host, port, e))
            self._post(OPEN_FAILED, open_failed_fields(
                tid, err, "connect %s:%d: %s" % (host, port, os.strerror(err))))
            return
        local = Stream(ls, None, (host, port))
        self._track(local)
        try:
            data = open_data_connection(self.cfg, tid, nonce)
        except Exception as e:
            self.stats["tunnels_failed"] += 1
            self.log("tunnel %s: data connection failed: %s" % (tid, e))
            local.close()
            self._track(local, False)
            return
        self._track(data)
        try:
            up, down = relay(local, data, stop=self.stop_event)
            self.stats["bytes_up"] += up
            self.stats["bytes_down"] += down
            self.stats["tunnels_ok"] += 1
            self.log("tunnel %s done: %d bytes up, %d down" % (tid, up, down))
        except Exception as e:
            self.stats["tunnels_failed"] += 1
            self.log("tunnel %s ended with error: %s" % (tid, e))
        finally:
            self._track(local, False)
            self._track(data, False)

    def next_delay(self, attempt):
        """Reconnect delay: GOAWAY reconnect_after_ms, else the WELCOME window, else backoff."""
        if self.last_goaway is not None:
            ms = self.last_goaway.uint(T_RECONNECT_AFTER_MS)
            self.last_goaway = None
            if ms is not None:
                return ms / 1000.0
        if self.session is not None and self.session.welcome is not None \
                and self.session.welcome.reconnect_window_ms and attempt == 0:
            return random.uniform(0, self.session.welcome.reconnect_window_ms / 1000.0)
        return random.uniform(0, min(30.0, 0.5 * 2 ** attempt))   # full jitter

    def run_forever(self, on_ready=None):
        attempt = 0
        while not self.stop_event.is_set():
            try:
                sess = self.connect()
                attempt = 0
            except UpgradeRejected as e:
                self.log("rejected: %d %s" % (e.status, e.reason))
                if e.status == 403:
                    return "403"
                d = random.uniform(0, min(30.0, 0.5 * 2 ** attempt))
                ra = e.headers.get("retry-after", [None])[0]
                if ra and ra.isdigit():
                    d = max(d, int(ra))
                attempt += 1
                self.stop_event.wait(d)
                continue
            except (OSError, TimeoutError, ProtocolError, SessionError) as e:
                self.log("connect failed: %s" % e)
                attempt += 1
                self.stop_event.wait(self.next_delay(attempt))
                continue
            reason = self.run_session(sess, on_ready)
            self.log("session ended: %s" % reason)
            if self.stop_event.is_set():
                break
            self.stop_event.wait(self.next_delay(attempt))
            attempt += 1
        return "stopped"


# --------------------------------------------------------------------------------------------
# Test vectors (TASK: proto/test_vectors.json)

VEC_STREAMER_KEY = bytes(range(0x00, 0x20))
VEC_AGENT_ID = "cam-42"
VEC_KEY_REF = "k1.1767225600"
VEC_AGENT_NONCE = bytes(range(0xa0, 0xb0))
VEC_GATEWAY_NONCE = bytes(range(0xb0, 0xc0))
VEC_OPEN_NONCE = bytes(range(0xd0, 0xe0))
VEC_EXPORTER = bytes(range(0x40, 0x60))
VEC_TUNNEL_ID = "00a3f09c11d2e4b7"


def _fields_json(fields):
    return [{"tag": t, "value": _b(v).hex()} for t, v in fields]


def build_vectors():
    K = derive_agent_key(VEC_STREAMER_KEY, VEC_AGENT_ID, VEC_KEY_REF)
    out = {}

    derive_inputs = [
        (VEC_STREAMER_KEY, VEC_AGENT_ID, VEC_KEY_REF),
        (bytes(range(0xff, 0xdf, -1)), "a" * 31 + "-" + "9" * 31, "Key_ID-2.18446744073709551615"),
        (bytes(32), "0", "k.0"),
    ]
    out["derive_agent_key"] = [
        {"streamer_key": sk.hex(), "agent_id": aid, "key_ref": ref,
         "agent_key": derive_agent_key(sk, aid, ref).hex()}
        for sk, aid, ref in derive_inputs]

    for name, fn in (("gateway_proof", gateway_proof), ("agent_proof", agent_proof)):
        out[name] = []
        for transport, exp in ((TRANSPORT_TLS, VEC_EXPORTER), (TRANSPORT_PLAIN, b"")):
            out[name].append({
                "agent_key": K.hex(), "agent_id": VEC_AGENT_ID, "key_ref": VEC_KEY_REF,
                "agent_nonce": VEC_AGENT_NONCE.hex(), "gateway_nonce": VEC_GATEWAY_NONCE.hex(),
                "transport": transport, "exporter": exp.hex(),
                "proof": fn(K, VEC_AGENT_ID, VEC_KEY_REF, VEC_AGENT_NONCE, VEC_GATEWAY_NONCE,
                            transport, exp).hex()})

    out["data_proof"] = []
    for transport, exp in ((TRANSPORT_TLS, VEC_EXPORTER), (TRANSPORT_PLAIN, b"")):
        out["data_proof"].append({
            "agent_key": K.hex(), "agent_id": VEC_AGENT_ID, "key_ref": VEC_KEY_REF,
            "tunnel_id": VEC_TUNNEL_ID, "open_nonce": VEC_OPEN_NONCE.hex(),
            "transport": transport, "exporter": exp.hex(),
            "proof": data_proof(K, VEC_AGENT_ID, VEC_KEY_REF, VEC_TUNNEL_ID, VEC_OPEN_NONCE,
                                transport, exp).hex()})

    SK = session_key(K, VEC_AGENT_NONCE, VEC_GATEWAY_NONCE)
    out["session_key"] = [{"agent_key": K.hex(), "agent_nonce": VEC_AGENT_NONCE.hex(),
                           "gateway_nonce": VEC_GATEWAY_NONCE.hex(), "session_key": SK.hex()}]

    hello_proof = agent_proof(K, VEC_AGENT_ID, VEC_KEY_REF, VEC_AGENT_NONCE, VEC_GATEWAY_NONCE,
                              TRANSPORT_TLS, VEC_EXPORTER)
    hello_proof_plain = agent_proof(K, VEC_AGENT_ID, VEC_KEY_REF, VEC_AGENT_NONCE,
                                    VEC_GATEWAY_NONCE, TRANSPORT_PLAIN, b"")
    services = ["rtsp=127.0.0.1:554", "http=127.0.0.1:80"]
    typed = [
        ("HELLO", HELLO, hello_fields(hello_proof, services, 3, "camtunnel-agent/0.1.0")),
        ("WELCOME", WELCOME, welcome_fields(3, 5000, 1767139200123, 30000)),
        ("PING", PING, [(T_SEQUENCE, u64(1))]),
        ("PONG", PONG, [(T_SEQUENCE, u64(1))]),
        ("STATUS", STATUS, [(T_TEXT, "uptime=3600 fw=1.2.3")]),
        ("OPEN", OPEN, open_fields(VEC_TUNNEL_ID, "rtsp", VEC_OPEN_NONCE)),
        ("OPEN_FAILED", OPEN_FAILED, open_failed_fields(
            VEC_TUNNEL_ID, 111, "connect 127.0.0.1:554: Connection refused")),
        ("GOAWAY", GOAWAY, [(T_RECONNECT_AFTER_MS, u32(1000)), (T_TEXT, "replaced")]),
        ("UNSUPPORTED", UNSUPPORTED, [(T_FRAME_TYPE, u8(42))]),
        ("ERROR", ERROR, error_fields(E_BAD_PROOF, "bad proof")),
        ("SPARE", SPARE, [(T_TUNNEL_ID, VEC_TUNNEL_ID), (T_NONCE, VEC_OPEN_NONCE)]),
        ("OPENED", OPENED, [(T_TUNNEL_ID, VEC_TUNNEL_ID)]),
        # unknown tag 200 before a known one: a receiver skips it and still sees sequence 7
        ("PING with unknown tag 200", PING, [(200, b"future"), (T_SEQUENCE, u64(7))]),
    ]
    out["frame_mac"] = []
    for direction, seq, ftype, fields in (
            (DIR_A2G, 0, HELLO, hello_fields(hello_proof_plain, services, 3,
                                             "camtunnel-agent/0.1.0")),
            (DIR_G2A, 0, WELCOME, welcome_fields(3, 5000, 1767139200123, 30000)),
            (DIR_A2G, 1, PING, [(T_SEQUENCE, u64(1))]),
            (DIR_G2A, 1, PING, [(T_SEQUENCE, u64(1))]),
            (DIR_G2A, 4294967301, OPEN, open_fields(VEC_TUNNEL_ID, "rtsp", VEC_OPEN_NONCE)),
            (DIR_A2G, 2, STATUS, [])):
        payload = encode_fields(fields)
        out["frame_mac"].append({
            "session_key": SK.hex(), "direction": direction, "sequence": seq, "type": ftype,
            "payload": payload.hex(), "mac": frame_mac(SK, direction, seq, ftype, payload).hex()})

    out["frames"] = []
    for name, ftype, fields in typed:
        enc = encode_frame(ftype, fields)
        dec = decode_frame(enc)
        assert dec.type == ftype and dec.fields == [(t, _b(v)) for t, v in fields]
        out["frames"].append({"name": name, "type": ftype, "fields": _fields_json(fields),
                              "encoded": enc.hex()})

    out["sealed_frames"] = []
    for direction, seq, ftype, fields in (
            (DIR_A2G, 0, HELLO, hello_fields(hello_proof_plain, services, 3,
                                             "camtunnel-agent/0.1.0")),
            (DIR_G2A, 0, WELCOME, welcome_fields(3, 5000, 1767139200123, 30000)),
            (DIR_A2G, 1, PING, [(T_SEQUENCE, u64(1))]),
            (DIR_G2A, 1, PONG, [(T_SEQUENCE, u64(1))]),
            (DIR_G2A, 2, OPEN, open_fields(VEC_TUNNEL_ID, "rtsp", VEC_OPEN_NONCE)),
            (DIR_A2G, 2, OPEN_FAILED, open_failed_fields(VEC_TUNNEL_ID, 111,
                                                         "Connection refused")),
            (DIR_G2A, 3, GOAWAY, [(T_RECONNECT_AFTER_MS, u32(0)), (T_TEXT, "replaced")]),
            (DIR_G2A, 4, ERROR, error_fields(E_BAD_MAC, "bad MAC"))):
        enc = seal_frame(SK, direction, seq, ftype, fields)
        back = open_frame(SK, direction, seq, decode_frame(enc, mac_allowed=True))
        assert back.fields == [(t, _b(v)) for t, v in fields]
        out["sealed_frames"].append({
            "session_key": SK.hex(), "direction": direction, "sequence": seq, "type": ftype,
            "fields": _fields_json(fields), "encoded": enc.hex()})
    return out


# --------------------------------------------------------------------------------------------
# Self-test: vectors round trip + the plumbing against a minimal in-process stub gateway.
# The stub reuses this file's crypto, so it checks sockets/TLS/relay, not the reading of the
# spec; the C++ gateway is the real counterpart.

class _StubGateway:
    def __init__(self, streamer_key, tls_files=None):
        self.streamer_key = streamer_key
        self.ctx = make_server_context(*tls_files) if tls_files else None
        self.lsock = socket.socket()
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(16)
        self.port = self.lsock.getsockname()[1]
        self.pending = {}
        self.data_streams = queue.Queue()
        self.sessions = queue.Queue()
        self.errors = []
        threading.Thread(target=self._accept_loop, daemon=True).start()

    def _accept_loop(self):
        while True:
            try:
                s, _ = self.lsock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(s,), daemon=True).start()

    def _serve(self, s):
        try:
            s.setblocking(False)
            if self.ctx is not None:
                conn = SSL.Connection(self.ctx, s)
                conn.set_accept_state()
                _tls_handshake(conn, s, _deadline(5))
                st = Stream(s, conn)
            else:
                st = Stream(s)
            dl = _deadline(5)
            head = st.read_until(b"\r\n\r\n", MAX_HEAD_BYTES, dl).decode("latin-1")
            lines = head[:-4].split("\r\n")
            path = lines[0].split(" ")[1]
            h = {}
            for ln in lines[1:]:
                k, v = ln.split(":", 1)
                h[k.strip().lower()] = v.strip()
            aid = check_agent_id(h["camtunnel-agent"])
            ref = h["camtunnel-key"]
            K = derive_agent_key(self.streamer_key, aid, ref)
            exp = st.exporter()
            if path == CONTROL_PATH:
                an = b64url_decode(h["camtunnel-nonce"], 16)
                gn = os.urandom(16)
                gp = gateway_proof(K, aid, ref, an, gn, st.transport, exp)
                st.sendall(("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n"
                            "Upgrade: camtunnel/1\r\nCamtunnel-Nonce: %s\r\n"
                            "Camtunnel-Proof: %s\r\n\r\n" % (b64url_encode(gn), b64url_encode(gp))
                            ).encode(), dl)
                sess = ControlSession(st, K, an, gn, role="gateway")
                f = sess.recv(dl)
                want = agent_proof(K, aid, ref, an, gn, st.transport, exp)
                if f.type != HELLO or not hmac.compare_digest(f.get(T_PROOF), want):
                    sess.send(ERROR, error_fields(E_BAD_PROOF))
                    st.close()
                    return
                sess.hello = f
                sess.agent_id, sess.key_ref, sess.K = aid, ref, K
                sess.send(WELCOME, welcome_fields(3, 1000, int(time.time() * 1000), 100))
                self.sessions.put(sess)
            elif path == DATA_PATH:
                tid = h["camtunnel-tunnel"]
                p = b64url_decode(h["camtunnel-proof"], 32)
                pend = self.pending.get(tid)
                if pend is None:
                    st.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
                    st.close()
                    return
                want = data_proof(K, aid, ref, tid, pend, st.transport, exp)
                if not hmac.compare_digest(want, p):
                    st.sendall(b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n")
                    st.close()
                    return
                del self.pending[tid]
                st.sendall(b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n"
                           b"Upgrade: camtunnel/1\r\n\r\n")
                self.data_streams.put((tid, st))
        except Exception as e:  # pragma: no cover - diagnostic only
            self.errors.append(repr(e))

    def open(self, sess, service):
        tid = "%02x%014x" % (0, random.getrandbits(56))
        nonce = os.urandom(16)
        self.pending[tid] = nonce
        sess.send(OPEN, open_fields(tid, service, nonce))
        return tid

    def close(self):
        self.lsock.close()


def _echo_server():
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(8)

    def serve(c):
        with c:
            while True:
                d = c.recv(65536)
                if not d:
                    c.shutdown(socket.SHUT_WR)
                    return
                c.sendall(d)

    def loop():
        while True:
            try:
                c, _ = ls.accept()
            except OSError:
                return
            threading.Thread(target=serve, args=(c,), daemon=True).start()
    threading.Thread(target=loop, daemon=True).start()
    return ls


def _check_vectors_selfconsistent(vec):
    """Recompute every vector from its own inputs (guards against editing mistakes)."""
    h = bytes.fromhex
    for v in vec["derive_agent_key"]:
        assert derive_agent_key(h(v["streamer_key"]), v["agent_id"], v["key_ref"]).hex() == \
            v["agent_key"]
    for name, fn in (("gateway_proof", gateway_proof), ("agent_proof", agent_proof)):
        for v in vec[name]:
            assert fn(h(v["agent_key"]), v["agent_id"], v["key_ref"], h(v["agent_nonce"]),
                      h(v["gateway_nonce"]), v["transport"], h(v["exporter"])).hex() == v["proof"]
    for v in vec["data_proof"]:
        assert data_proof(h(v["agent_key"]), v["agent_id"], v["key_ref"], v["tunnel_id"],
                          h(v["open_nonce"]), v["transport"], h(v["exporter"])).hex() == v["proof"]
    for v in vec["session_key"]:
        assert session_key(h(v["agent_key"]), h(v["agent_nonce"]),
                           h(v["gateway_nonce"])).hex() == v["session_key"]
    for v in vec["frame_mac"]:
        assert frame_mac(h(v["session_key"]), v["direction"], v["sequence"], v["type"],
                         h(v["payload"])).hex() == v["mac"]
    for v in vec["frames"]:
        f = decode_frame(h(v["encoded"]))
        assert f.type == v["type"]
        assert [{"tag": t, "value": x.hex()} for t, x in f.fields] == v["fields"]
    for v in vec["sealed_frames"]:
        f = open_frame(h(v["session_key"]), v["direction"], v["sequence"],
                       decode_frame(h(v["encoded"]), mac_allowed=True))
        assert [{"tag": t, "value": x.hex()} for t, x in f.fields] == v["fields"]
        try:  # any other sequence or direction must fail
            other = DIR_G2A if v["direction"] == DIR_A2G else DIR_A2G
            open_frame(h(v["session_key"]), other, v["sequence"],
                       decode_frame(h(v["encoded"]), mac_allowed=True))
            raise AssertionError("reflected frame verified")
        except BadMac:
            pass


def _unit_checks():
    assert is_agent_id("cam-42") and is_agent_id("a") and is_agent_id("a" * 63)
    for bad in ("", "Cam-1", "-a", "a-", "a.b", "a_b", "a" * 64, "cam%2d1", "cam-1\n", "é"):
        assert not is_agent_id(bad), bad
    assert parse_key_ref("k1.1767225600") == ("k1", "1767225600", 1767225600)
    assert parse_key_ref("k.0")[2] == 0
    assert parse_key_ref("k.18446744073709551615")[2] == 2 ** 64 - 1
    for bad in ("k1", "k1.", ".5", "k1.01", "k1.18446744073709551616", "k.1.2", "k!.5",
                "k1.+5", "a" * 33 + ".5", "k1.1e5"):
        try:
            parse_key_ref(bad)
            raise AssertionError("accepted key ref %r" % bad)
        except ProtocolError:
            pass
    n = bytes(range(16))
    assert len(b64url_encode(n)) == 22 and b64url_decode(b64url_encode(n), 16) == n
    assert len(b64url_encode(bytes(32))) == 43
    for bad in ("AAECAwQFBgcICQoLDA0ODw==", "AAECAwQFBgcICQoLDA0OD", "AAECAwQFBgcICQoLDA0ODx",
                "AAECAwQFBgcICQoLDA0OD+", "AAECAwQFBgcICQoLDA0OD/"):
        try:
            b64url_decode(bad, 16)
            raise AssertionError("accepted nonce %r" % bad)
        except ProtocolError:
            pass
    assert parse_service("rtsp=127.0.0.1:554") == ("rtsp", "127.0.0.1", 554)
    assert parse_service("x=[::1]:1") == ("x", "[::1]", 1)
    for bad in ("rtsp=127.0.0.1:0", "RTSP=h:1", "rtsp=:1", "rtsp=h:65536", "rtsp=::1:5",
                "rtsp=999.1.1.1:5"):
        try:
            parse_service(bad)
            raise AssertionError("accepted service %r" % bad)
        except ProtocolError:
            pass
    assert tunnel_id_shard("00a3f09c11d2e4b7") == 0 and tunnel_id_shard("05ffffffffffffff") == 5
    # frame caps and malformed payloads
    big = u8(PING) + (MAX_FRAME_PAYLOAD + 1).to_bytes(3, "big")
    try:
        parse_frame(big)
        raise AssertionError("oversize accepted")
    except FrameTooLarge:
        pass
    assert parse_frame(u8(PING) + (MAX_FRAME_PAYLOAD).to_bytes(3, "big")) is None
    for bad_payload in (b"\x0e\x00", b"\x0e\x00\x09" + bytes(8), b"\x0e\x00\x07" + bytes(7),
                        b"\x0e\x00\x08" + bytes(8) + b"\x0e\x00\x08" + bytes(8)):
        try:
            decode_frame(u8(PING) + len(bad_payload).to_bytes(3, "big") + bad_payload)
            raise AssertionError("malformed accepted %r" % bad_payload)
        except ProtocolError:
            pass
    sk = bytes(32)
    sealed = seal_frame(sk, DIR_A2G, 5, PING, [(T_SEQUENCE, u64(9))])
    f = open_frame(sk, DIR_A2G, 5, decode_frame(sealed, mac_allowed=True))
    assert f.uint(T_SEQUENCE) == 9
    for d, s in ((DIR_A2G, 4), (DIR_A2G, 6), (DIR_G2A, 5)):
        try:
            open_frame(sk, d, s, decode_frame(sealed, mac_allowed=True))
            raise AssertionError("replay accepted")
        except BadMac:
            pass
    # mac not last
    fr = Frame(PING, [(T_MAC, bytes(16)), (T_SEQUENCE, u64(1))])
    try:
        open_frame(sk, DIR_A2G, 0, fr)
        raise AssertionError("misplaced mac accepted")
    except BadMac:
        pass


def _selftest_tunnel(tmpdir, tls):
    streamer_key = os.urandom(32)
    files = None
    if tls:
        cert, key = os.path.join(tmpdir, "cert.pem"), os.path.join(tmpdir, "key.pem")
        if not os.path.exists(cert):
            import subprocess
            subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                            "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key, "-out",
                            cert, "-days", "2", "-subj", "/CN=localhost", "-addext",
                            "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                           check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        files = (cert, key)
    gw = _StubGateway(streamer_key, files)
    echo = _echo_server()
    ref = "k1.%d" % (int(time.time()) + 3600)
    K = derive_agent_key(streamer_key, "self-test", ref)
    cfg = AgentConfig("localhost" if tls else "127.0.0.1", gw.port, tls, "self-test", ref, K,
                      ["echo=127.0.0.1:%d" % echo.getsockname()[1], "dead=127.0.0.1:1"],
                      ca_file=files[0] if tls else None)
    agent = Agent(cfg)
    sess = agent.connect()
    th = threading.Thread(target=agent.run_session, args=(sess,), daemon=True)
    th.start()
    gsess = gw.sessions.get(timeout=5)
    assert [v.decode() for v in gsess.hello.all(T_SERVICE)] == [
        "echo=127.0.0.1:%d" % echo.getsockname()[1], "dead=127.0.0.1:1"]
    # one tunnel to the echo service: 1 MB through, half-close back
    gw.open(gsess, "echo")
    tid, ds = gw.data_streams.get(timeout=5)
    payload = os.urandom(1 << 20)
    got = bytearray()
    sent = 0
    dl = _deadline(20)
    while True:
        if sent < len(payload):
            sent += ds.nb_send(payload[sent:sent + 65536])
            if sent == len(payload):
                ds.shutdown_write()
        d = ds.nb_recv(65536)
        if d == b"":
            break
        if d:
            got += d
            continue
        _remaining(dl)
        select.select([ds.sock], [ds.sock] if sent < len(payload) else [], [], 0.2)
    assert bytes(got) == payload, "echo mismatch %d/%d" % (len(got), len(payload))
    ds.close()
    # OPEN for a refused local port -> OPEN_FAILED errno 111; unknown service -> EPERM
    gw.open(gsess, "dead")
    gw.open(gsess, "nosuch")
    seen = {}
    dl = _deadline(5)
    while len(seen) < 2:
        f = gsess.recv(dl)
        if f.type == OPEN_FAILED:
            seen[f.uint(T_ERRNO)] = f.text(T_TEXT)
        elif f.type == PING:
            gsess.send(PONG, [(T_SEQUENCE, f.get(T_SEQUENCE))])
    assert set(seen) == {errno_mod.ECONNREFUSED, errno_mod.EPERM}, seen
    # PING from the gateway gets a PONG; unknown frame type gets UNSUPPORTED
    gsess.send(PING, [(T_SEQUENCE, u64(77))])
    gsess.send(99, [(T_TEXT, "future frame")])
    got_pong = got_unsup = False
    while not (got_pong and got_unsup):
        f = gsess.recv(dl)
        if f.type == PONG and f.uint(T_SEQUENCE) == 77:
            got_pong = True
        elif f.type == UNSUPPORTED:
            assert f.uint(T_FRAME_TYPE) == 99
            got_unsup = True
        elif f.type == PING:
            gsess.send(PONG, [(T_SEQUENCE, f.get(T_SEQUENCE))])
    gsess.send(GOAWAY, [(T_RECONNECT_AFTER_MS, u32(0)), (T_TEXT, "selftest done")])
    th.join(5)
    assert not th.is_alive()
    assert agent.last_goaway is not None
    # a wrong gateway proof is refused: stub with a different streamer key
    gw2 = _StubGateway(os.urandom(32), files)
    cfg2 = AgentConfig(cfg.host, gw2.port, tls, "self-test", ref, K, [], ca_file=cfg.ca_file)
    try:
        connect_control(cfg2)
        raise AssertionError("wrong gateway proof accepted")
    except BadGatewayProof:
        pass
    gw.close()
    gw2.close()
    echo.close()
    return agent.stats


def selftest():
    import tempfile
    _unit_checks()
    vec = build_vectors()
    _check_vectors_selfconsistent(vec)
    print("vectors: ok")
    with tempfile.TemporaryDirectory() as d:
        for tls in (False, True):
            stats = _selftest_tunnel(d, tls)
            print("stub %s: ok %s" % ("tls" if tls else "plain", json.dumps(stats)))
    return 0


# --------------------------------------------------------------------------------------------
# CLI

def _split_hostport(s):
    if s.startswith("["):
        host, _, port = s[1:].partition("]:")
    else:
        host, _, port = s.rpartition(":")
    if not host or not port.isdigit():
        raise argparse.ArgumentTypeError("want HOST:PORT, got %r" % s)
    return host, int(port)


def _add_conn_args(p):
    p.add_argument("--gateway", required=True, type=_split_hostport, help="HOST:PORT")
    m = p.add_mutually_exclusive_group(required=True)
    m.add_argument("--tls", dest="tls", action="store_true")
    m.add_argument("--plain", dest="tls", action="store_false")
    p.add_argument("--ca", help="CA / pinned certificate file (PEM) for TLS")
    p.add_argument("--insecure", action="store_true", help="TLS without certificate checks")
    p.add_argument("--server-name", help="name to check in the certificate (default: host)")
    p.add_argument("--tls-max", choices=sorted(TLS_MAX_VERSIONS),
                   help="highest TLS version to offer (default: the newest)")
    p.add_argument("--agent-id", required=True)
    p.add_argument("--key-ref", required=True, help="<key id>.<expiry>, e.g. k1.1767225600")
    k = p.add_mutually_exclusive_group(required=True)
    k.add_argument("--key-hex", help="the agent key K (32 bytes hex)")
    k.add_argument("--streamer-key-hex", help="derive K from this streamer key")
    p.add_argument("--service", action="append", default=[], help="name=host:port (repeat)")
    p.add_argument("--timeout", type=float, default=HANDSHAKE_TIMEOUT)
    p.add_argument("-v", "--verbose", action="store_true")


def _cfg_from_args(a):
    host, port = a.gateway
    if a.key_hex:
        key = bytes.fromhex(a.key_hex)
    else:
        key = derive_agent_key(bytes.fromhex(a.streamer_key_hex), a.agent_id, a.key_ref)
    return AgentConfig(host, port, a.tls, a.agent_id, a.key_ref, key, a.service, a.ca,
                       a.insecure, a.server_name, handshake_timeout=a.timeout,
                       tls_max=a.tls_max)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("vectors", help="print proto/test_vectors.json")
    sub.add_parser("selftest", help="unit checks + plumbing against an in-process stub gateway")
    d = sub.add_parser("derive-key", help="print K (hex)")
    d.add_argument("--streamer-key-hex", required=True)
    d.add_argument("--agent-id", required=True)
    d.add_argument("--key-ref", required=True)
    ag = sub.add_parser("agent", help="serve tunnels to local services; prints 'ready ...'")
    _add_conn_args(ag)
    ag.add_argument("--reconnect", action="store_true", help="reconnect after a lost session")
    ag.add_argument("--status", help="send one STATUS frame with this text after WELCOME")
    hs = sub.add_parser("handshake-only", help="one control handshake; JSON result on stdout")
    _add_conn_args(hs)
    hs.add_argument("--ping", action="store_true", help="also PING and wait for the PONG")
    hs.add_argument("--expect-status", type=int,
                    help="exit 0 only if the upgrade status is this (101 for success)")
    a = ap.parse_args(argv)

    if a.cmd == "vectors":
        json.dump(build_vectors(), sys.stdout, indent=1)
        sys.stdout.write("\n")
        return 0
    if a.cmd == "selftest":
        return selftest()
    if a.cmd == "derive-key":
        print(derive_agent_key(bytes.fromhex(a.streamer_key_hex), a.agent_id, a.key_ref).hex())
        return 0

    cfg = _cfg_from_args(a)
    if a.cmd == "handshake-only":
        res = {"agent_id": cfg.agent_id, "transport": "tls" if cfg.tls else "plain"}
        code = 0
        try:
            t0 = time.monotonic()
            sess = connect_control(cfg)
            res.update(status=101, handshake_ms=round((time.monotonic() - t0) * 1000, 3),
                       welcome=sess.welcome.as_dict(), exporter=sess.exporter.hex(),
                       tls_version=sess.stream.tls_version())
            if a.ping:
                t1 = time.monotonic()
                sess.send(PING, [(T_SEQUENCE, u64(1))])
                dl = _deadline(a.timeout)
                while True:
                    f = sess.recv(dl)
                    if f is None:
                        raise ConnectionError("closed while waiting for PONG")
                    if f.type == PONG and f.uint(T_SEQUENCE) == 1:
                        res["rtt_ms"] = round((time.monotonic() - t1) * 1000, 3)
                        break
                    if f.type == PING:
                        sess.send(PONG, [(T_SEQUENCE, f.get(T_SEQUENCE, u64(0)))])
            sess.close()
        except UpgradeRejected as e:
            res.update(status=e.status, reason=e.reason,
                       body=e.body.decode("utf-8", "replace"))
            code = 2
        except SessionError as e:
            res.update(status=101, error=str(e),
                       frame=e.frame.describe() if e.frame is not None else None)
            code = 3
        except (OSError, TimeoutError, ProtocolError) as e:
            res.setdefault("status", None)
            res["error"] = "%s: %s" % (type(e).__name__, e)
            code = 4
        print(json.dumps(res), flush=True)
        if a.expect_status is not None:
            return 0 if res.get("status") == a.expect_status and (
                a.expect_status != 101 or code == 0) else 1
        return code

    # agent
    import signal
    agent = Agent(cfg, verbose=a.verbose, status_text=a.status)
    signal.signal(signal.SIGTERM, lambda *_: agent.stop())
    signal.signal(signal.SIGINT, lambda *_: agent.stop())
    first = [True]

    def on_ready(sess):
        if first[0]:
            print("ready agent=%s transport=%s" % (cfg.agent_id, sess.stream.transport),
                  flush=True)
            first[0] = False
        else:
            print("reconnected agent=%s" % cfg.agent_id, flush=True)

    if a.reconnect:
        agent.run_forever(on_ready)
        return 0
    try:
        sess = agent.connect()
    except UpgradeRejected as e:
        _log("agent", "upgrade rejected: %d %s" % (e.status, e.reason))
        return 2
    except (OSError, TimeoutError, ProtocolError, SessionError) as e:
        _log("agent", "connect failed: %s: %s" % (type(e).__name__, e))
        return 3
    reason = agent.run_session(sess, on_ready)
    _log("agent", "session ended: %s" % reason)
    return 0 if reason == "stopped" or reason.startswith("goaway") else 1


if __name__ == "__main__":
    sys.exit(main())
