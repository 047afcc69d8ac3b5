"""The event MAC format, held to the module docstring with the standard library's hmac: an
auditor can recompute every MAC from the key and the stored rows alone."""
from __future__ import annotations

import hashlib
import hmac
import uuid

import orjson
import pytest

from adapters.audit_keys import AuditKeyRing
from ledger.codec import OrjsonTranscoder, decode_state
from ledger.signing import EventKeys, split

OID = uuid.UUID("3652cd47-64ea-5590-a7c7-dc3112c31820")
TOPIC = "ml_connector.invoice.Posted"
BODY = b'{"timestamp":"2026-11-24T02:05:06+00:00","ifs_invoice_id":"1005"}'


def documented_mac(key: bytes, oid: uuid.UUID, version: int, topic: str, body: bytes) -> str:
    t = topic.encode()
    message = (b"mlc-mac-v1" + oid.bytes + version.to_bytes(8, "big")
               + len(t).to_bytes(4, "big") + t + body)
    return hmac.new(key, message, hashlib.sha256).hexdigest()


@pytest.mark.parametrize("key", [b"\x07" * 32, b"k" * 100], ids=["32 bytes", "longer"])
def test_a_sealed_state_is_the_body_plus_the_documented_mac(key):
    keys = EventKeys({"0a1b2c3d": key}, "0a1b2c3d")
    state = keys.seal(OID, 7, TOPIC, BODY)
    mac = documented_mac(key, OID, 7, TOPIC, BODY)
    assert state == BODY[:-1] + b',"mlc_mac":"0a1b2c3d:' + mac.encode() + b'"}'
    assert split(state) == (BODY, "0a1b2c3d", mac)
    assert orjson.loads(state)["mlc_mac"] == f"0a1b2c3d:{mac}"
    # Readers never see it: it is not part of what the event says.
    assert decode_state(state) == orjson.loads(BODY)
    assert "mlc_mac" not in OrjsonTranscoder().decode(state)


def test_check_names_what_is_wrong():
    keys = EventKeys({"0a1b2c3d": b"\x07" * 32}, "0a1b2c3d")
    state = keys.seal(OID, 7, TOPIC, BODY)
    assert keys.check(OID, 7, TOPIC, state) == ""
    assert keys.check(str(OID), 7, TOPIC, state) == ""             # PostgreSQL's text form
    assert keys.check(OID.hex, 7, TOPIC, state) == ""              # SQLite's
    assert keys.check(OID, 8, TOPIC, state) == "forged"            # another version
    assert keys.check(uuid.uuid4(), 7, TOPIC, state) == "forged"   # another stream
    assert keys.check(OID, 7, TOPIC + "x", state) == "forged"      # another type
    assert keys.check(OID, 7, TOPIC, state.replace(b"2026", b"2025")) == "forged"  # re-dated
    assert keys.check(OID, 7, TOPIC, BODY) == "unsigned"
    other = EventKeys({"99999999": b"\x07" * 32}, "99999999")
    assert other.check(OID, 7, TOPIC, state) == "unknown_key"


def test_keys_are_never_shown():
    key = b"\x42" * 32
    keys = EventKeys({"0a1b2c3d": key}, "0a1b2c3d")
    ring = AuditKeyRing("0a1b2c3d", {"0a1b2c3d": key})
    for text in (repr(keys), str(keys), repr(ring), str(ring)):
        assert "0a1b2c3d" in text
        assert key.hex() not in text and "QkJC" not in text and "\\x42" not in text


@pytest.mark.parametrize("bad", [{}, {"ab": b"k"}, {"0A1B2C3D": b"k"}])
def test_key_ids_are_eight_lowercase_hex_digits(bad):
    with pytest.raises(ValueError):
        EventKeys(bad, next(iter(bad), "0a1b2c3d"))
