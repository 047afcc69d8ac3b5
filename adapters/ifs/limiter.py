"""Rate budget and retry waits, as small named objects whose time tests can control.

IFS tenants enforce a request budget per minute (1000 by default); the emulator enforces it
with a sliding 60-second window. Holding the same window on the client side means that in
steady state the connector never sees a 429 at all.
"""
from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


class SlidingWindowLimiter:
    """At most `limit` requests in any `window` seconds (a true sliding window, not buckets).

    A request occupies the window from the moment it takes a slot until `window` seconds after
    it COMPLETES (`release`). The tenant counts a request when it arrives, which is somewhere
    in between; counting from completion keeps the client conservative even when a request
    waited for a token or a connection after taking its slot. One limiter is shared by
    everything that talks to one tenant (reference loads, postings, checks).
    """

    def __init__(self, limit: int, window: float = 60.0, *, clock: Clock = time.monotonic,
                 sleep: Sleep = asyncio.sleep) -> None:
        if limit < 1:
            raise ValueError("requests_per_minute must be at least 1")
        self.limit = limit
        self.window = window
        self._clock = clock
        self._sleep = sleep
        self._entries: list[list[Any]] = []       # [stamp, in_flight]
        self._lock = asyncio.Lock()
        self._released = asyncio.Event()
        self.waited = 0.0               # total seconds spent waiting (for measurements)

    def _prune(self, now: float) -> None:
        self._entries = [e for e in self._entries if e[1] or e[0] > now - self.window]

    def in_window(self) -> int:
        self._prune(self._clock())
        return len(self._entries)

    async def acquire(self) -> list[Any]:
        """Wait for a free slot and take it; give it back with `release(slot)`."""
        async with self._lock:                   # FIFO: waiters keep their order
            while True:
                now = self._clock()
                self._prune(now)
                if len(self._entries) < self.limit:
                    slot = [now, True]
                    self._entries.append(slot)
                    return slot
                finished = [e[0] for e in self._entries if not e[1]]
                if finished:                     # the oldest finished one leaves the window
                    wait = min(finished) + self.window - now
                    self.waited += max(wait, 0.0)
                    await self._sleep(max(wait, 0.001))
                else:                            # all in flight: wait for one to finish
                    self._released.clear()
                    await self._released.wait()

    def release(self, slot: list[Any]) -> None:
        slot[0], slot[1] = self._clock(), False
        self._released.set()

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        taken = await self.acquire()
        try:
            yield
        finally:
            self.release(taken)

    def penalize(self, seconds: float) -> None:
        """The server said 429: treat the window as full for `seconds` so that concurrent
        callers hold back too, not only the one that got the 429."""
        stamp = self._clock() + seconds - self.window
        for _ in range(max(self.limit - len(self._entries), 0)):
            self._entries.append([stamp, False])


class Backoff:
    """Exponential backoff with full jitter: wait uniform(0, min(cap, base * 2**attempt)).

    `Retry-After` from the server wins when present (bounded by `max_retry_after`).
    Tests pass base=0 (and a small max_retry_after) to make every wait zero.
    """

    def __init__(self, *, base: float = 0.5, cap: float = 30.0, attempts: int = 6,
                 max_retry_after: float = 120.0,
                 rng: Callable[[], float] = random.random) -> None:
        self.base = base
        self.cap = cap
        self.attempts = attempts          # retries after the first try
        self.max_retry_after = max_retry_after
        self._rng = rng

    def wait(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait before retry number `attempt` (0-based)."""
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_retry_after)
        ceiling = min(self.cap, self.base * (2 ** attempt))
        return self._rng() * ceiling

    @staticmethod
    def parse_retry_after(value: str | None) -> float | None:
        """Retry-After in seconds (the HTTP-date form is not used by IFS; ignored)."""
        if not value:
            return None
        try:
            return float(value.strip())
        except ValueError:
            return None


def no_wait_backoff(attempts: int = 6) -> Backoff:
    """For tests: same policy, zero waits (Retry-After still capped at zero)."""
    return Backoff(base=0.0, cap=0.0, attempts=attempts, max_retry_after=0.0)
