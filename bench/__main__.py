"""`python -m bench` (`make bench`): every benchmark, each in its own process, one table.

    python -m bench [--only NAME[,NAME]] [--quick] [--budget SECONDS] [--keep-work]

A benchmark measures and prints; it asserts nothing. Results go to the terminal as one table
(figure, value, unit, target, met?, baseline, ratio, cores) with the notes of every figure
below it, and to bench/results.json. Scratch files live in bench/.work/ and are removed at
the end. The whole run takes 11 to 12 minutes on two cores: the latency drip's 10 minutes,
in the background, are its floor; in the foreground the end-to-end figures (bench/e2e.py)
take over half of it, and the memory figure runs last and gets what is left of `--budget`
(see bench/memory.py).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.common import CORES, ROOT, WORK, result

FIGURES: dict[str, list[str]] = {
    "posting": ["bench.posting"],
    "ingest": ["bench.ingest"],
    "pg_ingest": ["bench.ingest", "--backend", "postgres"],
    "rebuild": ["bench.rebuild"],
    "workspace": ["bench.workspace"],
    "reconcile": ["bench.reconcile"],
    # The go-live backfill (100k invoices through `sync`), then SQLite and PostgreSQL rounds
    # at 5k and 2 workers: the longest figure, over half the run; memory, last, gets what is
    # left.
    "e2e": ["bench.e2e"],
    "memory": ["bench.memory"],
}
RESERVE = 15.0                         # seconds for starting the last process, the table
# Figures that mostly wait (the latency drip lasts its 10 minutes whatever the machine does):
# started first, in the background, and joined after the others.
BACKGROUND: dict[str, list[str]] = {"latency": ["bench.latency"]}


def start_background(name: str, opts: argparse.Namespace,
                     beside: bool) -> tuple[subprocess.Popen, float]:
    """`beside`: other figures run meanwhile (the figure says so in its notes)."""
    command = [sys.executable, "-m", *BACKGROUND[name], "--out",
               str(opts.work / f"{name}.json"), "--work", str(opts.work),
               "--profile", opts.profile] + ["--quick"] * opts.quick + ["--beside"] * beside
    print(f"== {name} (in the background): {' '.join(command[2:])}", file=sys.stderr, flush=True)
    log = open(opts.work / f"{name}.log", "w")
    process = subprocess.Popen(command, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                               stderr=log, text=True)
    log.close()
    return process, time.perf_counter()


def join_background(name: str, process: subprocess.Popen, started: float,
                    opts: argparse.Namespace) -> list[dict[str, Any]]:
    code = process.wait()
    seconds = time.perf_counter() - started
    out, log = opts.work / f"{name}.json", (opts.work / f"{name}.log").read_text()
    sys.stderr.write(f"== {name} (joined)\n{log}")
    if code != 0 or not out.exists():
        return [result(name, None, "", notes=[f"failed (exit {code}):",
                                              *log.strip().splitlines()[-6:]],
                       seconds=round(seconds, 1))]
    rows = json.loads(out.read_text())
    for row in rows:
        row["details"]["figure_seconds"] = round(seconds, 1)
    return rows


def run_figure(name: str, opts: argparse.Namespace, extra: list[str]) -> list[dict[str, Any]]:
    out = opts.work / f"{name}.json"
    command = [sys.executable, "-m", *FIGURES[name], "--out", str(out), "--work",
               str(opts.work), "--profile", opts.profile, *extra]
    if opts.quick:
        command.append("--quick")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    print(f"== {name}: {' '.join(command[2:])}", file=sys.stderr, flush=True)
    started = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True)
    seconds = time.perf_counter() - started
    sys.stderr.write(done.stderr)
    if done.returncode != 0 or not out.exists():
        tail = done.stderr.strip().splitlines()[-6:]
        return [result(name, None, "", notes=[f"failed (exit {done.returncode}):", *tail],
                       seconds=round(seconds, 1))]
    rows = json.loads(out.read_text())
    for row in rows:
        row["details"]["figure_seconds"] = round(seconds, 1)
    return rows


def fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and abs(value) < 100:
        return f"{value:,.3g}" if abs(value) < 1 else f"{value:,.2f}"
    if isinstance(value, (int, float)):
        return f"{value:,.0f}"
    return str(value)


def table(rows: list[dict[str, Any]]) -> str:
    head = ["figure", "value", "unit", "target", "met?", "baseline", "ratio", "cores"]
    body = []
    for r in rows:
        base = r.get("baseline") or {}
        met = {True: "yes", False: "NO", None: "-"}[r["met"]]
        body.append([r["figure"], fmt(r["value"]), r["unit"], r["target"] or "-", met,
                     f"{fmt(base.get('value'))} ({base['name']})" if base else "-",
                     f"{fmt(r['ratio'])} {r['ratio_means']}".strip() if r["ratio"] else "-",
                     str(r["cores"])])
    widths = [max(len(x[i]) for x in [head, *body]) for i in range(len(head))]
    lines = [" | ".join(c.ljust(w) for c, w in zip(line, widths)) for line in [head, *body]]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--only", action="append", default=[],
                        help=f"run only these ({', '.join([*FIGURES, *BACKGROUND])});"
                             " repeat or comma-separate")
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    parser.add_argument("--budget", type=float, default=570.0,
                        help="seconds the whole run should take (sizes the memory figure)")
    parser.add_argument("--profile", choices=("auto", "always", "never"), default="auto")
    parser.add_argument("--work", type=Path, default=None,
                        help="scratch folder (default: a new one under bench/.work/)")
    parser.add_argument("--keep-work", action="store_true")
    parser.add_argument("--results", type=Path, default=ROOT / "bench" / "results.json")
    opts = parser.parse_args()
    names = [n for part in opts.only for n in part.split(",") if n] or [*FIGURES, *BACKGROUND]
    unknown = set(names) - set(FIGURES) - set(BACKGROUND)
    if unknown:
        parser.error(f"unknown figure(s) {', '.join(sorted(unknown))};"
                     f" have {', '.join([*FIGURES, *BACKGROUND])}")
    # A folder of its own: another bench run at the same time (a developer measuring one
    # figure) must not delete this one's files, nor this one theirs.
    opts.work = opts.work or WORK / f"run-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
    opts.work.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    rows: list[dict[str, Any]] = []
    beside = any(name in FIGURES for name in names)
    background = {name: start_background(name, opts, beside)
                  for name in BACKGROUND if name in names}
    try:
        for name in FIGURES:
            if name not in names:
                continue
            extra: list[str] = []
            if name == "memory":
                elapsed = time.perf_counter() - started
                extra = ["--budget", f"{max(75.0, opts.budget - elapsed - RESERVE):.0f}"]
            rows.extend(run_figure(name, opts, extra))
        for name, (process, began) in background.items():
            rows.extend(join_background(name, process, began, opts))
    finally:
        for process, _ in background.values():
            if process.poll() is None:          # interrupted: no orphan daemon behind
                process.terminate()
                process.wait()
        if not opts.keep_work:
            shutil.rmtree(opts.work, ignore_errors=True)
            with contextlib.suppress(OSError):
                WORK.rmdir()            # only when no other run is using it
    seconds = time.perf_counter() - started
    report = {"machine": {"cores": CORES, "python": platform.python_version(),
                          "platform": platform.platform()},
              "quick": opts.quick, "seconds": round(seconds, 1),
              "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "results": rows}
    opts.results.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print()
    print(table(rows))
    where = opts.results.relative_to(ROOT) if opts.results.is_relative_to(ROOT) \
        else opts.results
    print(f"\n{CORES} cores, Python {platform.python_version()}; {seconds / 60:.1f} min; "
          f"written to {where}")
    for r in rows:
        if r["notes"]:
            print(f"\n{r['figure']}:")
            for note in r["notes"]:
                print(f"  {note}")


if __name__ == "__main__":
    main()
