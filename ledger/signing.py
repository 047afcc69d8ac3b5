"""Event MACs: every stored event carries an HMAC-SHA256 made at write time with a key kept in
the secrets store, never in the ledger. Someone who can write to the database but does not
hold the key cannot add an event, copy one to another stream or version, or re-date one
without `audit verify` seeing it.

Format ("mlc-mac-v1"). The MAC is the last member of the stored JSON state:

    state  = body[:-1] + ',"mlc_mac":"' + key_id + ':' + hex(mac) + '"}'
    mac    = HMAC-SHA256(key, "mlc-mac-v1" + originator_id (16 raw UUID bytes)
                              + originator_version (8 bytes, big-endian)
                              + len(topic) (4 bytes, big-endian) + topic (UTF-8) + body)

where `body` is the state as encoded without the MAC (an object of at least one member: every
event has a timestamp, which the MAC therefore covers). Key ids are 8 hex digits, so the
suffix has a fixed length. Readers drop the `mlc_mac` member when decoding.

The ledger never imports the secrets store: the composition root hands an `EventKeys` to
`Ledger.use_keys` (runtime.py), and every write path (aggregates, the intake fast path, bulk
saves) goes through the Mapper below.
"""
from __future__ import annotations

import hashlib
import hmac
import re
import uuid
from collections.abc import Callable
from typing import Any, NamedTuple

from eventsourcing.persistence import Mapper, StoredEvent
from eventsourcing.utils import get_topic

from ledger.codec import MAC_FIELD, topic_bytes
_DOMAIN = b"mlc-mac-v1"
_OPEN = b',"' + MAC_FIELD.encode() + b'":"'
KEY_ID_LENGTH = 8
_SUFFIX_LENGTH = len(_OPEN) + KEY_ID_LENGTH + 1 + 64 + 2
_KEY_ID = re.compile(r"[0-9a-f]{8}")


class Seal(NamedTuple):
    """A stored state split into what was MACed and the MAC it carries."""
    body: bytes
    key_id: str
    mac: str


def split(state: bytes) -> Seal | None:
    """The body, key id and MAC of a stored state; None when it carries no MAC."""
    tail = state[-_SUFFIX_LENGTH:]
    if len(state) <= _SUFFIX_LENGTH or not tail.startswith(_OPEN) or not tail.endswith(b'"}'):
        return None
    key_id, _, mac = tail[len(_OPEN):-2].decode("ascii", "replace").partition(":")
    return Seal(state[:-_SUFFIX_LENGTH] + b"}", key_id, mac)


def _header(originator_id: Any, version: int, topic: str) -> bytes:
    """What the MAC covers before the body: domain, stream, version, topic."""
    oid = originator_id if isinstance(originator_id, uuid.UUID) else uuid.UUID(str(originator_id))
    return b"".join((_DOMAIN, oid.bytes, version.to_bytes(8, "big"), topic_bytes(topic)))


class _Hmac:
    """HMAC-SHA256 (RFC 2104) with the key's inner and outer pads hashed once: copying two
    hash states per event costs about half of `hmac.digest`, which sets the key up again on
    every call (measured: it showed on an ingest of tens of thousands of events a second)."""

    def __init__(self, key: bytes) -> None:
        if len(key) > 64:
            key = hashlib.sha256(key).digest()
        key = key.ljust(64, b"\0")
        self._inner = hashlib.sha256(bytes(b ^ 0x36 for b in key))
        self._outer = hashlib.sha256(bytes(b ^ 0x5C for b in key))

    def hexdigest(self, head: bytes, body: Any) -> str:
        inner = self._inner.copy()
        inner.update(head)
        inner.update(body)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.hexdigest()


class EventKeys:
    """The audit keys: id -> 32 secret bytes, and the id new events are MACed with.
    Never printed: repr shows the ids only."""

    def __init__(self, keys: dict[str, bytes], current: str) -> None:
        if current not in keys:
            raise ValueError("the current audit key id is not among the keys")
        for key_id in keys:
            if not _KEY_ID.fullmatch(key_id):
                raise ValueError(f"audit key id {key_id!r} is not {KEY_ID_LENGTH} hex digits")
        self._keys = {key_id: _Hmac(key) for key_id, key in keys.items()}
        self.current = current
        self._open = _OPEN + current.encode() + b":"

    def __repr__(self) -> str:
        return f"EventKeys(current={self.current!r}, ids={sorted(self._keys)!r})"

    @property
    def ids(self) -> list[str]:
        return sorted(self._keys)

    def seal(self, originator_id: Any, version: int, topic: str, body: bytes) -> bytes:
        return self.seal_all([Unsealed(originator_id, version, topic, body)], _no_other)[0].state

    def seal_all(self, events: list[Any], other: Callable[[Any], StoredEvent]
                 ) -> list[StoredEvent | Sealed]:
        """seal() of the Unsealed events among many, in one loop (`other` maps the rest): an
        ingest seals hundreds of thousands, and per event the calls around the two hashes
        cost as much as the hashes."""
        mac = self._keys[self.current]
        inner_key, outer_key, opening = mac._inner, mac._outer, self._open
        stored: list[StoredEvent | Sealed] = []
        for event in events:
            if event.__class__ is not Unsealed:
                stored.append(other(event))
                continue
            originator_id, version, topic, body = event
            if not (body[:1] == b"{" and body[-1:] == b"}" and len(body) > 2):
                raise ValueError("an event's state is a JSON object with at least one member")
            inner = inner_key.copy()
            inner.update(b"".join((_header(originator_id, version, topic), body)))
            outer = outer_key.copy()
            outer.update(inner.digest())
            stored.append(Sealed(originator_id, version, topic, b"".join(
                (body[:-1], opening, outer.hexdigest().encode(), b'"}'))))
        return stored

    def check(self, originator_id: Any, version: int, topic: str, state: bytes) -> str:
        """"" when the event carries a valid MAC, else what is wrong: "unsigned",
        "unknown_key" or "forged"."""
        seal = split(state)
        if seal is None:
            return "unsigned"
        key = self._keys.get(seal.key_id)
        if key is None:
            return "unknown_key"
        expected = key.hexdigest(_header(originator_id, version, topic), seal.body)
        return "" if hmac.compare_digest(expected, seal.mac) else "forged"


class Unsealed(NamedTuple):
    """An event already encoded, handed to `Ledger.save_all` as it is (intake's fast path for
    new invoices builds the stored state directly, without a domain event object): the
    mapper only seals it, with the same MAC, refusal and checks as any other event."""
    originator_id: uuid.UUID
    originator_version: int
    topic: str
    body: bytes


def _no_other(event: Any) -> StoredEvent:
    raise AssertionError("only Unsealed events here")


class Sealed(NamedTuple):
    """What the recorders read of a StoredEvent (same attributes), made for Unsealed events
    by EventKeys.seal_all: a tuple costs a third of the frozen dataclass."""
    originator_id: uuid.UUID
    originator_version: int
    topic: str
    state: bytes


class KeyUnavailable(Exception):
    """The ledger was opened for MACed writes but the audit key could not be read: nothing is
    written rather than events without a MAC."""


class SigningMapper(Mapper):
    """eventsourcing's Mapper, MACing each event's state when keys are set (no compressor or
    cipher: the ledger uses neither). With `refusal` set, every write is refused."""

    keys: EventKeys | None = None
    refusal: str = ""

    def to_stored_events(self, events: list[Any]) -> list[StoredEvent | Sealed]:
        """to_stored_event of each event; Unsealed ones MACed in one loop (EventKeys.seal_all)."""
        if self.refusal:
            raise KeyUnavailable(self.refusal)
        if self.keys is None:
            return [self.to_stored_event(e) for e in events]
        return self.keys.seal_all(events, self.to_stored_event)

    def to_stored_event(self, domain_event: Any) -> StoredEvent:
        if self.refusal:
            raise KeyUnavailable(self.refusal)
        if domain_event.__class__ is Unsealed:
            originator_id, originator_version, topic, body = domain_event
        elif self.keys is None:
            return super().to_stored_event(domain_event)
        else:
            topic = get_topic(domain_event.__class__)
            state = dict(vars(domain_event))
            originator_id = state.pop("originator_id")
            originator_version = state.pop("originator_version")
            class_version = getattr(type(domain_event), "class_version", 1)
            if class_version > 1:
                state["class_version"] = class_version
            body = self.transcoder.encode(state)
        if self.keys is not None:
            body = self.keys.seal(originator_id, originator_version, topic, body)
        return StoredEvent(originator_id=originator_id, originator_version=originator_version,
                           topic=topic, state=body)
