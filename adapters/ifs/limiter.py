"""Rate budget and retry waits, as small named objects whose time tests can control.

IFS tenants enforce a request budget per minute (1000 by default); the emulator enforces it
with a sliding 60-second window. Holding the same window on the client side means that in
steady state the connector never sees a 429 at all.
"""
from __future__ import annotations

import asyncio
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


class SlidingWindowLimiter:
    """At most `limit` requests in any `window` seconds (a true sliding window, not buckets).

    `acquire()` waits until a slot is free and takes it. One limiter is shared by everything
    that talks to one tenant, so reference loads, postings and checks share the budget.
    """

    def __init__(self, limit: int, window: float = 60.0, *, clock: Clock = time.monotonic,
                 sleep: Sleep = asyncio.sleep) -> None:
        if limit < 1:
            raise ValueError("requests_per_minute must be at least 1")
        self.limit = limit
        self.window = window
        self._clock = clock
        self._sleep = sleep
        self._sent: deque[float] = deque()
        self._lock = asyncio.Lock()
        self.waited = 0.0               # total seconds spent waiting (for measurements)

    def _prune(self, now: float) -> None:
        while self._sent and self._sent[0] <= now - self.window:
            self._sent.popleft()

    def in_window(self) -> int:
        self._prune(self._clock())
        return len(self._sent)

    async def acquire(self) -> None:
        async with self._lock:                   # FIFO: waiters keep their order
            while True:
                now = self._clock()
                self._prune(now)
                if len(self._sent) < self.limit:
                    self._sent.append(now)
                    return
                # the oldest send leaves the window at sent[0] + window
                wait = self._sent[0] + self.window - now
                self.waited += max(wait, 0.0)
                await self._sleep(max(wait, 0.001))

    def penalize(self, seconds: float) -> None:
        """The server said 429: treat the window as full for `seconds` so that concurrent
        callers hold back too, not only the one that got the 429."""
        now = self._clock()
        fill = self.limit - len(self._sent)
        # Entries stamped so that they leave the window `seconds` from now.
        stamp = now + seconds - self.window
        for _ in range(max(fill, 0)):
            self._sent.append(stamp)
        # keep the deque ordered (stamps may be older than the newest real send)
        self._sent = deque(sorted(self._sent))


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
