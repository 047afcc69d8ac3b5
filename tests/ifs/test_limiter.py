"""Sliding-window limiter and backoff, on a fake clock: no real waiting."""
from __future__ import annotations

import asyncio

from adapters.ifs.limiter import Backoff, SlidingWindowLimiter, no_wait_backoff


class FakeTime:
    def __init__(self):
        self.now = 0.0
        self.slept: list[float] = []

    def clock(self):
        return self.now

    async def sleep(self, seconds):
        self.slept.append(seconds)
        self.now += seconds


def test_limiter_holds_the_budget_in_every_window():
    t = FakeTime()
    limiter = SlidingWindowLimiter(10, 60.0, clock=t.clock, sleep=t.sleep)
    stamps = []

    async def run():
        for _ in range(35):
            async with limiter.slot():
                stamps.append(t.now)
                t.now += 0.5                   # the request takes half a second

    asyncio.run(run())
    for start in stamps:                       # no 60 s window holds more than 10 sends
        assert sum(1 for s in stamps if start <= s < start + 60.0) <= 10
    # the 11th waited until 60 s after the 1st COMPLETED (it arrived somewhere in between)
    assert stamps[10] >= stamps[0] + 0.5 + 60.0
    assert limiter.waited > 0


def test_limiter_no_wait_under_budget():
    t = FakeTime()
    limiter = SlidingWindowLimiter(100, 60.0, clock=t.clock, sleep=t.sleep)

    async def run():
        for _ in range(100):
            limiter.release(await limiter.acquire())

    asyncio.run(run())
    assert t.slept == [] and limiter.in_window() == 100


def test_penalize_holds_everyone_back():
    t = FakeTime()
    limiter = SlidingWindowLimiter(100, 60.0, clock=t.clock, sleep=t.sleep)
    limiter.penalize(5.0)

    async def run():
        await limiter.acquire()

    asyncio.run(run())
    assert 4.9 <= t.now <= 5.1


def test_requests_in_flight_hold_their_slot_until_they_finish():
    t = FakeTime()
    limiter = SlidingWindowLimiter(2, 1.0, clock=t.clock, sleep=t.sleep)

    async def run():
        first = await limiter.acquire()
        second = await limiter.acquire()
        waiter = asyncio.create_task(limiter.acquire())
        await asyncio.sleep(0)
        assert not waiter.done()           # both slots in flight: nothing to wait out yet
        t.now = 0.5
        limiter.release(second)            # completes at 0.5
        await waiter
        return first

    asyncio.run(run())
    assert t.now >= 1.5                    # the window counts from completion, not from start


def test_backoff_full_jitter_bounds_and_retry_after():
    b = Backoff(base=1.0, cap=8.0, rng=lambda: 1.0)
    assert [b.wait(n) for n in range(5)] == [1.0, 2.0, 4.0, 8.0, 8.0]
    assert Backoff(base=1.0, cap=8.0, rng=lambda: 0.0).wait(3) == 0.0
    assert b.wait(0, retry_after=7) == 7
    assert Backoff(max_retry_after=10).wait(0, retry_after=3600) == 10
    assert Backoff.parse_retry_after("3") == 3.0
    assert Backoff.parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") is None
    zero = no_wait_backoff()
    assert zero.wait(5) == 0 and zero.wait(0, retry_after=30) == 0
