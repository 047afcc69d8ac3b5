"""Resource paths: segments, key predicates (`Set(Company='10',InvoiceId=4711)`), keyrefs."""
from __future__ import annotations

import re
from typing import Any

from .errors import bad_request
from .schema import INT, EntityDef

_NUMBER = re.compile(r"-?\d+")
_SEGMENT = re.compile(r"^([A-Za-z_$][\w.$]*)(\((.*)\))?$", re.S)


def split_segments(path: str) -> list[str]:
    """Split on '/' outside quoted literals (a key may contain '/')."""
    out, cur, quoted = [], [], False
    for ch in path:
        if ch == "'":
            quoted = not quoted    # a doubled '' toggles twice: still correct
        if ch == "/" and not quoted:
            out.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    out.append("".join(cur))
    return [s for s in out if s != ""]


def parse_segment(segment: str) -> tuple[str, str | None]:
    """`Name(predicate)` -> (Name, predicate text) ; `Name` -> (Name, None)."""
    m = _SEGMENT.match(segment)
    if not m:
        raise bad_request(f"Invalid resource path segment {segment!r}.", "ODP_INVALID_URL")
    return m.group(1), m.group(3)


def _split_commas(text: str) -> list[str]:
    out, cur, quoted = [], [], False
    for ch in text:
        if ch == "'":
            quoted = not quoted
        if ch == "," and not quoted:
            out.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    out.append("".join(cur))
    return out


def _literal(text: str, edm: str, name: str) -> Any:
    text = text.strip()
    if edm == INT:
        if not _NUMBER.fullmatch(text):
            raise bad_request(f"Key {name} must be a number, got {text}.", "ODP_INVALID_KEY")
        return int(text)
    if len(text) < 2 or text[0] != "'" or text[-1] != "'":
        raise bad_request(f"Key {name} must be a quoted string, got {text}.", "ODP_INVALID_KEY")
    inner = text[1:-1]
    if "'" in inner.replace("''", ""):
        raise bad_request(f"Unescaped quote in key {name}.", "ODP_INVALID_KEY")
    return inner.replace("''", "'")


def parse_key(edef: EntityDef, predicate: str, fixed: dict[str, Any] | None = None) -> tuple:
    """Key tuple from a predicate. `fixed` holds keys known from a parent segment, which a
    child predicate may repeat or leave out."""
    fixed = dict(fixed or {})
    parts = [p for p in _split_commas(predicate) if p.strip()]
    values: dict[str, Any] = {}
    missing = [k for k in edef.keys if k not in fixed]
    if len(parts) == 1 and "=" not in parts[0].split("'")[0] and len(missing) == 1:
        values[missing[0]] = _literal(parts[0], edef.props[missing[0]], missing[0])
    else:
        for part in parts:
            name, sep, raw = part.partition("=")
            name = name.strip()
            if not sep or name not in edef.keys:
                raise bad_request(f"Invalid key predicate ({predicate}) for {edef.set_name}.",
                                  "ODP_INVALID_KEY")
            values[name] = _literal(raw, edef.props[name], name)
    for name, value in fixed.items():
        if name in values and values[name] != value:
            raise bad_request(f"Key {name} does not match the parent.", "ODP_INVALID_KEY")
        values[name] = value
    if set(values) != set(edef.keys):
        raise bad_request(f"Key predicate ({predicate}) must name {', '.join(edef.keys)}.",
                          "ODP_INVALID_KEY")
    return tuple(values[k] for k in edef.keys)


def format_literal(value: Any) -> str:
    if isinstance(value, int):
        return str(value)
    return "'" + str(value).replace("'", "''") + "'"


def key_predicate(edef: EntityDef, key: tuple) -> str:
    return "(" + ",".join(f"{k}={format_literal(v)}" for k, v in zip(edef.keys, key)) + ")"


def _snake_upper(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).upper()


def keyref(edef: EntityDef, key: tuple) -> str:
    """IFS keyref: `COMPANY=10^INVOICE_ID=4711^`."""
    return "".join(f"{_snake_upper(k)}={v}^" for k, v in zip(edef.keys, key))
