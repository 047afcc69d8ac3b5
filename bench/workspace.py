"""The exception workspace's exceptions page: answer time over real HTTP with 100,000 invoices
of which 10,000 are exceptions (SQLite).

    python -m bench.workspace [--quick]

The status view is filled directly (90,000 posted, 10,000 failed / retry scheduled / needs
attention / awaiting approval over 200 vendors and five failure kinds): the page reads only
that view, so how the rows got there does not matter. The server is the real one
(web.app.build_app on loopback) with a signed session cookie; timed is the whole answer,
request to last byte, for the first page, a late page, a kind filter and a search.
"""
from __future__ import annotations

import asyncio
import random
import statistics
import time
from datetime import datetime, timedelta, timezone

from bench.common import args, emit, log, result, scratch
from ledger.status import COLUMNS, empty_row

TARGET_MS = 300.0
KINDS = ("data", "reference", "transient", "rejected", "conflict")


def fill(rt, invoices: int, exceptions: int) -> None:
    from projections.status import TABLE

    rng = random.Random(42)
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    rows = []
    for n in range(invoices):
        row = empty_row(f"{n:08d}-0000-4000-8000-{n:012d}")
        stuck = n < exceptions
        state = rng.choice(("failed", "failed", "retry_scheduled", "needs_attention",
                            "awaiting_approval")) if stuck else "posted"
        row.update(company="10", vendor_id=f"V{rng.randrange(200):05d}",
                   document_type="Invoice", invoice_number=f"INV-{n:07d}", currency="USD",
                   total=f"{rng.randrange(10, 99999)}.00", state=state,
                   failure_kind=rng.choice(KINDS) if state not in ("posted",
                                                                   "awaiting_approval") else "",
                   failure_message="GL account 6540 does not exist in IFS company 10"
                   if stuck else "", file_name="invoices_C1042_20260101000000.csv",
                   updated_at=(start + timedelta(seconds=rng.randrange(30_000_000))).isoformat(),
                   version=5)
        rows.append([row[c] for c in COLUMNS])
    rt.projector.ensure_tables()
    with rt.projector.store.transaction() as cur:
        cur.executemany(f"INSERT INTO {TABLE} ({', '.join(COLUMNS)}) VALUES"
                        f" ({', '.join('?' * len(COLUMNS))})", rows)


async def measure(rt, paths: list[str], repeats: int) -> dict[str, list[float]]:
    import aiohttp
    from aiohttp.test_utils import TestServer

    from web.app import build_app
    from web.keys import SESSIONS
    from web.session import COOKIE

    app = build_app(rt)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    cookie = app[SESSIONS]._signer.dumps({"user": "bench", "role": "viewer", "csrf": "x"})
    timings: dict[str, list[float]] = {p: [] for p in paths}
    try:
        async with aiohttp.ClientSession(cookies={COOKIE: cookie}) as client:
            for path in paths:
                for i in range(repeats + 2):
                    started = time.perf_counter()
                    async with client.get(server.make_url(path), allow_redirects=False) as r:
                        body = await r.read()
                        assert r.status == 200 and b"Exceptions" in body, (path, r.status)
                    if i >= 2:                              # two warm-up requests
                        timings[path].append((time.perf_counter() - started) * 1000)
    finally:
        await server.close()
    return timings


def main() -> None:
    opts = args(__doc__.splitlines()[0])
    from adapters.settings import settings_from_dict
    from runtime import Runtime

    invoices, exceptions = (10_000, 1_000) if opts.quick else (100_000, 10_000)
    folder = scratch(opts.work, "workspace")
    settings = settings_from_dict({"connector": {
        "company": "10", "ledger": f"sqlite:///{folder}/ledger.db",
        "data_dir": str(folder / "data")}, "web": {"approval_age": "1d"}})
    rt = Runtime(settings)
    try:
        log(f"filling the status view: {invoices} invoices, {exceptions} exceptions")
        fill(rt, invoices, exceptions)
        paths = ["/exceptions", "/exceptions?page=150", "/exceptions?kind=reference",
                 "/exceptions?q=INV-00012"]
        timings = asyncio.run(measure(rt, paths, 5 if opts.quick else 20))
    finally:
        rt.close()
    notes, worst = [], 0.0
    for path, values in timings.items():
        p95 = sorted(values)[max(0, int(len(values) * 0.95) - 1)]
        worst = max(worst, p95)
        notes.append(f"{path}: median {statistics.median(values):.0f} ms, p95 {p95:.0f} ms")
    emit([result(f"exceptions page, {invoices:,} invoices / {exceptions:,} exceptions (p95)",
                 round(worst, 1), "ms", target=f"<= {TARGET_MS:.0f} ms",
                 met=worst <= TARGET_MS, notes=notes)], opts.out)


if __name__ == "__main__":
    main()
