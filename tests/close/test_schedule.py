"""The daemon's schedule read by croniter in connector.timezone: names, @daily, cron's day
rule, and daylight-saving changes in America/New_York and Europe/Berlin."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from adapters.schedule import EARLY_GAP, EARLY_MARGIN, Schedule, ScheduleError, early_cycle_at
from adapters.settings import ConfigError, settings_from_dict

UTC = timezone.utc


def _runs(spec: str, tz: str, start: datetime, n: int) -> list[str]:
    schedule, t, out = Schedule(spec, tz), start, []
    for _ in range(n):
        t = schedule.next_after(t)
        assert t.tzinfo is not None and t.utcoffset().total_seconds() == 0
        out.append(t.astimezone(schedule.tz).isoformat())
    return out


def test_weekday_mornings_stay_at_7_local_across_new_york_spring_forward():
    # 2026-03-08 02:00 EST -> 03:00 EDT: 07:00 local moves from 12:00 to 11:00 UTC
    assert _runs("0 7 * * MON-FRI", "America/New_York", datetime(2026, 3, 5, 12, tzinfo=UTC),
                 3) == ["2026-03-06T07:00:00-05:00", "2026-03-09T07:00:00-04:00",
                        "2026-03-10T07:00:00-04:00"]


def test_a_skipped_local_time_fires_once_right_after_and_a_repeated_one_once():
    # New York: 02:30 does not exist on 2026-03-08; 01:30 happens twice on 2026-11-01
    assert _runs("30 2 * * *", "America/New_York", datetime(2026, 3, 7, 0, tzinfo=UTC), 3) == [
        "2026-03-07T02:30:00-05:00", "2026-03-08T03:00:00-04:00", "2026-03-09T02:30:00-04:00"]
    assert _runs("30 1 * * *", "America/New_York", datetime(2026, 10, 31, 0, tzinfo=UTC),
                 3) == ["2026-10-31T01:30:00-04:00", "2026-11-01T01:30:00-04:00",
                        "2026-11-02T01:30:00-05:00"]


def test_berlin_daily_and_half_hourly_across_both_changes():
    assert _runs("@daily", "Europe/Berlin", datetime(2026, 3, 28, 0, tzinfo=UTC), 3) == [
        "2026-03-29T00:00:00+01:00", "2026-03-30T00:00:00+02:00", "2026-03-31T00:00:00+02:00"]
    # 2026-10-25 03:00 CEST -> 02:00 CET: every half hour keeps firing every 30 minutes
    runs = _runs("*/30 * * * *", "Europe/Berlin", datetime(2026, 10, 25, 0, 10, tzinfo=UTC), 4)
    assert runs == ["2026-10-25T02:30:00+02:00", "2026-10-25T02:00:00+01:00",
                    "2026-10-25T02:30:00+01:00", "2026-10-25T03:00:00+01:00"]


def test_day_of_month_or_day_of_week_and_named_months():
    assert _runs("0 9 1 * MON", "Europe/Berlin", datetime(2026, 1, 1, tzinfo=UTC), 3) == [
        "2026-01-01T09:00:00+01:00", "2026-01-05T09:00:00+01:00", "2026-01-12T09:00:00+01:00"]
    assert _runs("0 9 * JAN SAT,SUN", "UTC", datetime(2026, 1, 1, tzinfo=UTC), 2) == [
        "2026-01-03T09:00:00+00:00", "2026-01-04T09:00:00+00:00"]


def test_intervals_still_work():
    start = datetime(2026, 1, 1, tzinfo=UTC)
    assert Schedule("15m", "Europe/Berlin").next_after(start) == datetime(2026, 1, 1, 0, 15,
                                                                           tzinfo=UTC)


@pytest.mark.parametrize("spec", ["99 99 * * *", "0 7 * * FUNDAY", "@sometimes", "0 7 * *",
                                  "0 0 31 2 *"])
def test_bad_lines_are_refused(spec):
    with pytest.raises(ScheduleError):
        Schedule(spec)


def test_config_takes_named_cron_and_timezone_and_refuses_an_unknown_zone():
    base = {"connector": {"company": "10", "schedule": "0 7 * * MON-FRI",
                          "timezone": "America/New_York"}}
    settings = settings_from_dict(base, source="c.toml")
    assert settings.connector.timezone == "America/New_York"
    settings_from_dict({"connector": {"company": "10", "schedule": "@daily"}})
    with pytest.raises(ConfigError, match="`connector.timezone`: 'Mars/Olympus'"):
        settings_from_dict({"connector": {"company": "10", "timezone": "Mars/Olympus"}},
                           source="c.toml")


def test_an_early_cycle_comes_just_after_a_young_file_is_old_enough_and_before_the_tick():
    now = datetime(2026, 12, 1, 9, 0, 0, tzinfo=UTC)
    tick = Schedule("*/15 6-20 * * MON-FRI", "Europe/Berlin").next_after(now)
    assert tick == datetime(2026, 12, 1, 9, 15, tzinfo=UTC)
    ready = now + timedelta(seconds=25)
    assert early_cycle_at(ready, now, tick) == ready + EARLY_MARGIN
    assert early_cycle_at(None, now, tick) is None                  # nothing was too young


def test_an_early_cycle_never_follows_a_cycle_closer_than_the_gap():
    now = datetime(2026, 12, 1, 9, 0, 0, tzinfo=UTC)
    ready_already = now - timedelta(seconds=3)
    assert early_cycle_at(ready_already, now, now + timedelta(hours=1)) == now + EARLY_GAP


def test_a_file_old_enough_only_after_the_tick_waits_for_the_schedule():
    now = datetime(2026, 12, 1, 9, 0, 0, tzinfo=UTC)
    tick = now + timedelta(minutes=1)
    from_the_future = now + timedelta(days=1)                        # server clock ahead
    assert early_cycle_at(from_the_future, now, tick) is None
    # nor is a cycle worth running a moment before the tick that comes anyway
    assert early_cycle_at(tick - EARLY_GAP, now, tick) is None
