"""/healthz and /metrics: what the ledger's views and the last cycle say, plus the counters
this process keeps (IFS answers by status, 429s, limiter wait, SFTP poll errors: these count
only cycles run by this process, i.e. `run --serve`)."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from adapters.cycle_record import read_cycle
from adapters.schedule import Schedule
from ledger.status import STATES
from projections.workspace import failure_kinds
from web.keys import COUNTERS, RT


def schedule_interval(schedule: Schedule, now: datetime) -> timedelta:
    first = schedule.next_after(now)
    return schedule.next_after(first) - first


def health(rt: Any, now: datetime | None = None) -> tuple[bool, str]:
    """(healthy, what is wrong or what is right) from the last cycle on record."""
    now = now or datetime.now(timezone.utc)
    cycle = read_cycle(rt.settings.data_dir)
    connector = rt.settings.connector
    interval = schedule_interval(Schedule(connector.schedule, connector.timezone), now)
    if cycle is None:
        return False, "no cycle has run yet (start `ml-connector run`, or run `sync`)"
    last_ok = cycle.get("last_success_at")
    if not last_ok:
        return False, f"no cycle has succeeded yet; last errors: {'; '.join(cycle['errors'])}"
    age = now - datetime.fromisoformat(last_ok)
    if age > 2 * interval:
        why = f"; the last cycle failed: {'; '.join(cycle['errors'])}" if not cycle["ok"] else ""
        return False, (f"the last successful cycle was at {last_ok}, {int(age.total_seconds())}s"
                       f" ago, more than twice the schedule interval"
                       f" ({int(interval.total_seconds())}s){why}")
    return True, f"ok: last successful cycle at {last_ok}"


async def healthz(request: web.Request) -> web.Response:
    ok, text = health(request.app[RT])
    return web.Response(status=200 if ok else 503, text=text + "\n")


class ProcessCounters:
    """Fed after each cycle this process runs (Runtime.cycle_observers)."""

    def __init__(self) -> None:
        self.ifs_by_status: dict[str, int] = {}
        self.limiter_wait = 0.0
        self.poll_errors = 0
        self.cycles = 0

    def observe(self, summary: dict[str, Any], pipeline: Any) -> None:
        self.cycles += 1
        self.poll_errors += summary.get("poll_errors", 0) + (0 if summary["sftp_ok"] else 1)
        odata = getattr(pipeline.erp, "odata", None)
        if odata is not None:            # the erp lives as long as the daemon: totals
            self.ifs_by_status = dict(getattr(odata, "by_status", {}))
        limiter = getattr(pipeline.erp, "limiter", None)
        if limiter is not None:
            self.limiter_wait = float(limiter.waited)


class _Collector:
    def __init__(self, rt: Any, counters: ProcessCounters) -> None:
        self.rt, self.counters = rt, counters

    def collect(self):
        rt = self.rt
        counts = rt.state_counts()
        states = GaugeMetricFamily("mlc_invoices", "Invoices by current state", labels=["state"])
        for state in dict.fromkeys((*STATES, *counts)):
            states.add_metric([state], counts.get(state, 0))
        yield states
        yield GaugeMetricFamily("mlc_invoices_posted", "Invoices posted to IFS",
                                value=counts.get("posted", 0))
        with rt.projector.store.transaction() as cur:
            kinds = failure_kinds(cur)
        failures = GaugeMetricFamily("mlc_failures", "Open failures by kind", labels=["kind"])
        for kind in dict.fromkeys(("data", "reference", "transient", "rejected", "conflict",
                                   *kinds)):
            failures.add_metric([kind], kinds.get(kind, 0))
        yield failures
        cycle = read_cycle(rt.settings.data_dir) or {}
        if cycle:
            yield GaugeMetricFamily("mlc_cycle_duration_seconds", "Duration of the last cycle",
                                    value=cycle.get("duration_seconds", 0))
        if cycle.get("last_success_at"):
            stamp = datetime.fromisoformat(cycle["last_success_at"]).timestamp()
            yield GaugeMetricFamily("mlc_last_success_timestamp_seconds",
                                    "When the last successful cycle ended", value=stamp)
        c = self.counters
        by_status = CounterMetricFamily("mlc_ifs_requests", "IFS requests by answer status",
                                        labels=["status"])
        for status, n in sorted(c.ifs_by_status.items()):
            by_status.add_metric([status], n)
        yield by_status
        yield CounterMetricFamily("mlc_ifs_429", "HTTP 429 answers received from IFS",
                                  value=c.ifs_by_status.get("429", 0))
        yield CounterMetricFamily("mlc_limiter_wait_seconds",
                                  "Time spent waiting for the IFS rate budget",
                                  value=c.limiter_wait)
        yield CounterMetricFamily("mlc_sftp_poll_errors", "SFTP poll errors", value=c.poll_errors)


async def metrics(request: web.Request) -> web.Response:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collector(request.app[RT], request.app[COUNTERS]))
    return web.Response(body=generate_latest(registry),
                        headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"})
