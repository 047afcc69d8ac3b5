"""How events are stored: the one place for serialization.

Event state is JSON-native by design (decimals are strings, ids are strings), so orjson
writes it directly; only the aggregate's built-in fields need care: `timestamp` (datetime)
goes back to a datetime when read. Upcasters live beside the event classes (class_version +
upcast_vN_vN+1) and run in eventsourcing's Mapper after this decode.
"""
from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from functools import lru_cache
from typing import Any

import orjson
from eventsourcing.persistence import Transcoder
from eventsourcing.utils import TopicError, resolve_topic

_OPTIONS = orjson.OPT_NON_STR_KEYS
MAC_FIELD = "mlc_mac"                  # see ledger/signing.py
_TOPICS: dict[str, bytes] = {}          # topic -> its length-prefixed bytes (a few dozen)


def topic_bytes(topic: str) -> bytes:
    """A topic as the MACs and the audit chain cover it: its UTF-8 length in 4 bytes,
    big-endian, then the UTF-8."""
    t = _TOPICS.get(topic)
    if t is None:
        raw = topic.encode()
        t = len(raw).to_bytes(4, "big") + raw
        if len(_TOPICS) < 1000:                # a tampered table cannot grow it unbounded
            _TOPICS[topic] = t
    return t


def _default(obj: Any) -> Any:
    if isinstance(obj, Decimal):
        return format(obj, "f")
    if isinstance(obj, (set, frozenset)):
        return sorted(obj)
    raise TypeError(f"cannot store {type(obj).__name__} in the ledger")


def encode(obj: Any) -> bytes:
    return orjson.dumps(obj, default=_default, option=_OPTIONS)


def decode_state(data: bytes) -> dict[str, Any]:
    """Raw stored state as plain JSON data (projections read this: no event objects built),
    without the event's MAC (ledger/signing.py), which is not part of its data."""
    state = orjson.loads(data)
    state.pop(MAC_FIELD, None)
    return state


class OrjsonTranscoder(Transcoder):
    def encode(self, obj: Any) -> bytes:
        return encode(obj)

    def decode(self, data: bytes) -> Any:
        state = orjson.loads(data)
        state.pop(MAC_FIELD, None)
        timestamp = state.get("timestamp")
        if isinstance(timestamp, str):
            state["timestamp"] = datetime.fromisoformat(timestamp)
        return state


@lru_cache(maxsize=None)            # a few dozen topics; called once per event read
def event_type(topic: str) -> str:
    """`ml_connector.invoice.Posted` -> `Posted`: the name a person reads in history."""
    return topic.rsplit(".", 1)[-1]


@lru_cache(maxsize=None)
def _event_class(topic: str) -> Any:
    try:
        return resolve_topic(topic)
    except TopicError:
        return None


@lru_cache(maxsize=None)
def current_version(topic: str) -> int:
    cls = _event_class(topic)
    return getattr(cls, "class_version", 1) if cls is not None else 1


def upcast(topic: str, state: dict[str, Any]) -> dict[str, Any]:
    """Bring raw stored state up to the current class version (as the Mapper does)."""
    from_version = state.pop("class_version", 1)
    to_version = current_version(topic)
    cls = _event_class(topic) if from_version < to_version else None
    while from_version < to_version:
        getattr(cls, f"upcast_v{from_version}_v{from_version + 1}")(state)
        from_version += 1
    return state
