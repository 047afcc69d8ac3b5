"""End to end, as a customer feels it at go-live (a backfill of a quarter's invoices):
generated exports on a real OpenSSH sshd, the real `ml-connector sync` command run as a user
runs it (a subprocess, again until everything is posted), the IFS emulator in its own process
under the tenant's 1,000 requests/minute, suppliers and reference data cold.

    python -m bench.e2e [--quick] [--invoices N] [--no-postgres]

Figures:
- invoices posted per minute over the whole backfill (first `sync` started to the last
  invoice posted), with the peak RSS of the sync process tree, nothing posted twice (documents
  counted in the emulator), and the ratio to the slower of (a) the budget-bound ceiling
  (1,000 req/min / measured requests per posted invoice, token, reference reads and supplier
  creation included) and (b) ingest alone (`ml-connector ingest` of the same files into a
  fresh ledger, same run);
- the same flow at a smaller size on a PostgreSQL ledger with one `sync` and with two `sync`
  processes sharing the database, against SQLite at that size in the same run (SQLite and
  PostgreSQL alternate, PG_ROUNDS rounds, best of each).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

from bench import emulator as emulators
from bench.common import (CORES, ROOT, Unavailable, args, emit, log, pg_database, rate,
                          ratio, result, scratch)
from bench.e2e_world import (RequestCounter, RssWatch, Sshd, drop_exports,
                             postgres_server_cpu, write_world)

INVOICES, QUICK_INVOICES = 100_000, 4_000
PG_INVOICES, QUICK_PG_INVOICES = 5_000, 2_000
# SQLite and PostgreSQL alternate, best of each (timeit's rule: this host's speed moves by up
# to a third from one minute to the next; one run of each gave 0.65x to 1.05x for one code).
PG_ROUNDS, QUICK_PG_ROUNDS = 2, 1
FILES = 20
VENDORS = 50
BUDGET = (1000, 60.0)                  # the tenant's: 1,000 requests per minute
TARGET_PER_MIN = 20_000
TARGET_PG_SHARE = 0.8
CLI = [str(Path(sys.executable).with_name("ml-connector"))]


def cli_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("ML_CONNECTOR_MASTER_KEY", "ML_CONNECTOR_CONFIG")}
    env["PYTHONPATH"] = str(ROOT)
    return env


def sync_until_posted(config: Path, expected: int, watch: RssWatch, *, deadline: float,
                      profile: Path | None = None, tag: str = "") -> dict[str, Any]:
    """`ml-connector sync --json` again and again until `expected` invoices are posted (a
    cycle may end at connector.cycle_timeout; a second worker may finish the last ones)."""
    runs, last, cpu, raced = 0, {}, 0.0, 0
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        command = [*CLI, "--config", str(config), "sync", "--json"]
        if profile is not None and runs == 0:
            command = [sys.executable, "-m", "pyinstrument", "-i", "0.005", "-r", "text",
                       "-o", str(profile), *command]
        proc = subprocess.Popen(command, cwd=config.parent, env=cli_env(), text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        watch.watch(proc.pid)
        err_lines: list[str] = []
        reader = threading.Thread(target=_timestamped, args=(proc.stderr, err_lines))
        reader.start()
        out = proc.stdout.read()
        proc.wait()
        reader.join()
        err = "".join(err_lines)
        (config.parent / f"sync{tag.strip(' #')}-{runs}.log").write_text(err)
        watch.forget(proc.pid)
        cpu += watch.cpu_of(proc.pid)
        raced += err.count("another worker moved")    # work done, then not recorded
        runs += 1
        try:                            # a cycle that ran out of time exits 1 with its report
            last = json.loads(out)
        except ValueError:
            raise RuntimeError(f"sync{tag} exited {proc.returncode}: {err[-2000:]}") from None
        if last["states"].get("posted", 0) >= expected:
            break
        if last.get("errors"):
            log(f"sync{tag} errors: {last['errors'][:3]}")
        time.sleep(0.2)
    return {"runs": runs, "report": last, "cpu_seconds": cpu, "raced": raced}


def _timestamped(stream: Any, into: list[str]) -> None:
    """The sync's progress lines, each with the seconds since it started (where time goes)."""
    started = time.perf_counter()
    for line in stream:
        into.append(f"{time.perf_counter() - started:7.2f} {line}")


def run_flow(work: Path, invoices: int, *, ledger: str | None = None, workers: int = 1,
             profile: Path | None = None, label: str = "") -> dict[str, Any]:
    """One backfill: fresh sshd folder, fresh emulator (cold suppliers), fresh ledger."""
    folder = scratch(work, f"e2e-{label or 'sqlite'}")
    with Sshd(folder / "sshd") as sshd:
        emu = emulators.ProcessEmulator(_cold_seed(), BUDGET, folder)
        try:
            config = write_world(folder, sshd, emu.base_url, ledger=ledger)
            names = drop_exports(folder / "exports", sshd.outbound, invoices, FILES, VENDORS)
            watch, counter = RssWatch(), RequestCounter(emu)
            server_cpu = postgres_server_cpu(ledger) if ledger else None
            started = time.perf_counter()
            try:
                if workers == 1:
                    runs = [sync_until_posted(config, invoices, watch, deadline=1800,
                                              profile=profile)]
                else:
                    runs = _parallel(config, invoices, watch, workers)
            finally:
                watch.stop()
            seconds = time.perf_counter() - started
            if server_cpu is not None:
                after = postgres_server_cpu(ledger)
                server_cpu = None if after is None else after - server_cpu
            emulator_cpu = emu.cpu_seconds()
            counter.stop()
            documents = Counter(i["ExternalRef"] for i in emu.state()["invoices"])
        finally:
            emu.stop()
    posted = max(r["report"]["states"].get("posted", 0) for r in runs)
    twice = {ref: n for ref, n in documents.items() if n > 1}
    requests = counter.total
    return {"invoices": invoices, "files": names, "seconds": seconds, "posted": posted,
            "documents": len(documents), "posted_twice": len(twice),
            "requests": requests, "by_method": dict(counter.by_method),
            "status_429": counter.statuses.get(429, 0), "statuses": dict(counter.statuses),
            "log_entries_lost": counter.lost,
            "per_invoice": requests / posted if posted else None,
            "per_minute": posted / seconds * 60 if posted else 0.0,
            "peak_rss_mb": round(watch.peak_mb, 1), "sync_runs": [r["runs"] for r in runs],
            "sync_cpu_seconds": [round(r["cpu_seconds"], 1) for r in runs],
            "lost_races": sum(r["raced"] for r in runs),
            "emulator_cpu_seconds": round(emulator_cpu, 1),
            "postgres_cpu_seconds": None if server_cpu is None else round(server_cpu, 1),
            "states": runs[0]["report"].get("states", {}), "config": config}


def _parallel(config: Path, invoices: int, watch: RssWatch, workers: int) -> list[dict]:
    out: list[Any] = [None] * workers
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            out[n] = sync_until_posted(config, invoices, watch, deadline=1800, tag=f" #{n}")
        except BaseException as exc:   # noqa: BLE001 - reported by the caller
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return out


def _cold_seed() -> dict[str, Any]:
    """The sandbox's seed as it is: reference data, no generated supplier (all created)."""
    from bench.generate import ifs_seed

    return ifs_seed(0)


def ingest_alone(work: Path, flow: dict[str, Any]) -> dict[str, Any]:
    """`ml-connector ingest` of the flow's files into a fresh ledger: the ingest-only ceiling."""
    folder = scratch(work, "e2e-ingest")
    config = folder / "ml-connector.toml"
    # The same config and secrets, its own data folder (so its own fresh ledger).
    config.write_text(flow["config"].read_text().replace(str(flow["config"].parent), str(folder)))
    shutil.copytree(flow["config"].parent / "data", folder / "data",
                    ignore=shutil.ignore_patterns("ledger.db*", "files", "last_cycle.json"))
    files = [str(p) for p in flow["files"]]
    started = time.perf_counter()
    done = subprocess.run([*CLI, "--config", str(config), "ingest", "--json", *files],
                          cwd=folder, env=cli_env(), capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"ingest exited {done.returncode}: {done.stderr[-2000:]}")
    taken = json.loads(done.stdout)["taken"]
    recorded = sum(t.get("invoices_new", 0) for t in taken)
    return {"seconds": seconds, "invoices": recorded,
            "per_minute": rate(recorded, seconds) * 60}


# ---------------------------------------------------------------------- figures

def backfill_figure(flow: dict[str, Any], ingest: dict[str, Any]) -> dict[str, Any]:
    per_minute = flow["per_minute"]
    per_invoice = flow["per_invoice"] or 0.0
    ceiling = BUDGET[0] / (BUDGET[1] / 60) / per_invoice if per_invoice else float("inf")
    slower = min(ceiling, ingest["per_minute"])
    which = "budget-bound ceiling" if ceiling <= ingest["per_minute"] else "ingest alone"
    clean = flow["posted"] == flow["invoices"] == flow["documents"] and not flow["posted_twice"]
    lost = (" (the emulator's log was full at a read: a floor)"
            if flow["log_entries_lost"] else "")
    notes = [
        f"{flow['invoices']:,} generated invoices in {FILES} CSV exports + one vendor file "
        f"({VENDORS} vendors) on a real OpenSSH sshd; the IFS emulator in its own process "
        f"with {BUDGET[0]} req/{BUDGET[1]:g} s; suppliers not in IFS (created from the vendor "
        "file), reference data not cached; `ml-connector sync --json` run as a subprocess "
        f"{flow['sync_runs'][0]} time(s) until all were posted, {flow['seconds']:.1f} s",
        f"requests {flow['requests']:,} {flow['by_method']}, statuses {flow['statuses']}"
        f"{lost}: "
        f"{per_invoice:.4f} per posted invoice -> budget ceiling {ceiling:,.0f}/min; ingest "
        f"alone (`ml-connector ingest`, same files, fresh ledger) {ingest['seconds']:.1f} s "
        f"= {ingest['per_minute']:,.0f}/min; the slower is {which}",
        where_time_went(flow),
        f"documents in the emulator {flow['documents']:,}, posted twice {flow['posted_twice']};"
        f" peak RSS of the sync process tree {flow['peak_rss_mb']:,.0f} MB (<= 512 MB)",
        "the machine is shared (other jobs on the 2 cores): absolute rates are low while they "
        "run; the ratio is taken in the same run",
    ]
    return result("end to end: backfill through sync to posted", round(per_minute),
                  "invoices/min", target=f">= {TARGET_PER_MIN:,}/min on 2 cores, 0 posted "
                  "twice, peak RSS <= 512 MB",
                  met=per_minute >= TARGET_PER_MIN and clean and flow["peak_rss_mb"] <= 512,
                  baseline={"name": f"slower of budget ceiling and ingest alone ({which})",
                            "value": round(slower), "unit": "invoices/min"},
                  ratio=ratio(per_minute, slower), ratio_means="end to end / slower ceiling",
                  notes=notes, **_details(flow), ingest_alone=ingest,
                  budget_ceiling_per_min=round(ceiling))


def where_time_went(flow: dict[str, Any]) -> str:
    """CPU seconds of each process of the flow against its wall time on this machine's
    cores: near cores x wall, the flow is bound by the CPU, not by waiting."""
    server = flow.get("postgres_cpu_seconds")
    return (f"where the wall time went: sync process CPU "
            + " + ".join(f"{s:.1f}" for s in flow["sync_cpu_seconds"]) + " s, emulator CPU "
            f"{flow['emulator_cpu_seconds']:.1f} s"
            + (f", PostgreSQL server CPU {server:.1f} s" if server is not None else "")
            + f", of {flow['seconds']:.1f} s wall on {CORES} cores")


def postgres_figures(sqlite_runs: list[dict[str, Any]], one_runs: list[dict[str, Any]],
                     two: dict[str, Any]) -> list[dict[str, Any]]:
    sqlite, one = (max(runs, key=lambda f: f["per_minute"]) for runs in (sqlite_runs, one_runs))
    n = sqlite["invoices"]
    share = ratio(one["per_minute"], sqlite["per_minute"])
    clean = all(f["posted"] == f["documents"] == n and not f["posted_twice"]
                for f in (*sqlite_runs, *one_runs, two))
    rounds = ((f"best of {len(one_runs)} alternating rounds" if len(one_runs) > 1
               else "one round") + ": SQLite "
              + ", ".join(f"{f['per_minute']:,.0f}" for f in sqlite_runs) + "/min; PostgreSQL "
              + ", ".join(f"{f['per_minute']:,.0f}" for f in one_runs) + "/min")
    return [
        result("end to end on a PostgreSQL ledger, 1 worker", round(one["per_minute"]),
               "invoices/min", target=f">= {TARGET_PG_SHARE}x SQLite, 0 posted twice",
               met=share is not None and share >= TARGET_PG_SHARE and clean,
               baseline={"name": f"SQLite ledger, same flow ({n:,} invoices)",
                         "value": round(sqlite["per_minute"]), "unit": "invoices/min"},
               ratio=share, ratio_means="PostgreSQL / SQLite",
               notes=[f"{n:,} invoices, same flow as the backfill: SQLite {sqlite['seconds']:.1f}"
                      f" s, PostgreSQL {one['seconds']:.1f} s; posted twice: SQLite "
                      f"{sum(f['posted_twice'] for f in sqlite_runs)}, PostgreSQL "
                      f"{sum(f['posted_twice'] for f in one_runs)}", rounds,
                      f"SQLite {where_time_went(sqlite)}", f"PostgreSQL {where_time_went(one)}"],
               **_details(one)),
        result("end to end on a PostgreSQL ledger, 2 workers", round(two["per_minute"]),
               "invoices/min", target="report; 0 posted twice", met=clean,
               baseline={"name": "1 worker on the same database setup",
                         "value": round(one["per_minute"]), "unit": "invoices/min"},
               ratio=ratio(two["per_minute"], one["per_minute"]),
               ratio_means="2 workers / 1 worker (its best round)",
               notes=[f"two `sync` processes sharing one PostgreSQL ledger, {n:,} invoices in "
                      f"{two['seconds']:.1f} s; runs per worker {two['sync_runs']}; documents "
                      f"in IFS {two['documents']:,}, posted twice {two['posted_twice']}; on 2 "
                      "cores the workers share the CPU with the emulator, sshd and PostgreSQL",
                      where_time_went(two),
                      f"lost races: {two['lost_races']:,} times a worker's work on an invoice"
                      " (or a whole chunk) was not recorded because the other worker had"
                      " recorded it first (`another worker moved ... first` in the logs)"],
               **_details(two)),
    ]


def _details(flow: dict[str, Any]) -> dict[str, Any]:
    skip = ("files", "config")
    return {k: v for k, v in flow.items() if k not in skip}


def main() -> None:
    def extra(p: Any) -> None:
        p.add_argument("--invoices", type=int, default=None)
        p.add_argument("--pg-invoices", type=int, default=None)
        p.add_argument("--no-postgres", action="store_true")
        p.add_argument("--no-backfill", action="store_true")

    opts = args(__doc__.splitlines()[0], extra)
    invoices = opts.invoices or (QUICK_INVOICES if opts.quick else INVOICES)
    small = opts.pg_invoices or (QUICK_PG_INVOICES if opts.quick else PG_INVOICES)
    rows: list[dict[str, Any]] = []
    profile = opts.work / "e2e-sync.pyinstrument.txt" if opts.profile == "always" else None
    if not opts.no_backfill:
        log(f"backfill: {invoices:,} invoices in {FILES} files through sync")
        flow = run_flow(opts.work, invoices, profile=profile)
        log(f"backfill: {flow['per_minute']:,.0f}/min, {flow['requests']} requests, peak RSS "
            f"{flow['peak_rss_mb']:.0f} MB; ingest alone on the same files")
        ingest = ingest_alone(opts.work, flow)
        log(f"ingest alone: {ingest['per_minute']:,.0f}/min")
        row = backfill_figure(flow, ingest)
        if profile is not None and profile.exists():
            row["notes"] += ["pyinstrument on the first sync (text report, top):",
                             *_profile_head(profile)]
        rows.append(row)
    if not opts.no_postgres:
        try:
            rows += _postgres(opts.work, small, QUICK_PG_ROUNDS if opts.quick else PG_ROUNDS,
                              profile is not None)
        except Unavailable as exc:
            rows.append(result("end to end on a PostgreSQL ledger, 1 worker", None,
                               "invoices/min", notes=[f"skipped: {exc}"]))
    emit(rows, opts.out)


def _postgres(work: Path, n: int, rounds: int, profile: bool = False) -> list[dict[str, Any]]:
    sqlite_runs, one_runs = [], []
    for r in range(rounds):
        log(f"round {r + 1}/{rounds}: SQLite at {n:,} invoices")
        sqlite_runs.append(run_flow(work, n, label=f"sqlite-small{r}"))
        with pg_database("mlc_bench_e2e") as url:
            log(f"PostgreSQL, 1 worker, {n:,} invoices "
                f"(SQLite {sqlite_runs[-1]['per_minute']:,.0f}/min)")
            one_runs.append(run_flow(
                work, n, ledger=url, label=f"pg1-{r}",
                profile=work / "e2e-pg1.pyinstrument.txt" if profile and r == 0 else None))
        log(f"PostgreSQL 1 worker {one_runs[-1]['per_minute']:,.0f}/min")
    with pg_database("mlc_bench_e2e") as url:
        log(f"PostgreSQL, 2 workers, {n:,} invoices")
        two = run_flow(work, n, ledger=url, workers=2, label="pg2")
    log(f"2 workers {two['per_minute']:,.0f}/min")
    return postgres_figures(sqlite_runs, one_runs, two)


def _profile_head(path: Path, lines: int = 40) -> list[str]:
    return [line.rstrip() for line in path.read_text().splitlines()[:lines] if line.strip()]


if __name__ == "__main__":
    main()
