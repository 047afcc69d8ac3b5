"""The last cycle, as the workspace's overview and /healthz need it: when it ran, how long it
took, what it moved, its errors, whether SFTP and IFS answered. A cycle is not an event (it
changes nothing by itself), so it is kept beside the ledger in data_dir/last_cycle.json,
written whole (rename) by whichever process ran the cycle (`sync`, `run`)."""
from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path
from typing import Any

FILE = "last_cycle.json"


def moved_sentence(moved: dict[str, int]) -> str:
    """What a cycle moved, for its `cycle done` log line."""
    return ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in sorted(moved.items())) \
        or "nothing moved"


def cycle_summary(report: Any, started_at: str, finished_at: str, duration: float) -> dict:
    errors = list(report.errors)
    poll_errors = list((report.poll or {}).get("errors", []))
    return {
        "started_at": started_at, "finished_at": finished_at,
        "duration_seconds": round(duration, 3),
        "moved": dict(report.moved), "failed": len(report.failed),
        "errors": errors, "poll_errors": len(poll_errors),
        # Reachability as this cycle found it: a whole-source error names the system.
        "sftp_ok": not any(e.startswith("Stampli SFTP") for e in errors),
        "ifs_ok": not any(e.startswith("IFS") for e in errors),
        "ok": not errors,
    }


def write_cycle(data_dir: Path, summary: dict) -> None:
    """Keep the summary; the last successful one stays known after a failed cycle."""
    path = Path(data_dir) / FILE
    previous = read_cycle(data_dir) or {}
    record = dict(summary)
    record["last_success_at"] = summary["finished_at"] if summary["ok"] \
        else previous.get("last_success_at")
    _write(path, record)


def note_next_run(data_dir: Path, when: datetime) -> None:
    """What the daemon plans after a cycle: the next tick, or an early cycle for a file that
    was too young (adapters/schedule.py). Dropped when another cycle (`sync`) is recorded."""
    record = read_cycle(data_dir)
    if record is not None:
        record["next_run_at"] = when.isoformat()
        _write(Path(data_dir) / FILE, record)


def next_run(cycle: dict | None, after_finished: Any, now: datetime) -> datetime | None:
    """When the next cycle runs, as the overview shows it: what the daemon planned, else
    `after_finished(finished_at)` (the schedule's next tick); never in the past. None before
    the first cycle."""
    if cycle is None:
        return None
    planned = cycle.get("next_run_at")
    when = datetime.fromisoformat(planned) if planned \
        else after_finished(datetime.fromisoformat(cycle["finished_at"]))
    return max(when, now)


def _write(path: Path, record: dict) -> None:
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(record, handle)
    os.replace(tmp, path)


def read_cycle(data_dir: Path) -> dict | None:
    try:
        data = json.loads((Path(data_dir) / FILE).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
