"""How events are stored: the one place for serialization.

Event state is JSON-native by design (decimals are strings, ids are strings), so orjson
writes it directly; only the aggregate's built-in fields need care: `timestamp` (datetime)
goes back to a datetime when read. Upcasters live beside the event classes (class_version +
upcast_vN_vN+1) and run in eventsourcing's Mapper after this decode.
"""
from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

import orjson
from eventsourcing.persistence import Transcoder

_OPTIONS = orjson.OPT_NON_STR_KEYS


def _default(obj: Any) -> Any:
    if isinstance(obj, Decimal):
        return format(obj, "f")
    if isinstance(obj, (set, frozenset)):
        return sorted(obj)
    raise TypeError(f"cannot store {type(obj).__name__} in the ledger")


def encode(obj: Any) -> bytes:
    return orjson.dumps(obj, default=_default, option=_OPTIONS)


def decode_state(data: bytes) -> dict[str, Any]:
    """Raw stored state as plain JSON data (projections read this: no event objects built)."""
    return orjson.loads(data)


class OrjsonTranscoder(Transcoder):
    def encode(self, obj: Any) -> bytes:
        return encode(obj)

    def decode(self, data: bytes) -> Any:
        state = orjson.loads(data)
        timestamp = state.get("timestamp")
        if isinstance(timestamp, str):
            state["timestamp"] = datetime.fromisoformat(timestamp)
        return state


def event_type(topic: str) -> str:
    """`ml_connector.invoice.Posted` -> `Posted`: the name a person reads in history."""
    return topic.rsplit(".", 1)[-1]


def jsonable(obj: Any) -> Any:
    """Plain data for CLI output (UUIDs and datetimes as strings)."""
    return orjson.loads(orjson.dumps(obj, default=_jsonable_default))


def _jsonable_default(obj: Any) -> Any:
    if isinstance(obj, (UUID, Decimal)):
        return str(obj)
    return _default(obj)
