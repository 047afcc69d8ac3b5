"""Posting figures: generated invoices through `sync` (poll, ingest, validate, resolve
the supplier, post) against the IFS emulator, under the tenant's request budget.

    python -m bench.posting [--quick] [--emulator process|thread]

The budget is 1000 requests/minute scaled to 100 requests / 6 s on both sides (emulator and
the connector's limiter, `ifs.requests_per_minute = 100` with `limiter_window = 6.0`), so a
window fills in seconds; rates are reported per minute. Each plan gets a fresh emulator and
ledger. The reference data is warmed first by a sync of one invoice per vendor (accounts, cost
centers, suppliers and their company links cached), then the emulator's request log is read
from that point for the measured sync.

The naive plan (`use_batch = false` and one GET before every write, see bench/naive.py) costs
tens of requests per invoice, i.e. about a minute of budget per 30 invoices: it is measured on
the first invoices of the same seeded set, which is enough for a per-invoice figure.

The portable plan (`batch_mode = "portable"`, the path for servers that refuse If-Match `$n`
references, issue 13) is measured the same way on as many invoices as the batched plan, in
rounds of `post_batch` (200) invoices, against the emulator with standard OData deep insert
switched on (`deep_insert`, as SAP CAP has it), and once more against the emulator as the
contract has it (no deep insert: the connector learns that from the first refusal and adds
the children in a `$batch` of their own, then re-reads the headers' ETags).
"""
from __future__ import annotations

import asyncio
import time
from collections import Counter
from pathlib import Path
from typing import Any

from adapters.ifs.client import IfsErp
from adapters.settings import settings_from_dict
from adapters.stampli.configured import ConfiguredReaders
from bench import emulator as emulators
from bench.common import (args, emit, hot_spots, log, ratio, result, scratch,
                          should_profile, stampli_settings)
from bench.generate import ifs_seed, write_invoices_csv
from bench.naive import read_before_every_write
from runtime import Runtime
from tests.fakes import FolderSource

VENDORS = 50
BUDGET = (100, 6.0)                    # = 1000 requests per 60 s, scaled by 1/10
PER_MINUTE = 60.0 / BUDGET[1] * BUDGET[0]
SECRET = "sandbox-secret"              # the emulator seed's client secret


def settings_for(folder: Path, base_url: str, *, use_batch: bool,
                 batch_mode: str = "auto") -> Any:
    return settings_from_dict({
        "connector": {"company": "10", "ledger": f"sqlite:///{folder}/ledger.db",
                      "data_dir": str(folder / "data"), "retry_base": "1s"},
        "stampli": {"host": "127.0.0.1", "username": "bench", "min_file_age": "0s",
                    "stable_wait": "0s", "companies": {"C1042": "10"}},
        "ifs": {"base_url": base_url, "realm": "acme1", "client_id": "ml-connector",
                "requests_per_minute": BUDGET[0], "use_batch": use_batch,
                "batch_mode": batch_mode,
                "posting": {"tax_accounts": {"TX8": "2640"}}},
    })


async def _warm(erp: IfsErp, folder: Path) -> None:
    """Reference data warm: validate and resolve the supplier of one invoice per vendor
    through the Erp port (accounts, cost centers, suppliers and company links cached)."""
    path = write_invoices_csv(folder / "invoices_C1042_warm.csv", VENDORS, prefix="WARM",
                              seed=7, vendors=VENDORS)
    for item in ConfiguredReaders(stampli_settings(), "10").invoices(path, path.name):
        await erp.validate(item.invoice)
        await erp.resolve_supplier(item.invoice, None)


async def _fill_window(erp: IfsErp) -> None:
    """Steady state of a budget-bound plan: the window is always full. Start it full, so a
    short measurement is not flattered by one free window's worth of requests."""
    ep = erp.endpoints["account"]
    while erp.limiter.in_window() < erp.limiter.limit:
        await erp.odata.send("GET", erp.odata.url(ep.projection, ep.entity_set, {"$top": "1"}),
                             what="filling the budget window", projection=ep.projection)


async def _warm_then_measure(runtime: Runtime, erp: IfsErp, folder: Path, outbound: Path,
                             emu: emulators.Emulator, invoices: int, naive: bool
                             ) -> dict[str, Any]:
    # One event loop for everything: the erp's limiter and token locks belong to one loop.
    await _warm(erp, folder)
    if naive:
        await _fill_window(erp)
    since = emu.last_seq()
    write_invoices_csv(outbound / "invoices_C1042_20261106120000.csv", invoices,
                       vendors=VENDORS)
    started = time.perf_counter()
    report = await runtime.sync()
    seconds = time.perf_counter() - started
    return {"report": report, "seconds": seconds, "since": since}


def run_plan(work: Path, where: str, invoices: int, *, naive: bool,
             batch_mode: str = "auto", deep_insert: bool = False) -> dict[str, Any]:
    folder = scratch(work, "posting-naive" if naive else f"posting-{batch_mode}")
    (folder / "data").mkdir()
    outbound = folder / "outbound"
    outbound.mkdir()
    emu = emulators.start(where, ifs_seed(VENDORS), BUDGET, folder, deep_insert=deep_insert)
    try:
        settings = settings_for(folder, emu.base_url, use_batch=not naive,
                                batch_mode=batch_mode)
        assert settings.ifs is not None
        erp = IfsErp(settings.ifs, SECRET, default_company="10", limiter_window=BUDGET[1])
        if naive:
            read_before_every_write(erp)
        runtime = Runtime(settings, erp=erp, source=FolderSource(outbound))
        try:
            run = asyncio.run(_warm_then_measure(runtime, erp, folder, outbound, emu, invoices,
                                                  naive))
        finally:
            runtime.close()
        seen = emu.http_requests(run["since"])
        ifs_invoices = len(emu.state()["invoices"])
    finally:
        emu.stop()
    report = run["report"]
    posted = report.moved.get("posted", 0)
    statuses = Counter(e["status"] for e in seen)
    return {"posted": posted, "requests": len(seen), "seconds": run["seconds"],
            "status_429": statuses.get(429, 0), "statuses": dict(statuses),
            "by_method": dict(Counter(e["method"] for e in seen)),
            "failed": report.failed[:5], "errors": report.errors,
            "limiter_waited_s": round(erp.limiter.waited, 2),
            "ifs_invoices_total": ifs_invoices,
            "per_invoice": len(seen) / posted if posted else None,
            "per_minute": posted / run["seconds"] * 60 if posted else 0.0}


def figures(batched: dict[str, Any], naive: dict[str, Any], invoices: int,
            naive_invoices: int, where: str, portable: dict[str, Any] | None = None,
            no_deep: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    where_note = ("emulator in its own process (`python -m sandbox.ifs`)" if where == "process"
                  else "emulator in a thread of the bench process (shares its GIL)")
    common = [f"{invoices:,} generated invoices (1-5 lines, 5% credit notes, USD/EUR/JPY, "
              f"{VENDORS} vendors); budget {BUDGET[0]} req / {BUDGET[1]:g} s = "
              f"{PER_MINUTE:,.0f}/min on both sides; {where_note}; reference data warmed "
              f"first (validate + resolve_supplier of one invoice per vendor, not counted)",
              f"measured sync: {batched['seconds']:.1f} s for poll + ingest + validate + "
              f"resolve + post, {batched['requests']} requests {batched['by_method']}, "
              f"statuses {batched['statuses']}"]
    naive_note = (f"naive plan on the first {naive_invoices} invoices of the same set: "
                  f"{naive['requests']} requests {naive['by_method']}, {naive['posted']} posted "
                  f"in {naive['seconds']:.1f} s, 429s {naive['status_429']}, limiter waited "
                  f"{naive['limiter_waited_s']} s")
    problems = [f"batched: {batched['failed']} {batched['errors']}"] \
        if batched["failed"] or batched["errors"] or batched["posted"] != invoices else []
    per_invoice = batched["per_invoice"]
    per_minute = batched["per_minute"]
    zero_429 = batched["status_429"] == 0
    rows = [
        result("requests per posted invoice, steady state",
               round(per_invoice, 4) if per_invoice is not None else None, "requests/invoice",
               target="<= 0.2", met=per_invoice is not None and per_invoice <= 0.2 and not problems,
               baseline={"name": "naive plan", "value": _round(naive["per_invoice"]),
                         "unit": "requests/invoice"},
               ratio=ratio(naive["per_invoice"], per_invoice), ratio_means="naive / batched",
               notes=common + problems, **{k: v for k, v in batched.items() if k != "failed"}),
        result("invoices posted per minute under the budget", round(per_minute), "invoices/min",
               target=">= 3,000, zero 429", met=per_minute >= 3000 and zero_429 and not problems,
               baseline={"name": "naive plan", "value": round(naive["per_minute"], 1),
                         "unit": "invoices/min"},
               ratio=ratio(per_minute, naive["per_minute"]), ratio_means="batched / naive",
               notes=[f"429 received: {batched['status_429']}; the client limiter waited "
                      f"{batched['limiter_waited_s']} s"], status_429=batched["status_429"]),
        result("naive plan: requests per posted invoice", _round(naive["per_invoice"]),
               "requests/invoice", target="baseline", notes=[naive_note],
               **{k: v for k, v in naive.items() if k != "failed"}),
        result("naive plan: invoices posted per minute", round(naive["per_minute"], 1),
               "invoices/min", target="baseline",
               notes=[f"at {_round(naive['per_invoice'])} requests per invoice the budget "
                      f"allows at most {PER_MINUTE / (naive['per_invoice'] or 1):,.0f}/min; "
                      f"all {invoices:,} would take "
                      f"{invoices / max(naive['per_minute'], 1e-9):,.0f} min"]),
    ]
    if portable is not None:
        rows.append(_portable_row(
            portable, naive, invoices, "<= 0.05", "server with deep insert (the emulator's "
            "`deep_insert`, as SAP CAP)", "per round of 200: headers with children inline, "
            "then the actions with the real ETags, for invoices and again for vouchers: one "
            "$batch each, one changeset per document"))
    if no_deep is not None:
        rows.append(_portable_row(
            no_deep, naive, invoices, "report", "server without deep insert (the emulator "
            "as the contract has it)", "per round of 200: headers, then their lines or "
            "rows (one changeset per document), the headers re-read for their ETags (GETs), "
            "then the actions: one $batch each, for invoices and for vouchers; the first "
            "round also sends the refused deep insert it learns from"))
    return rows


def _portable_row(plan: dict[str, Any], naive: dict[str, Any], invoices: int, target: str,
                  server: str, how: str) -> dict[str, Any]:
    per_invoice = plan["per_invoice"]
    clean = plan["posted"] == invoices and not plan["errors"] and not plan["failed"]
    met = clean if target == "report" else \
        clean and per_invoice is not None and per_invoice <= 0.05
    return result(
        f"portable path (batch_mode = \"portable\"), {server.split(' (')[0]}: requests per "
        "posted invoice", _round(per_invoice), "requests/invoice", target=target, met=met,
        baseline={"name": "naive plan", "value": _round(naive["per_invoice"]),
                  "unit": "requests/invoice"},
        ratio=ratio(naive["per_invoice"], per_invoice), ratio_means="naive / portable",
        notes=[f"{server}; {invoices:,} invoices of the same set: {plan['requests']} requests "
               f"{plan['by_method']}, {plan['posted']} posted in {plan['seconds']:.1f} s, "
               f"statuses {plan['statuses']}", how]
        + ([f"problems: {plan['failed']} {plan['errors']}"] if not clean else []),
        **{k: v for k, v in plan.items() if k != "failed"})


def _round(value: float | None) -> float | None:
    return round(value, 3) if value is not None else None


def main() -> None:
    opts = args(__doc__.splitlines()[0], lambda p: p.add_argument(
        "--emulator", choices=("thread", "process"), default="thread"))
    invoices = 200 if opts.quick else 2000
    naive_invoices = 6 if opts.quick else 12   # budget-bound: ~24 requests each
    log(f"batched plan: {invoices:,} invoices, emulator in a {opts.emulator}")
    batched = run_plan(opts.work, opts.emulator, invoices, naive=False)
    log(f"batched: {batched['per_invoice']} req/invoice, {batched['per_minute']:,.0f}/min; "
        f"naive plan: {naive_invoices} invoices")
    naive = run_plan(opts.work, opts.emulator, naive_invoices, naive=True)
    log(f"naive: {naive['per_invoice']} req/invoice, {naive['per_minute']:,.1f}/min")
    portable = run_plan(opts.work, opts.emulator, invoices, naive=False,
                        batch_mode="portable", deep_insert=True)
    log(f"portable, deep insert: {portable['per_invoice']} req/invoice")
    no_deep = run_plan(opts.work, opts.emulator, invoices, naive=False, batch_mode="portable")
    log(f"portable, no deep insert: {no_deep['per_invoice']} req/invoice")
    rows = figures(batched, naive, invoices, naive_invoices, opts.emulator, portable, no_deep)
    unmet = [row for row in rows[:2] if should_profile(opts.profile, row["met"])]
    if unmet:
        # The connector's side only: pyinstrument samples this thread, not the emulator.
        size = invoices // 4
        log(f"profiling the batched plan on {size} invoices")
        _, spots = hot_spots(lambda: run_plan(opts.work, opts.emulator, size, naive=False))
        for row in unmet:
            row["notes"] += [f"pyinstrument, batched plan on {size} invoices (warm-up "
                             "included):"] + spots
    emit(rows, opts.out)


if __name__ == "__main__":
    main()
