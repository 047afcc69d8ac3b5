"""What every benchmark shares: the result record, work folders, the settings for generated
exports, recording an export file, a throwaway PostgreSQL database, RSS and profiling.

A benchmark module is run as `python -m bench.NAME --out FILE [--quick] [--work DIR]` in its
own process (so timings and peak RSS of one never leak into another) and writes a JSON list
of results to FILE; `python -m bench` collects them into one table.
"""
from __future__ import annotations

import argparse
import atexit
import contextlib
import hashlib
import json
import os
import resource
import shutil
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "bench" / ".work"
CORES = os.cpu_count() or 1
PG_HOST, PG_PORT = "127.0.0.1", 5432


def result(figure: str, value: float | None, unit: str, *, target: str = "",
           met: bool | None = None, baseline: dict[str, Any] | None = None,
           ratio: float | None = None, ratio_means: str = "", notes: list[str] | None = None,
           **details: Any) -> dict[str, Any]:
    """One row of the table. `baseline` is {"name", "value", "unit"} measured in the same
    run; `ratio_means` says which way the ratio is taken (e.g. "naive / batched")."""
    return {"figure": figure, "value": value, "unit": unit, "target": target, "met": met,
            "baseline": baseline, "ratio": ratio, "ratio_means": ratio_means,
            "cores": CORES, "notes": notes or [], "details": details}


def args(description: str, extra: Callable[[argparse.ArgumentParser], None] | None = None
         ) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--out", type=Path, help="write the results (JSON list) here")
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    parser.add_argument("--work", type=Path, default=None,
                        help="scratch folder (default: a new one, removed at exit)")
    parser.add_argument("--profile", choices=("auto", "always", "never"), default="auto",
                        help="profile a target that is not met (auto), always, or never")
    if extra:
        extra(parser)
    opts = parser.parse_args()
    if opts.work is None:               # run on its own, not by `python -m bench`
        opts.work = WORK / f"{Path(sys.argv[0]).stem}-{os.getpid()}"
        opts.work.mkdir(parents=True)
        atexit.register(_remove_work, opts.work)
    return opts


def _remove_work(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)
    with contextlib.suppress(OSError):
        WORK.rmdir()                    # only when no other run is using it


def emit(results: list[dict[str, Any]], out: Path | None) -> None:
    text = json.dumps(results, indent=2, default=str)
    if out is None:
        print(text)
    else:
        out.write_text(text)


def scratch(work: Path, name: str) -> Path:
    """A fresh folder under the work folder (the orchestrator removes the work folder)."""
    folder = work / f"{name}-{uuid.uuid4().hex[:8]}"
    folder.mkdir(parents=True)
    return folder


def log(message: str) -> None:
    """Progress on stderr: the orchestrator shows it, the results stay on their own."""
    print(f"  [{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def rate(count: float, seconds: float) -> float:
    return count / seconds if seconds > 0 else float("inf")


def ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0:
        return None
    return round(a / b, 3)


# ---------------------------------------------------------------------- exports and ingest

def stampli_settings() -> Any:
    """Reader settings for bench.generate's CSVs (the default template, C1042 -> company 10)."""
    from adapters.settings import StampliSettings

    return StampliSettings(host="127.0.0.1", username="bench", companies={"C1042": "10"})


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def downloaded(ledger: Any, path: Path, name: str, sha: str | None = None) -> Any:
    """Record the ExportFile as the poller does once a file is downloaded."""
    from ledger.files import ExportFile
    from ledger.model import export_file_id

    sha = sha or sha256_of(path)
    export_file = ExportFile.download(export_file_id(name, sha), name=name, kind="invoices",
                                      size=path.stat().st_size, mtime=path.stat().st_mtime,
                                      sha256=sha, local_path=str(path))
    ledger.record(export_file)
    return export_file


def record_export(ledger: Any, export_file: Any, path: Path,
                  wrap: Callable[[Iterator], Iterator] | None = None) -> dict[str, Any]:
    """Parse and record one invoice export exactly as the poller does (ConfiguredReaders +
    record_invoice_file); `wrap` may wrap the reader's iterator (counting, deadlines)."""
    from adapters.stampli.configured import ConfiguredReaders
    from ledger.intake import record_invoice_file
    from ledger.new_invoice import ExportFileRef

    settings = stampli_settings()
    reader = ConfiguredReaders(settings, "10").invoices(
        path, export_file.name, ExportFileRef(export_file.name, export_file.sha256))
    if wrap is not None:
        reader = wrap(reader)
    return record_invoice_file(ledger, export_file, reader,
                               settings.invoices.approved_statuses)


def generated_export(work: Path, invoices: int, *, seed: int = 42) -> tuple[Path, str]:
    """The seeded invoice CSV of `invoices` invoices, generated once per work folder (the
    ingest figures share it) under a name the configured patterns take."""
    from bench.generate import write_invoices_csv

    name = f"invoices_C1042_{invoices:08d}.csv"
    path = work / "exports" / f"{seed}" / name
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".part")
        write_invoices_csv(partial, invoices, seed=seed)
        partial.rename(path)
    return path, name


# ---------------------------------------------------------------------- PostgreSQL

class Unavailable(Exception):
    """A service the figure needs is not there; the figure is reported as skipped."""


@contextlib.contextmanager
def pg_database(prefix: str = "mlc_bench") -> Iterator[str]:
    """A throwaway database on the local server, dropped afterwards (the tests use it too)."""
    try:
        import psycopg
    except ImportError as exc:
        raise Unavailable(f"psycopg missing: {exc}") from None
    admin, user, last = None, "", None
    for user in ("postgres", "root"):
        try:
            admin = psycopg.connect(host=PG_HOST, port=PG_PORT, user=user, dbname="postgres",
                                    autocommit=True, connect_timeout=5)
            break
        except psycopg.OperationalError as exc:
            last = exc
    if admin is None:
        raise Unavailable(f"PostgreSQL on {PG_HOST}:{PG_PORT}: {last}")
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql://{user}@{PG_HOST}:{PG_PORT}/{name}"
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


# ---------------------------------------------------------------------- memory and profiles

def peak_rss_mb() -> float:
    """This process's peak resident set size so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def hot_spots(fn: Callable[[], Any], top: int = 8) -> tuple[Any, list[str]]:
    """Run fn under pyinstrument; the functions with the most self time (where the CPU goes)
    and the project functions with the most total time (which step costs it), as lines."""
    try:
        from pyinstrument import Profiler
    except ImportError:
        return fn(), ["pyinstrument not installed: pip install -e '.[bench]'"]
    profiler = Profiler(interval=0.002)
    profiler.start()
    try:
        value = fn()
    finally:
        profiler.stop()
    root = profiler.last_session.root_frame()
    total = root.time or 1e-9
    own: dict[str, float] = {}
    inclusive: dict[str, float] = {}

    def label(frame: Any) -> str:
        return f"{frame.function} ({frame.file_path_short}:{frame.line_no})"

    def walk(frame: Any, seen: frozenset[str]) -> None:
        name = label(frame)
        for child in frame.children:
            if child.is_synthetic_leaf:
                own[name] = own.get(name, 0.0) + child.time
        path = frame.file_path or ""
        # The project's code and the event store's: which step costs it (not the bench's).
        ours = str(ROOT) in path and ".venv" not in path and "/bench/" not in path
        if (ours or "/eventsourcing/" in path) and name not in seen:   # recursion once
            inclusive[name] = inclusive.get(name, 0.0) + frame.time
            seen = seen | {name}
        for child in frame.children:
            if not child.is_synthetic:
                walk(child, seen)

    walk(root, frozenset())
    lines = [f"self {100 * t / total:4.1f}%  {name}"
             for name, t in sorted(own.items(), key=lambda kv: -kv[1])[:top]]
    lines += [f"total {100 * t / total:4.1f}%  {name}"
              for name, t in sorted(inclusive.items(), key=lambda kv: -kv[1])[:top]]
    return value, lines


def should_profile(mode: str, met: bool | None) -> bool:
    return mode == "always" or (mode == "auto" and met is False)
