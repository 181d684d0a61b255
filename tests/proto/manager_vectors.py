#!/usr/bin/python3
"""Independent implementation of the manager link crypto (PROTOCOL.md section 10).

Written from the text of PROTOCOL.md, with Python's hmac and Debian's python3-cryptography
(ChaCha20Poly1305), so the C++ proto/ code and this file check each other. Importable by the
lifecycle e2e tests (seal/unseal, proofs, factory secrets); as a script it prints the vectors:

  tests/proto/manager_vectors.py > proto/manager_test_vectors.json
"""

import hashlib
import hmac
import json
import struct
import sys

LABEL_MANAGER_PROOF = b"camtunnel/1 manager-proof"
LABEL_MANAGER_AGENT_PROOF = b"camtunnel/1 manager-agent-proof"
LABEL_MANAGER_SESSION_KEY = b"camtunnel/1 manager-session-key"
LABEL_KEY_SEAL = b"camtunnel/1 key-seal"
LABEL_FACTORY_SECRET = b"camtunnel/1 factory-secret"
LABEL_AGENT_KEY = b"camtunnel/1 agent-key"
LABEL_FRAME_MAC = b"camtunnel/1 frame-mac"
TAG_MAC = 255
TYPE_HELLO, TYPE_WELCOME, TYPE_DEACTIVATE = 1, 2, 18
TAG_STREAMER = 18
TYPE_ASSIGN = 16
TYPE_RESTART, TYPE_ACK = 19, 20
TAG_TEXT, TAG_MANAGER, TAG_COMMAND_ID = 12, 19, 20
CAP_COMMAND_ACK = 1 << 4
LABEL_MANAGER_ORDER = b"camtunnel/1 manager-order"


def lp(x):
    if isinstance(x, str):
        x = x.encode()
    assert len(x) <= 0xFFFF
    return struct.pack(">H", len(x)) + x


def hmac_lp(key, *parts):
    return hmac.new(key, b"".join(lp(p) for p in parts), hashlib.sha256).digest()


def manager_proof(secret, agent_id, agent_nonce, manager_nonce, transport, exporter):
    return hmac_lp(secret, LABEL_MANAGER_PROOF, agent_id, agent_nonce, manager_nonce, transport,
                   exporter)


def manager_agent_proof(secret, agent_id, agent_nonce, manager_nonce, transport, exporter):
    return hmac_lp(secret, LABEL_MANAGER_AGENT_PROOF, agent_id, agent_nonce, manager_nonce,
                   transport, exporter)


def manager_session_key(secret, agent_nonce, manager_nonce):
    return hmac_lp(secret, LABEL_MANAGER_SESSION_KEY, agent_nonce, manager_nonce)


def key_seal_key(secret, agent_id):
    return hmac_lp(secret, LABEL_KEY_SEAL, agent_id)


def reactivation_proof(secret, agent_id):
    return hmac_lp(secret, b"camtunnel/1 reactivate", agent_id)


def factory_secret(master, serial):
    return hmac_lp(master, LABEL_FACTORY_SECRET, serial)


def derive_agent_key(streamer_key, agent_id, key_ref):
    key_id, expiry = key_ref.split(".")
    return hmac_lp(streamer_key, LABEL_AGENT_KEY, agent_id, key_id, expiry)


def _aad(agent_id, url, key_ref):
    return lp(LABEL_KEY_SEAL) + lp(agent_id) + lp(url) + lp(key_ref)


def encode_streamer(seal_key, agent_id, url, key_ref, agent_key, nonce):
    from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
    sealed = nonce + ChaCha20Poly1305(seal_key).encrypt(nonce, agent_key,
                                                        _aad(agent_id, url, key_ref))
    return lp(url) + lp(key_ref) + lp(sealed)


def decode_streamer(seal_key, agent_id, value):
    from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
    parts = []
    for _ in range(3):
        (n,) = struct.unpack(">H", value[:2])
        parts.append(value[2:2 + n])
        value = value[2 + n:]
    assert not value and len(parts[2]) == 60
    url, ref = parts[0].decode(), parts[1].decode()
    key = ChaCha20Poly1305(seal_key).decrypt(parts[2][:12], parts[2][12:], _aad(agent_id, url, ref))
    return url, ref, key


LABEL_HANDOVER_MAC = b"camtunnel/1 handover-mac"
LABEL_HANDOVER_SEAL = b"camtunnel/1 handover-seal"
LABEL_HANDOVER_REQUEST = b"camtunnel/1 handover-request"
LABEL_HANDOVER_SECRET = b"camtunnel/1 handover-secret"


def handover_keys(handover_key):
    """(mac key, seal key) of section 10.4."""
    return hmac_lp(handover_key, LABEL_HANDOVER_MAC), hmac_lp(handover_key, LABEL_HANDOVER_SEAL)


def handover_mac(handover_key, body):
    return hmac_lp(handover_keys(handover_key)[0], LABEL_HANDOVER_REQUEST, body)


def seal_handover_secret(handover_key, serial, request_nonce, secret, seal_nonce):
    from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
    aad = lp(LABEL_HANDOVER_SECRET) + lp(serial) + lp(request_nonce)
    return seal_nonce + ChaCha20Poly1305(handover_keys(handover_key)[1]).encrypt(
        seal_nonce, secret, aad)


def open_handover_secret(handover_key, serial, request_nonce, sealed):
    from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
    aad = lp(LABEL_HANDOVER_SECRET) + lp(serial) + lp(request_nonce)
    return ChaCha20Poly1305(handover_keys(handover_key)[1]).decrypt(sealed[:12], sealed[12:], aad)


def manager_order_score(agent_id, url):
    """Section 10.5: first 8 bytes, big-endian, of SHA-256 over the length-prefixed parts."""
    digest = hashlib.sha256(lp(LABEL_MANAGER_ORDER) + lp(agent_id) + lp(url)).digest()
    return struct.unpack(">Q", digest[:8])[0]


def order_managers(agent_id, urls):
    return sorted(set(urls), key=lambda u: (-manager_order_score(agent_id, u), u.encode()))


def frame(ftype, fields):
    payload = b"".join(bytes([tag]) + struct.pack(">H", len(v)) + v for tag, v in fields)
    return bytes([ftype]) + struct.pack(">I", len(payload))[1:] + payload


def frame_mac(session_key, direction, sequence, ftype, payload):
    """Section 7 frame MAC (the manager link uses it with manager_session_key, section 10.2)."""
    return hmac_lp(session_key, LABEL_FRAME_MAC, direction, struct.pack(">Q", sequence),
                   bytes([ftype]), payload)[:16]


def sealed_frame(session_key, direction, sequence, ftype, fields):
    body = frame(ftype, fields)[4:]
    return frame(ftype, list(fields) + [(TAG_MAC, frame_mac(session_key, direction, sequence,
                                                            ftype, body))])


def vectors():
    secret = bytes(range(0x60, 0x80))
    agent_id = "cam-42"
    agent_nonce = bytes(range(0xA0, 0xB0))
    manager_nonce = bytes(range(0xC0, 0xD0))
    exporter = bytes(range(0x40, 0x60))
    streamer_key = bytes(range(0x00, 0x20))
    out = {"manager_proof": [], "manager_agent_proof": [], "manager_session_key": [],
           "key_seal_key": [], "factory_secret": [], "assign": []}
    for transport, exp in (("tls", exporter), ("plain", b"")):
        common = {"secret": secret.hex(), "agent_id": agent_id, "agent_nonce": agent_nonce.hex(),
                  "manager_nonce": manager_nonce.hex(), "transport": transport,
                  "exporter": exp.hex()}
        out["manager_proof"].append(dict(common, proof=manager_proof(
            secret, agent_id, agent_nonce, manager_nonce, transport, exp).hex()))
        out["manager_agent_proof"].append(dict(common, proof=manager_agent_proof(
            secret, agent_id, agent_nonce, manager_nonce, transport, exp).hex()))
    out["manager_session_key"].append({
        "secret": secret.hex(), "agent_nonce": agent_nonce.hex(),
        "manager_nonce": manager_nonce.hex(),
        "session_key": manager_session_key(secret, agent_nonce, manager_nonce).hex()})
    seal = key_seal_key(secret, agent_id)
    out["key_seal_key"].append({"secret": secret.hex(), "agent_id": agent_id,
                                "seal_key": seal.hex()})
    out["reactivation_proof"] = [{"secret": secret.hex(), "agent_id": agent_id,
                                  "proof": reactivation_proof(secret, agent_id).hex()}]
    master = bytes(range(0xE0, 0x100))
    out["factory_secret"].append({"master": master.hex(), "serial": "sn-000123",
                                  "factory_secret": factory_secret(master, "sn-000123").hex()})
    streamers = [("https://gw1.example.com", "k1.1767225600", bytes(range(0x10, 0x1C))),
                 ("http://[::1]:8080", "k2.1767312000", bytes(range(0x20, 0x2C)))]
    fields = []
    entries = []
    for url, ref, nonce in streamers:
        key = derive_agent_key(streamer_key, agent_id, ref)
        value = encode_streamer(seal, agent_id, url, ref, key, nonce)
        assert decode_streamer(seal, agent_id, value) == (url, ref, key)
        fields.append((TAG_STREAMER, value))
        entries.append({"url": url, "key_ref": ref, "agent_key": key.hex(),
                        "seal_nonce": nonce.hex(), "field": value.hex()})
    out["assign"].append({"secret": secret.hex(), "agent_id": agent_id,
                          "streamer_key": streamer_key.hex(), "streamers": entries,
                          "encoded": frame(TYPE_ASSIGN, fields).hex()})
    # A plain manager link (section 10.2): HELLO and WELCOME (sequence 0 each way) and a later
    # DEACTIVATE (the manager's third frame, after WELCOME and ASSIGN), MACed under the session
    # key above.
    skey = manager_session_key(secret, agent_nonce, manager_nonce)
    hello_proof = manager_agent_proof(secret, agent_id, agent_nonce, manager_nonce, "plain", b"")
    sealed = [
        ("agent-to-gateway", 0, TYPE_HELLO,
         [(1, hello_proof), (2, struct.pack(">I", 1)), (3, b"camtunnel-agent/0.1.0")]),
        ("gateway-to-agent", 0, TYPE_WELCOME,
         [(2, struct.pack(">I", 1)), (5, struct.pack(">I", 5000)),
          (6, struct.pack(">Q", 1767225600000)), (7, struct.pack(">I", 0))]),
        ("gateway-to-agent", 2, TYPE_DEACTIVATE, [(12, b"deactivated by the operator")]),
    ]
    out["manager_sealed_frames"] = [
        {"secret": secret.hex(), "agent_nonce": agent_nonce.hex(),
         "manager_nonce": manager_nonce.hex(), "session_key": skey.hex(),
         "direction": direction, "sequence": sequence, "type": ftype,
         "fields": [{"tag": tag, "value": value.hex()} for tag, value in fields],
         "encoded": sealed_frame(skey, direction, sequence, ftype, fields).hex()}
        for direction, sequence, ftype, fields in sealed]
    # The activation hand-over (section 10.4): a request body, its MAC, and the answer's sealed
    # secret for that request's nonce.
    handover_key = bytes(range(0x80, 0xA0))
    request_nonce = bytes(range(0x30, 0x40))
    body = ('{"nonce":"%s","operator":"acme","serial":"sn-000123","ts_ms":1767225600000}'
            % request_nonce.hex()).encode()
    mac_key, seal_key_h = handover_keys(handover_key)
    seal_nonce = bytes(range(0x50, 0x5C))
    sealed_secret = seal_handover_secret(handover_key, b"sn-000123", request_nonce, secret,
                                         seal_nonce)
    assert open_handover_secret(handover_key, b"sn-000123", request_nonce,
                                sealed_secret) == secret
    out["handover"] = [{
        "handover_key": handover_key.hex(), "mac_key": mac_key.hex(),
        "seal_key": seal_key_h.hex(), "body": body.decode(),
        "mac": handover_mac(handover_key, body).hex(), "serial": "sn-000123",
        "request_nonce": request_nonce.hex(), "secret": secret.hex(),
        "seal_nonce": seal_nonce.hex(), "sealed_secret": sealed_secret.hex()}]
    # Several managers (section 10.5): each agent's order of one list, and a WELCOME carrying it.
    managers = ["https://mgr1.example.com:7443", "https://mgr2.example.com:7443",
                "https://mgr3.example.com:7443", "https://mgr4.example.com:7443"]
    out["manager_order"] = [{
        "agent_id": agent, "urls": managers,
        "scores": ["%016x" % manager_order_score(agent, u) for u in managers],
        "order": order_managers(agent, managers)}
        for agent in ("cam-42", "sn-000123", "a")]
    welcome_fields = [(2, struct.pack(">I", 1)), (5, struct.pack(">I", 5000)),
                      (6, struct.pack(">Q", 1767225600000)), (7, struct.pack(">I", 10000))]
    welcome_fields += [(TAG_MANAGER, u.encode()) for u in managers[:2]]
    out["manager_order"][0]["welcome"] = frame(TYPE_WELCOME, welcome_fields).hex()
    out["manager_order"][0]["welcome_managers"] = managers[:2]
    # Commands (section 10.6): a RESTART with a command id, and the agent's ACK of it.
    command_id = 4242
    out["commands"] = [{
        "command_id": command_id, "capability": CAP_COMMAND_ACK,
        "restart": frame(TYPE_RESTART, [(TAG_TEXT, b"restart requested by the operator"),
                                        (TAG_COMMAND_ID, struct.pack(">Q", command_id))]).hex(),
        "ack_text": "done",
        "ack": frame(TYPE_ACK, [(TAG_COMMAND_ID, struct.pack(">Q", command_id)),
                                (TAG_TEXT, b"done")]).hex()}]
    return out


if __name__ == "__main__":
    json.dump(vectors(), sys.stdout, indent=2)
    sys.stdout.write("\n")
