"""When the daemon runs: an interval ("15m") or a five-field cron line
("*/15 6-20 * * 1-5": minute hour day-of-month month day-of-week, 0 = Sunday)."""
from __future__ import annotations

from datetime import datetime, timedelta

from adapters.settings import parse_duration

_RANGES = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 7))


class ScheduleError(ValueError):
    pass


def _field(text: str, low: int, high: int) -> set[int]:
    values: set[int] = set()
    for part in text.split(","):
        step = 1
        if "/" in part:
            part, step_text = part.split("/", 1)
            step = int(step_text)
            if step < 1:
                raise ScheduleError(f"step must be positive in {text!r}")
        if part == "*":
            start, end = low, high
        elif "-" in part:
            start, end = (int(x) for x in part.split("-", 1))
        else:
            start = end = int(part)
        if not (low <= start <= end <= high):
            raise ScheduleError(f"{text!r} is outside {low}-{high}")
        values.update(range(start, end + 1, step))
    return values


class Schedule:
    def __init__(self, spec: str) -> None:
        self.spec = spec.strip()
        self.interval: float | None = None
        try:
            self.interval = parse_duration(self.spec)
            return
        except ValueError:
            pass
        fields = self.spec.split()
        if len(fields) != 5:
            raise ScheduleError(f"schedule {spec!r} is neither a duration (15m) nor a cron line"
                                " of five fields (*/15 6-20 * * 1-5)")
        try:
            self.minutes, self.hours, self.days, self.months, dow = (
                _field(f, *r) for f, r in zip(fields, _RANGES))
        except ValueError as exc:
            raise ScheduleError(f"schedule {spec!r}: {exc}") from None
        self.weekdays = {d % 7 for d in dow}
        self._any_day, self._any_dow = fields[2] == "*", fields[4] == "*"

    def _day_matches(self, t: datetime) -> bool:
        dom, dow = t.day in self.days, (t.isoweekday() % 7) in self.weekdays
        if self._any_day or self._any_dow:       # cron: when one is *, the other decides
            return dom and dow
        return dom or dow

    def next_after(self, now: datetime) -> datetime:
        if self.interval is not None:
            return now + timedelta(seconds=self.interval)
        t = now.replace(second=0, microsecond=0) + timedelta(minutes=1)
        for _ in range(366 * 24 * 60):
            if (t.month in self.months and self._day_matches(t) and t.hour in self.hours
                    and t.minute in self.minutes):
                return t
            t += timedelta(minutes=1)
        raise ScheduleError(f"schedule {self.spec!r} never fires")
