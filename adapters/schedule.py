"""When the daemon runs: an interval ("15m") or a cron line read by croniter: five fields
(minute hour day-of-month month day-of-week), names (`MON-FRI`, `JAN`), `@hourly`/`@daily`/
`@weekly`/`@monthly`, and cron's day rule (when both day fields are restricted, either one
matching is enough). A cron line is read in `connector.timezone`: "0 7 * * MON-FRI" is 07:00
local time before and after a daylight-saving change; a local time that does not exist that
day (skipped by the clock change) fires once at the first instant after it, one that occurs
twice fires once.

Between ticks the daemon may run an early cycle for a file the last cycle skipped only because
it was younger than `min_file_age` (`early_cycle_at`); the ticks themselves do not move."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterError, croniter

from adapters.durations import parse_duration


EARLY_MARGIN = timedelta(seconds=1)   # SFTP mtimes are whole seconds
EARLY_GAP = timedelta(seconds=5)      # an early cycle at least this long after any cycle


def early_cycle_at(ready_at: datetime | None, now: datetime,
                   next_cycle: datetime) -> datetime | None:
    """When to run an extra cycle for files skipped as too young, the first of them old
    enough at `ready_at`: just after that, never within EARLY_GAP of the cycle that just
    ended (so it cannot loop hot), and only when that saves at least EARLY_GAP over the next
    tick. A file old enough only after the next tick (an mtime in the future, the SFTP
    server's clock ahead of ours) waits for the schedule."""
    if ready_at is None:
        return None
    when = max(ready_at + EARLY_MARGIN, now + EARLY_GAP)
    return when if when + EARLY_GAP <= next_cycle else None


class ScheduleError(ValueError):
    pass


class Schedule:
    def __init__(self, spec: str, tz: str = "UTC") -> None:
        self.spec = spec.strip()
        self.interval: float | None = None
        try:
            self.tz = ZoneInfo(tz)
        except (ZoneInfoNotFoundError, ValueError):
            raise ScheduleError(f"{tz!r} is not an IANA time zone") from None
        try:
            self.interval = parse_duration(self.spec)
            return
        except ValueError:
            pass
        fields = self.spec.split()
        if not (self.spec.startswith("@") and len(fields) == 1) and len(fields) != 5:
            raise ScheduleError(f"schedule {spec!r} is neither a duration (15m) nor a cron line"
                                " of five fields (*/15 6-20 * * MON-FRI) or @daily/@hourly")
        try:
            valid = croniter.is_valid(self.spec)
        except (CroniterError, ValueError):
            valid = False
        if not valid:
            raise ScheduleError(f"schedule {spec!r} is not a valid cron line (minute hour"
                                " day-of-month month day-of-week, e.g. */15 6-20 * * MON-FRI)")
        try:
            self.next_after(datetime.now(timezone.utc))
        except (CroniterError, ValueError) as exc:
            raise ScheduleError(f"schedule {spec!r} never fires ({exc})") from None

    def next_after(self, now: datetime) -> datetime:
        """The next run strictly after `now` (an aware datetime), in UTC."""
        if now.tzinfo is None:
            now = now.replace(tzinfo=timezone.utc)
        if self.interval is not None:
            return now + timedelta(seconds=self.interval)
        runs = croniter(self.spec, now.astimezone(self.tz), max_years_between_matches=5)
        while True:
            following = runs.get_next(datetime)
            if not (self._fixed_hours and _second_occurrence(following, self.tz)):
                return following.astimezone(timezone.utc)
            # 01:30 on the night the clock goes back happens twice: a job at a fixed hour
            # runs at the first one only (as cron does); hourly patterns keep both.

    @property
    def _fixed_hours(self) -> bool:
        if self.spec.startswith("@"):
            return self.spec.lower() != "@hourly"
        hours = self.spec.split()[1]
        return "*" not in hours and "/" not in hours


def _second_occurrence(moment: datetime, tz: ZoneInfo) -> bool:
    """True when this wall-clock time happened earlier that night with another offset."""
    first = moment.replace(tzinfo=None).replace(tzinfo=tz, fold=0)
    return first.utcoffset() != moment.utcoffset()
