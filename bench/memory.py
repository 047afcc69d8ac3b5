"""Memory on a huge export: a generated ~1 GB invoice CSV parsed and recorded into SQLite,
peak RSS measured in a child process that does nothing else.

    python -m bench.memory [--quick] [--rate INVOICES_PER_S] [--budget SECONDS] [--full]

The file is generated on the fly (bench.generate.write_invoices_csv_fast_until: seeded, one
rendered block repeated with new invoice numbers) into the work folder and deleted after.

Bounded time: ingesting 1 GB (~1.7M invoices) takes 1.7M / rate seconds. When that does not
fit `--budget` (the orchestrator passes what is left of its ten minutes, and the rate the
ingest figure just measured), the largest file that fits is ingested instead and the result
says so: the measured peak, the file size it was measured on, the RSS growth per invoice over
the second half of the run, the peak projected to 1 GB from that growth, and how long the
full gigabyte would take. `--full` always ingests the whole gigabyte.
"""
from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from bench.common import (ROOT, args, downloaded, emit, log, peak_rss_mb, rate, record_export,
                          result, scratch)

TARGET_MB = 512
FULL_BYTES = 1 << 30                   # ~1 GB
BYTES_PER_INVOICE = 623                # bench.generate's average (1-5 lines, ~190 B a line)
MIN_BYTES = 16 << 20


# ---------------------------------------------------------------------- the child

def child(path: Path, folder: Path) -> dict[str, Any]:
    """Ingest `path`; RSS sampled every 0.2 s with how many invoices were consumed."""
    import psutil

    from ledger.app import Ledger

    me = psutil.Process()
    consumed = [0]
    samples: list[tuple[float, float, int]] = []
    done = threading.Event()
    started = time.perf_counter()

    def tree_rss() -> float:
        # The reader may run pass 2 in a worker process (adapters/stampli/worker.py): what
        # the ingest holds is this process and its children together.
        total = me.memory_info().rss
        for kid in me.children(recursive=True):
            try:
                total += kid.memory_info().rss
            except psutil.Error:
                pass                    # ended between the listing and the look
        return total / 2**20

    def sample() -> None:
        while not done.wait(0.2):
            samples.append((time.perf_counter() - started, tree_rss(), consumed[0]))

    def counting(items: Any) -> Any:
        for item in items:
            consumed[0] += 1
            yield item

    ledger = Ledger(f"sqlite:///{folder}/ledger.db")
    export_file = downloaded(ledger, path, "invoices_C1042_20261106000000.csv",
                             sha="0" * 64)      # hashing 1 GB is the download's cost
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    summary = record_export(ledger, export_file, path, wrap=counting)
    seconds = time.perf_counter() - started
    done.set()
    sampler.join()
    ledger.close()
    first = next((t for t, _, n in samples if n > 0), seconds)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {"peak_rss_mb": peak_rss_mb(), "children_peak_mb": kids,
            "sampled_peak_mb": max((s[1] for s in samples), default=0.0),
            "seconds": seconds, "pass1_seconds": first,
            "invoices": summary["invoices_new"], "samples": samples}


def growth_per_invoice(samples: list[list[float]]) -> float:
    """RSS growth (MB per invoice) over the second half of the recording phase: a streaming
    ingest is flat there; anything kept per invoice shows up as a slope."""
    recording = [s for s in samples if s[2] > 0]
    if len(recording) < 4:
        return 0.0
    half = recording[len(recording) // 2:]
    (_, rss0, n0), (_, rss1, n1) = half[0], half[-1]
    return max(rss1 - rss0, 0.0) / (n1 - n0) if n1 > n0 else 0.0


# ---------------------------------------------------------------------- the parent

def calibrate(work: Path) -> float:
    """Invoices/s of parse + record on 5,000 invoices, when the ingest figure did not run."""
    from bench.common import generated_export
    from bench.ingest import timed_ingest

    path, name = generated_export(work, 5_000)
    seconds, summary, _ = timed_ingest(f"sqlite:///{scratch(work, 'calibrate')}/c.db", path,
                                       name)
    return rate(summary["invoices_new"], seconds)


def plan(full_bytes: int, ingest_rate: float, budget: float, force: bool) -> int:
    if force:
        return full_bytes
    fits = int(ingest_rate * budget * 0.85 * BYTES_PER_INVOICE)
    return max(MIN_BYTES, min(full_bytes, fits))


def main() -> None:
    def extra(p: Any) -> None:
        p.add_argument("--rate", type=float, help="ingest invoices/s measured this run")
        p.add_argument("--budget", type=float, default=240.0, help="seconds for the ingest")
        p.add_argument("--full", action="store_true", help="always the whole gigabyte")
        p.add_argument("--child", type=Path, help=argparse_hidden)

    opts = args(__doc__.splitlines()[0], extra)
    if opts.child:
        print(json.dumps(child(opts.child, opts.child.parent)))
        return
    from bench.generate import write_invoices_csv_fast_until

    full_bytes = (32 << 20) if opts.quick else FULL_BYTES
    ingest_rate = opts.rate or calibrate(opts.work)
    size = plan(full_bytes, ingest_rate, opts.budget, opts.full or opts.quick)
    folder = scratch(opts.work, "memory")
    path = folder / "invoices_C1042_20261106000000.csv"
    log(f"generating {size / 2**20:,.0f} MiB (ingest rate {ingest_rate:,.0f}/s, budget "
        f"{opts.budget:.0f} s)")
    started = time.perf_counter()
    invoices = write_invoices_csv_fast_until(path, size)
    gen_s = time.perf_counter() - started
    size = path.stat().st_size
    log(f"{invoices:,} invoices in {gen_s:.1f} s; ingesting in a child process")
    env = {**os.environ, "TMPDIR": str(folder), "PYTHONPATH": str(ROOT)}
    try:
        out = subprocess.run([sys.executable, "-m", "bench.memory", "--child", str(path)],
                             cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    except subprocess.CalledProcessError as exc:
        raise SystemExit(f"memory child failed:\n{exc.stderr}") from None
    finally:
        path.unlink(missing_ok=True)          # never leave a gigabyte behind
    run = json.loads(out.stdout.strip().splitlines()[-1])
    emit([figure(run, size, full_bytes, invoices, gen_s)], opts.out)


def figure(run: dict[str, Any], size: int, full_bytes: int, invoices: int,
           gen_s: float) -> dict[str, Any]:
    # Kernel-tracked peaks, no sampling gaps: this process's plus its largest child's is an
    # upper bound of what they held at once (the sampled sum is in the notes).
    peak = run["peak_rss_mb"] + run["children_peak_mb"]
    slope = growth_per_invoice(run["samples"])
    full_invoices = int(invoices * full_bytes / size)
    projected = peak + slope * max(full_invoices - run["invoices"], 0)
    whole = size >= full_bytes * 0.98
    per_s = rate(run["invoices"], run["seconds"])
    notes = [f"{size / 2**20:,.0f} MiB generated in {gen_s:.1f} s, {run['invoices']:,} invoices "
             f"ingested in {run['seconds']:.1f} s ({per_s:,.0f}/s; pass 1 of the reader, "
             f"before the first invoice: {run['pass1_seconds']:.1f} s)",
             f"peak RSS: ingesting process {run['peak_rss_mb']:,.0f} MB + largest child "
             f"(reader worker) {run['children_peak_mb']:,.0f} MB; sampled every 0.2 s, the "
             f"process tree together peaked at {run['sampled_peak_mb']:,.0f} MB",
             f"RSS growth over the second half of recording: {slope * 1e6:,.1f} MB per "
             f"million invoices"]
    if not whole:
        notes.insert(0, f"measured on {size / 2**20:,.0f} MiB, not 1 GiB: at {per_s:,.0f} "
                        f"invoices/s the full {full_bytes / 2**20:,.0f} MiB "
                        f"({full_invoices:,} invoices) would take "
                        f"{full_invoices / per_s / 60:,.1f} min; projected peak at 1 GiB "
                        f"{projected:,.0f} MB (run `python -m bench.memory --full` to measure)")
    return result(f"memory on a huge export ({size / 2**20:,.0f} MiB CSV)", round(peak, 1),
                  "MB peak RSS", target=f"<= {TARGET_MB} MB at ~1 GB",
                  met=(peak if whole else projected) <= TARGET_MB,
                  notes=notes, file_bytes=size, invoices=run["invoices"],
                  seconds=round(run["seconds"], 1), projected_peak_mb=round(projected, 1),
                  measured_full_size=whole, growth_mb_per_million=round(slope * 1e6, 2))


argparse_hidden = "internal: ingest this file and print the measurement"

if __name__ == "__main__":
    main()
