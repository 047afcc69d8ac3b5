"""The ledger as data: every event in notification order, written as `audit export` writes
it (and the streaming writer `audit register` shares)."""
from __future__ import annotations

from datetime import datetime, timezone
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TextIO

import orjson

from ledger.app import Ledger
from projections.csvsafe import csv_line
from projections.redact import redacted
from projections.runner import decode_notifications

CSV_FIELDS = ("position", "stream_id", "stream", "version", "type", "recorded_at",
              "connector_version", "data")


def iter_events(ledger: Ledger, since: str = "", until: str = "",
                page_size: int = 2000) -> Iterator[dict[str, Any]]:
    """Events with since <= recorded_at < until (ISO strings; a date means its midnight UTC),
    password hashes shown as a marker (projections/redact.py)."""
    start = 1
    while True:
        page = ledger.recorder.select_notifications(start, page_size)
        if not page:
            return
        for event in decode_notifications(page):
            if since and event.recorded_at < since:
                continue
            if until and event.recorded_at >= until:
                continue
            data = redacted({k: v for k, v in event.data.items()
                             if k not in ("timestamp", "originator_topic", "connector_version")})
            yield {"position": event.position, "stream_id": event.stream_id,
                   "stream": event.topic.split(".")[1], "version": event.version,
                   "type": event.type, "recorded_at": event.recorded_at,
                   "connector_version": event.data.get("connector_version", ""), "data": data}
        start = page[-1].id + 1


def to_jsonl(event: dict[str, Any]) -> str:
    return orjson.dumps(event).decode() + "\n"


def csv_header() -> str:
    return csv_line(CSV_FIELDS)


def to_csv(event: dict[str, Any]) -> str:
    values = [event[f] for f in CSV_FIELDS[:-1]] + [orjson.dumps(event["data"]).decode()]
    return csv_line(values)


Row = dict[str, Any]


def write_rows(handle: TextIO, rows: Iterable[Row], line: Callable[[Row], str],
               header: str = "", tick: Callable[[Row], None] | None = None) -> int:
    """`header`, then each row as `line(row)`, calling tick(row) after every 1,000 rows.
    Streams (one row in memory); returns how many rows were written."""
    handle.write(header)
    count = 0
    for row in rows:
        handle.write(line(row))
        count += 1
        if tick and count % 1000 == 0:
            tick(row)
    return count


def write_events(handle: TextIO, ledger: Ledger, since: str, until: str, fmt: str,
                 progress: Callable[[int, int], None] | None = None) -> int:
    """`audit export`: the events in a time range as CSV (`fmt` "csv") or JSON lines, with
    progress(position, last position) as it goes; returns how many were written."""
    def tick(event: Row) -> None:
        if progress:
            progress(event["position"], ledger.recorder.max_notification_id() or 0)

    events = iter_events(ledger, since, until)
    if fmt == "csv":
        return write_rows(handle, events, to_csv, csv_header(), tick)
    return write_rows(handle, events, to_jsonl, "", tick)


def normalize_time(value: str) -> str:
    """'2026-11-06' -> '2026-11-06T00:00:00+00:00'; full timestamps pass through."""
    if not value:
        return ""
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.astimezone(timezone.utc).isoformat()
