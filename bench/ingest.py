"""Ingest rate: a generated 100k-invoice CSV parsed and recorded (Discovered + Parsed per
invoice) into a fresh ledger, exactly as the poller does it (ConfiguredReaders +
record_invoice_file), timed from the first byte read to the file's Parsed event.

    python -m bench.ingest [--backend sqlite|postgres] [--quick]

SQLite also measures the baseline "one save per event": the same recording through a ledger
whose save_all stores every event in its own transaction, on the first 5k invoices of the
same seeded data (the per-invoice rate does not depend on the file size; 100k would only
take longer). PostgreSQL records the same 100k file into a throwaway database per run, in
runs alternating with SQLite runs of the same file; its ratio is best to best of those.

Each figure, and the baseline, is the best of REPEATS runs, each into a fresh ledger (timeit's
rule): this host's speed moves by up to a third from one minute to the next (the same code,
the same file: 15,000 to 21,000 invoices/s within ten minutes), and the best run is the one
nearest to the quiet machine the target is set for. Every run is in the notes.

Where the 100k file's time goes (300k rows; 2 cores; issue 16, second round). Pass 1 (read,
validate and spill the whole file: ~1.3 s of CPU on a quick host, ~2.5 s on a slow one) runs
in this process and nothing is recorded before it ends; pass 2 (the rules, plus each
invoice's id, content hash and the states of its first two events, ledger/new_invoice.py)
runs in a team of worker processes, one per core, that start while pass 1 is still writing
the spill and take every other batch (adapters/stampli/worker.py). A plain invoice, nearly
all, is read straight from its spilled rows (adapters/stampli/plain_invoice.py: pass 2 -23%
instructions). After pass 1 this process only seals (the MACs, ledger/signing.py) and stores
(SQLite's insert and commit: about a quarter of its CPU is the kernel's, writing the WAL). All
three processes share both cores, busy to the end: the workers run at a lower priority, so
the recording process, the serial part, never waits for a core (before that it took a third
of one, and recorded the last batches alone with a core idle). The figure is bound by the
machine's CPU: both cores are busy from ~0.2 s after the start to ~0.2 s before the end, and
the wall time is about half the CPU time plus 0.3 s. On this stop's host, 8.2 s of CPU for a
4.4 s run in a quiet minute, 10.6 s for 5.7 s in a slow one (main 3.8-4.9 s, of which 0.6-0.8
s in the kernel; workers 4.4-5.7 s, 0.2-0.3 s in the kernel). The kernel's share came down
from 2.3 s: SQLite's page cache and pages (ledger/sqlite_store.py) and the workers' heap
(worker.WORKER_MALLOC).
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from bench.common import (Unavailable, args, downloaded, emit, generated_export, hot_spots,
                          log, pg_database, rate, ratio, record_export, result, scratch,
                          should_profile)
from ledger.app import Ledger
from ledger.signing import EventKeys

TARGET = 20_000                        # invoices per second, on a quiet machine (issue 16)
RATIO_TARGET = 10                      # batched / one save per event, same run (issue 16)
PG_RATIO_TARGET = 1.0                  # PostgreSQL / SQLite, same file, same run (issue 16)
REPEATS = 3                            # runs per figure; the best is reported (see above)


class PerEventLedger(Ledger):
    """The baseline: every event in its own transaction (what saving as you go costs)."""

    def save_all(self, aggregates: Any) -> None:
        # Intake may hand over aggregates or bare events (new invoices): split both.
        for obj in aggregates:
            events = obj.collect_events() if hasattr(obj, "collect_events") else [obj]
            for event in events:
                super().save_all([event])


class FirstItem:
    """Wraps the reader: when its first invoice came out, i.e. how long pass 1 (read,
    validate and spill the whole file, before anything can be recorded) took."""

    def __init__(self) -> None:
        self.at: float | None = None

    def __call__(self, items: Any) -> Any:
        for item in items:
            if self.at is None:
                self.at = time.perf_counter()
            yield item


def timed_ingest(url: str, path: Path, name: str, ledger_cls: type[Ledger] = Ledger,
                 first: FirstItem | None = None) -> tuple[float, dict[str, Any], int]:
    """(seconds, summary, events recorded) for one file into a fresh ledger at url. Events
    are MACed with an audit key, as the connector always writes them (ledger/signing.py)."""
    ledger = ledger_cls(url)
    ledger.use_keys(EventKeys({"00000001": os.urandom(32)}, "00000001"))
    try:
        export_file = downloaded(ledger, path, name)
        before = ledger.recorder.max_notification_id() or 0
        started = time.perf_counter()
        summary = record_export(ledger, export_file, path, wrap=first)
        seconds = time.perf_counter() - started
        events = (ledger.recorder.max_notification_id() or 0) - before
    finally:
        ledger.close()
    if first is not None and first.at is not None:
        first.at -= started
    return seconds, summary, events


def split_note(first: FirstItem, seconds: float) -> str:
    return (f"of which {first.at:.1f} s before the first invoice (pass 1: read, validate and "
            f"spill the whole file; nothing can be recorded before it ends) and "
            f"{seconds - first.at:.1f} s for pass 2 (the rules; in worker processes on a large "
            f"file) beside recording" if first.at is not None else "no invoice read")


def parse_only(path: Path, name: str) -> float:
    from adapters.stampli.configured import ConfiguredReaders

    from bench.common import stampli_settings
    started = time.perf_counter()
    for _ in ConfiguredReaders(stampli_settings(), "10").invoices(path, name):
        pass
    return time.perf_counter() - started


def diagnose(work: Path, url_of: Any, invoices: int) -> list[str]:
    """Where an ingest's time goes: parse share on a subset, then a pyinstrument profile."""
    path, name = generated_export(work, invoices)
    parse_s = parse_only(path, name)
    total_s, _, _ = timed_ingest(url_of("parse-share"), path, name)
    per = 1e6 / invoices
    notes = [f"on {invoices:,} invoices: parsing alone {rate(invoices, parse_s):,.0f}/s "
             f"({100 * parse_s / total_s:.0f}% of the ingest time), parse + record "
             f"{rate(invoices, total_s):,.0f}/s",
             f"per invoice: parse {parse_s * per:,.0f} us + record "
             f"{(total_s - parse_s) * per:,.0f} us = {total_s * per:,.0f} us; the target "
             f"needs <= {1e6 / TARGET:,.0f} us in all, so both halves have to shrink"
             if parse_s * per < 1e6 / TARGET else
             f"per invoice: parse {parse_s * per:,.0f} us + record "
             f"{(total_s - parse_s) * per:,.0f} us; parsing alone exceeds the "
             f"{1e6 / TARGET:,.0f} us the target allows"]
    _, spots = hot_spots(lambda: timed_ingest(url_of("profile"), path, name))
    return notes + ["pyinstrument, ingest of the same subset (this process only: on large "
                    "files the reader runs pass 2 in worker processes, "
                    "adapters/stampli/worker.py, so these are CPU costs, not the 100k file's "
                    "wall time):"] + spots


def best_of(runs: int, one_run: Any) -> tuple[list[float], tuple[Any, ...]]:
    """The rates of `runs` calls of one_run(i) -> (rate, *details), and the best run's
    (rate, *details)."""
    outcomes = [one_run(i) for i in range(runs)]
    return [o[0] for o in outcomes], max(outcomes, key=lambda o: o[0])


def runs_note(rates: list[float], unit: str = "invoices/s") -> str:
    return (f"best of {len(rates)} runs, each into a fresh ledger: "
            + ", ".join(f"{r:,.0f}" for r in rates) + f" {unit}")


def sqlite_run(folder: Path, tag: str, path: Path, name: str,
               ledger_cls: type[Ledger] = Ledger
               ) -> tuple[float, float, dict[str, Any], int, FirstItem]:
    """(rate, seconds, summary, events, first item) of one ingest of the file into a fresh
    SQLite ledger in `folder`, deleted afterwards (~220 MB a run)."""
    first = FirstItem()
    seconds, summary, events = timed_ingest(f"sqlite:///{folder}/{tag}.db", path, name,
                                            ledger_cls, first)
    for leftover in folder.glob(f"{tag}.db*"):
        leftover.unlink()
    return rate(summary["invoices_new"], seconds), seconds, summary, events, first


def sqlite_figures(opts: Any) -> list[dict[str, Any]]:
    invoices = 10_000 if opts.quick else 100_000
    subset = 1_000 if opts.quick else 5_000
    folder = scratch(opts.work, "ingest-sqlite")

    def url_of(tag: str) -> str:
        return f"sqlite:///{folder}/{tag}.db"

    log(f"generating {invoices:,} invoices")
    path, name = generated_export(opts.work, invoices)
    log(f"ingesting {path.stat().st_size / 1e6:,.0f} MB into SQLite, {REPEATS} times")
    rates, (value, seconds, summary, events, first) = best_of(
        REPEATS, lambda i: sqlite_run(folder, f"batched-{i}", path, name))
    log(f"{value:,.0f} invoices/s; baseline: one save per event on {subset:,}")
    sub_path, sub_name = generated_export(opts.work, subset)
    base_rates, (base, base_s, _, base_events, _) = best_of(
        REPEATS, lambda i: sqlite_run(folder, f"per-event-{i}", sub_path, sub_name,
                                      PerEventLedger))
    met = value >= TARGET and value >= RATIO_TARGET * base
    notes = [f"{invoices:,} invoices ({path.stat().st_size / 1e6:,.0f} MB, "
             f"{summary['invoices_new']:,} recorded, {events:,} events) in {seconds:.1f} s, "
             + split_note(first, seconds), runs_note(rates),
             f"baseline on the first {subset:,} invoices of the same data: {base_events:,} "
             f"events, each in its own transaction, {base_s:.1f} s; " + runs_note(base_rates)]
    if should_profile(opts.profile, met):
        log("profiling")
        notes += diagnose(opts.work, url_of, 5_000 if not opts.quick else 1_000)
    return [result("ingest rate (SQLite)", round(value), "invoices/s",
                   target=f">= {TARGET:,} and >= {RATIO_TARGET}x baseline", met=met,
                   baseline={"name": "one save per event", "value": round(base),
                             "unit": "invoices/s"},
                   ratio=ratio(value, base), ratio_means="batched / one save per event",
                   notes=notes, invoices=invoices, seconds=round(seconds, 2),
                   events=events, file_bytes=path.stat().st_size, summary=summary,
                   runs=[round(r) for r in rates], baseline_runs=[round(r) for r in base_rates])]


def postgres_figures(opts: Any) -> list[dict[str, Any]]:
    """PostgreSQL against SQLite, the same file, in alternating runs (best of each): the best
    SQLite run of the `ingest` figure, minutes earlier, caught this host in another mood (its
    speed moves by up to a third from one minute to the next)."""
    invoices = 10_000 if opts.quick else 100_000
    path, name = generated_export(opts.work, invoices)
    folder = scratch(opts.work, "ingest-pg-sqlite")

    def on_postgres() -> tuple[float, float, int, FirstItem]:
        with pg_database() as url:     # a throwaway database per run
            first = FirstItem()
            seconds, summary, events = timed_ingest(url, path, name, first=first)
        return rate(summary["invoices_new"], seconds), seconds, events, first

    sqlite_rates: list[float] = []
    outcomes: list[tuple[float, float, int, FirstItem]] = []
    try:
        log(f"ingesting {invoices:,} invoices into SQLite and PostgreSQL, {REPEATS} times each,"
            " alternating")
        for i in range(REPEATS):
            sqlite_rates.append(sqlite_run(folder, f"alternate-{i}", path, name)[0])
            outcomes.append(on_postgres())
    except Unavailable as exc:
        return [result("PostgreSQL ingest", None, "invoices/s", target="reported",
                       notes=[f"skipped: {exc}"])]
    value, seconds, events, first = max(outcomes, key=lambda o: o[0])
    rates, sqlite_best = [o[0] for o in outcomes], max(sqlite_rates)
    share = ratio(value, sqlite_best)
    return [result("PostgreSQL ingest", round(value), "invoices/s",
                   target=f"ratio >= {PG_RATIO_TARGET} to SQLite (same run)",
                   met=share is not None and share >= PG_RATIO_TARGET,
                   baseline={"name": "SQLite, same file, runs alternating with these",
                             "value": round(sqlite_best), "unit": "invoices/s"},
                   ratio=share, ratio_means="PostgreSQL / SQLite (best runs of each)",
                   notes=[f"{invoices:,} invoices, {events:,} events in {seconds:.1f} s "
                          "(throwaway database, dropped afterwards), "
                          + split_note(first, seconds), runs_note(rates),
                          "SQLite, alternating: " + runs_note(sqlite_rates),
                          "saves of 100+ events go by binary COPY (ledger/postgres_store.py)"],
                   invoices=invoices, seconds=round(seconds, 2), events=events,
                   runs=[round(r) for r in rates], baseline_runs=[round(r) for r in sqlite_rates])]


def main() -> None:
    opts = args(__doc__.splitlines()[0], lambda p: p.add_argument(
        "--backend", choices=("sqlite", "postgres"), default="sqlite"))
    results = sqlite_figures(opts) if opts.backend == "sqlite" else postgres_figures(opts)
    emit(results, opts.out)


if __name__ == "__main__":
    main()
