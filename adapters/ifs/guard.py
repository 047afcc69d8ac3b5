"""Bounds on how long and how hard one cycle keeps calling a failing IFS.

A hung or broken IFS must not hold a sync for twenty minutes in silence: each cycle gets a
deadline (`connector.cycle_timeout`), and a circuit breaker opens after `ifs.breaker_after`
consecutive failures of the kind that say "IFS is not working" (timeouts, lost connections,
5xx without an IFS business code, unreadable answers). Once either trips, every further call
in the cycle raises ErpUnavailable at once, without a request; `start_cycle` closes both.
A single request still finishes its own bounded retries: the breaker is looked at before a
request, the deadline before every try.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable

from ledger.ports import ErpUnavailable

log = logging.getLogger("ml_connector.ifs")


class CycleGuard:
    def __init__(self, breaker_after: int = 5, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.breaker_after = max(1, breaker_after)
        self._clock = clock
        self.deadline: float | None = None
        self.timeout = 0.0
        self.failures_in_a_row = 0
        self.last_failure = ""

    def start_cycle(self, timeout: float | None) -> None:
        """A new cycle: the breaker closes, the deadline is `timeout` seconds away (none if
        not positive)."""
        self.failures_in_a_row = 0
        self.last_failure = ""
        self.timeout = timeout or 0.0
        self.deadline = self._clock() + timeout if timeout and timeout > 0 else None

    @property
    def is_open(self) -> bool:
        return self.failures_in_a_row >= self.breaker_after

    def remaining(self) -> float | None:
        return None if self.deadline is None else max(0.0, self.deadline - self._clock())

    def before_request(self, what: str) -> None:
        if self.is_open:
            raise ErpUnavailable(
                "transient", f"IFS not called for {what}: it failed {self.failures_in_a_row} "
                f"times in a row in this cycle (last: {self.last_failure}); the connector stops"
                " calling IFS until the next cycle (`ifs.breaker_after` = "
                f"{self.breaker_after})", code="IFS_BREAKER_OPEN")
        self.before_try(what)

    def before_try(self, what: str) -> None:
        if self.deadline is not None and self._clock() >= self.deadline:
            raise ErpUnavailable(
                "transient", f"the cycle ran out of time (`connector.cycle_timeout` = "
                f"{self.timeout:g}s) before {what}; the connector stops calling IFS until the "
                "next cycle", code="CYCLE_TIMEOUT")

    def failed(self, why: str) -> None:
        self.failures_in_a_row += 1
        self.last_failure = why
        if self.failures_in_a_row == self.breaker_after:
            log.warning("IFS failed %d times in a row (last: %s): no more IFS calls in this "
                        "cycle", self.failures_in_a_row, why)

    def answered(self) -> None:
        self.failures_in_a_row = 0


def is_breakdown(status: int, business_code: str) -> bool:
    """An answer that says IFS itself is not working (counted by the breaker): no answer at
    all, or a 5xx without an IFS business code (a 500 with one is a data error)."""
    if status == 0:
        return True
    return status >= 500 and (status in (502, 503, 504, 599) or not business_code
                              or business_code in ("MI_MODIFIED_ERROR", "ODP_OPERATION_TIMEOUT"))


def bad_answer(status: int, content_type: str, body: bytes, expect: str
               ) -> tuple[str, object]:
    """(what is wrong with a 2xx answer, the parsed JSON). `expect`: "json" (any JSON object
    or an empty body), "entity" (an object with at least one property), "collection" (an
    object with a `value` list), "multipart" ($batch), "" (anything)."""
    import orjson

    if not expect:
        return "", None
    ctype = content_type.split(";")[0].strip().lower()
    if expect == "multipart":
        return ("" if ctype == "multipart/mixed" else "not a multipart/mixed $batch answer"), None
    if status == 204 or not body.strip():
        return ("an empty body" if expect in ("entity", "collection") else ""), None
    if "json" not in ctype:
        return "not JSON", None
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return "a body that does not parse as JSON", None
    if not isinstance(data, dict):
        return "JSON that is not an object", None
    if expect == "entity" and not any(not k.startswith("@") for k in data):
        return f"JSON without the entity's fields ({body[:60].decode('utf-8', 'replace')})", None
    if expect == "collection" and not isinstance(data.get("value"), list):
        return "JSON without a `value` list of entities", None
    return "", data
