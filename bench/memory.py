"""Memory on a huge export: a generated ~1 GB invoice CSV parsed and recorded into SQLite,
peak RSS measured in a child process that does nothing else.

    python -m bench.memory [--quick] [--budget SECONDS] [--full]

The file is generated on the fly (bench.generate.write_invoices_csv_fast_until: seeded, one
rendered block repeated with new invoice numbers) into the work folder and deleted after.

Bounded time: the whole gigabyte (~1.7M invoices) takes about 3.5 minutes on 2 cores
(2026-11-30), within the time `make bench` leaves it, but a slower or busier machine may
not make it. So the child always reads the real ~1 GB file -- the reader's pass 1 (stream +
spill of every row) runs over all of it, which is where memory could grow with the file --
and then records invoices until `--budget` seconds have passed since the bench started
generating; if it gets there first it stops and closes the reader. The result says what
share was recorded, how long the whole file would take at the measured rate, the RSS growth
per invoice over the second half of recording and the peak projected to the end of the file
from it. `--full` records the whole file, however long it takes.
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


# ---------------------------------------------------------------------- the child

def child(path: Path, folder: Path, deadline: float | None) -> dict[str, Any]:
    """Ingest `path`; RSS sampled every 0.2 s with how many invoices were consumed. With a
    deadline (seconds from now), recording stops there: the reader is closed early."""
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
        try:
            for item in items:
                consumed[0] += 1
                yield item
                if deadline is not None and consumed[0] % 500 == 0 \
                        and time.perf_counter() - started > deadline:
                    stopped[0] = True
                    return
        finally:
            items.close()               # stops the reader (and its worker) at once

    stopped = [False]

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
            "invoices": summary["invoices_new"], "stopped": stopped[0], "samples": samples}


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

def main() -> None:
    def extra(p: Any) -> None:
        p.add_argument("--budget", type=float, default=300.0,
                       help="seconds for generating and ingesting (recording stops then)")
        p.add_argument("--full", action="store_true", help="record the whole file")
        p.add_argument("--child", type=Path, help=argparse_hidden)
        p.add_argument("--deadline", type=float, help=argparse_hidden)

    opts = args(__doc__.splitlines()[0], extra)
    if opts.child:
        print(json.dumps(child(opts.child, opts.child.parent, opts.deadline)))
        return
    from bench.generate import write_invoices_csv_fast_until

    started = time.perf_counter()
    size = (32 << 20) if opts.quick else FULL_BYTES
    folder = scratch(opts.work, "memory")
    path = folder / "invoices_C1042_20261106000000.csv"
    log(f"generating {size / 2**20:,.0f} MiB")
    invoices = write_invoices_csv_fast_until(path, size)
    gen_s = time.perf_counter() - started
    size = path.stat().st_size
    deadline = None if opts.full or opts.quick else \
        max(opts.budget - (time.perf_counter() - started) - 3, 10.0)
    log(f"{invoices:,} invoices in {gen_s:.1f} s; ingesting in a child process"
        + (f", recording stops after {deadline:.0f} s" if deadline else ""))
    env = {**os.environ, "TMPDIR": str(folder), "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "bench.memory", "--child", str(path)]
    if deadline:
        command += ["--deadline", f"{deadline:.1f}"]
    try:
        out = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True,
                             check=True)
    except subprocess.CalledProcessError as exc:
        raise SystemExit(f"memory child failed:\n{exc.stderr}") from None
    finally:
        path.unlink(missing_ok=True)          # never leave a gigabyte behind
    run = json.loads(out.stdout.strip().splitlines()[-1])
    emit([figure(run, size, invoices, gen_s)], opts.out)


def figure(run: dict[str, Any], size: int, invoices: int, gen_s: float) -> dict[str, Any]:
    # Kernel-tracked peaks, no sampling gaps: this process's plus its largest child's is an
    # upper bound of what they held at once (the sampled sum is in the notes).
    peak = run["peak_rss_mb"] + run["children_peak_mb"]
    slope = growth_per_invoice(run["samples"])
    done, whole = run["invoices"], not run["stopped"]
    share = done / invoices if invoices else 1.0
    per_s = rate(done, run["seconds"] - run["pass1_seconds"])
    projected = peak + slope * max(invoices - done, 0)
    notes = [f"{size / 2**20:,.0f} MiB ({invoices:,} invoices) generated in {gen_s:.1f} s; "
             f"pass 1 of the reader (whole file, before the first invoice) "
             f"{run['pass1_seconds']:.1f} s, then {done:,} invoices recorded at "
             f"{per_s:,.0f}/s",
             f"peak RSS: ingesting process {run['peak_rss_mb']:,.0f} MB + largest child "
             f"(reader worker) {run['children_peak_mb']:,.0f} MB; sampled every 0.2 s, the "
             f"process tree together peaked at {run['sampled_peak_mb']:,.0f} MB",
             f"RSS growth over the second half of recording: {slope * 1e6:,.1f} MB per "
             f"million invoices"]
    if not whole:
        whole_min = (run["pass1_seconds"] + invoices / per_s) / 60 if per_s else float("inf")
        notes.insert(0, f"time budget: {done:,} of {invoices:,} invoices ({share:.0%}) recorded "
                        f"after pass 1 read the whole file; the whole file would take "
                        f"{whole_min:,.1f} min; peak projected to its end from the growth "
                        f"below: {projected:,.0f} MB (`python -m bench.memory --full` measures "
                        "it whole)")
    label = f"{size / 2**20:,.0f} MiB CSV" + ("" if whole else f", {share:.0%} recorded")
    return result(f"memory on a huge export ({label})", round(peak, 1), "MB peak RSS",
                  target=f"<= {TARGET_MB} MB at ~1 GB",
                  met=(peak if whole else projected) <= TARGET_MB,
                  notes=notes, file_bytes=size, invoices_in_file=invoices,
                  invoices_recorded=done, seconds=round(run["seconds"], 1),
                  projected_peak_mb=round(projected, 1), whole_file=whole,
                  growth_mb_per_million=round(slope * 1e6, 2))


argparse_hidden = "internal: ingest this file and print the measurement"

if __name__ == "__main__":
    main()
