"""One exchange with IFS as data: the reply, the URL encoding, and the record kept of it.

Every exchange can be recorded into a list the caller passes (`record=`): method, url,
request headers that matter (never Authorization), request body, status, response body, ETag.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote

import orjson

JSON = "application/json;IEEE754Compatible=true"
_PATH_SAFE = "/'(),=$.:@-_~!*;+"
_RECORDED_HEADERS = ("If-Match", "Prefer", "Content-Type", "Content-ID")


@dataclass(frozen=True)
class Request:
    """What ODataClient.send was asked to do; the same on every try."""
    method: str
    url: str
    what: str                                   # "posting invoice 17", for messages
    projection: str
    body: bytes | None
    headers: dict[str, str]                     # without Authorization
    write: bool
    ok_statuses: tuple[int, ...]
    record: list[dict[str, Any]] | None
    expect: str


class Reply:
    __slots__ = ("status", "headers", "body", "parsed")

    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body
        self.parsed: Any = None                 # the JSON, once send() checked it

    def json(self) -> Any:
        if self.parsed is not None:
            return self.parsed
        return orjson.loads(self.body) if self.body.strip() else None

    @property
    def etag(self) -> str:
        return self.headers.get("etag", "")


def encode_path(path: str) -> str:
    """Percent-encode a path (key predicates keep their quotes, commas and parentheses)."""
    return quote(path, safe=_PATH_SAFE)


def encode_query(params: dict[str, str]) -> str:
    return "&".join(f"{k}={quote(str(v), safe=chr(39) + '(),$:/')}" for k, v in params.items())


def record_exchange(request: Request, status: int, response: bytes, etag: str,
                    started: float) -> None:
    if request.record is None:
        return
    request.record.append({
        "at": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
        "method": request.method,
        "url": request.url,
        "request_headers": {k: v for k, v in request.headers.items()
                            if k in _RECORDED_HEADERS},
        "request_body": (request.body.decode("utf-8", "replace") if request.body is not None
                         else None),
        "status": status,
        "response_body": response.decode("utf-8", "replace"),
        "etag": etag,
        "elapsed_ms": round((time.monotonic() - started) * 1000, 1),
    })


def without_bodies(exchange: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in exchange.items() if k not in ("request_body", "response_body")}
