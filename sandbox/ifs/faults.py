"""Fault injection and the rate budget.

A fault answers the next N matching requests with an error (429, 503 MI_MODIFIED_ERROR,
423 FND_LOCKED, 504 ODP_OPERATION_TIMEOUT, or any status/code), or lets the next N matching
writes commit and then drops the connection before the answer, so the client sees a
connection error for a write that really happened.
"""
from __future__ import annotations

import itertools
import math
from collections import deque
from dataclasses import asdict, dataclass
from typing import Any

from .auth import Clock

WRITE_METHODS = ("POST", "PATCH", "PUT", "DELETE", "MERGE")

# kind -> (status, code, message) for the named error faults.
PRESETS: dict[str, tuple[int, str, str]] = {
    "rate_limit": (429, "ODP_TOO_MANY_REQUESTS", "Too many requests: the rate limit is "
                   "exceeded."),
    "mi_modified": (503, "MI_MODIFIED_ERROR", "The projection metadata was modified; the "
                    "cache is being refreshed. Retry the request."),
    "locked": (423, "FND_LOCKED", "The record is locked by another user."),
    "timeout": (504, "ODP_OPERATION_TIMEOUT", "The operation timed out."),
}


@dataclass
class Fault:
    id: int
    kind: str                          # a PRESETS name, "error", or "drop"
    count: int | None = 1              # remaining matches; None = until cleared
    method: str | None = None          # "POST" or "POST,PATCH"; None = any (writes for drop)
    path: str | None = None            # substring of the path and query
    status: int = 500
    code: str = ""
    message: str = ""
    retry_after: int | None = None     # seconds, for 429s
    hits: int = 0

    def matches(self, method: str, target: str, odata: bool) -> bool:
        if self.count is not None and self.count <= 0:
            return False
        if self.path is None and not odata:     # unscoped faults never hit the token endpoint
            return False
        if self.path is not None and self.path not in target:
            return False
        methods = ([m.strip().upper() for m in self.method.split(",")] if self.method
                   else (list(WRITE_METHODS) if self.kind == "drop" else None))
        return methods is None or method.upper() in methods

    def consume(self) -> None:
        self.hits += 1
        if self.count is not None:
            self.count -= 1


class Faults:
    def __init__(self) -> None:
        self.active: list[Fault] = []
        self._ids = itertools.count(1)

    def add(self, kind: str, count: int | None = 1, *, method: str | None = None,
            path: str | None = None, status: int | None = None, code: str | None = None,
            message: str | None = None, retry_after: int | None = None) -> Fault:
        if kind in PRESETS:
            p_status, p_code, p_message = PRESETS[kind]
        elif kind in ("error", "drop"):
            p_status, p_code, p_message = 500, "ODP_INTERNAL_ERROR", "Injected error."
        else:
            raise ValueError(f"unknown fault kind {kind!r}")
        if kind == "error" and status is None:
            raise ValueError("an 'error' fault needs a status")
        fault = Fault(next(self._ids), kind, count, method, path, status or p_status,
                      code or p_code, message or p_message, retry_after)
        self.active.append(fault)
        return fault

    def take(self, method: str, target: str, *, odata: bool = True,
             scoped_only: bool = False) -> Fault | None:
        """The first error fault matching this request, consumed. `scoped_only`: only faults
        with a path (an operation inside a $batch; unscoped ones hit the whole batch)."""
        return self._take(method, target, odata, False, scoped_only)

    def take_drop(self, method: str, target: str) -> Fault | None:
        return self._take(method, target, True, True, False)

    def _take(self, method: str, target: str, odata: bool, drop: bool,
              scoped_only: bool) -> Fault | None:
        for fault in self.active:
            if scoped_only and fault.path is None:
                continue
            if (fault.kind == "drop") == drop and fault.matches(method, target, odata):
                fault.consume()
                return fault
        return None

    def clear(self) -> None:
        self.active.clear()

    def listing(self) -> list[dict[str, Any]]:
        return [asdict(f) for f in self.active]


def fault_body(fault: Fault) -> tuple[int, dict[str, Any], dict[str, str]]:
    headers = {}
    if fault.retry_after is not None:
        headers["Retry-After"] = str(fault.retry_after)
    return fault.status, {"error": {"code": fault.code, "message": fault.message}}, headers


class Budget:
    """Sliding-window request budget: at most `limit` requests in any `window` seconds."""

    def __init__(self, clock: Clock, limit: int = 1000, window: float = 60.0) -> None:
        self.clock, self.limit, self.window = clock, limit, window
        self.times: deque[float] = deque()
        self.send_retry_after = True     # False: a mode where 429s omit Retry-After

    def admit(self) -> int | None:
        """None when admitted (and counted), else the seconds until a slot frees."""
        now = self.clock.now()
        while self.times and self.times[0] <= now - self.window:
            self.times.popleft()
        if len(self.times) >= self.limit:
            return max(1, math.ceil(self.times[0] + self.window - now))
        self.times.append(now)
        return None

    def reset(self) -> None:
        self.times.clear()
