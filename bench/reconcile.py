"""Reconciliation figure: a month of 100,000 posted invoices (ledger and IFS agree, except a
few documents deleted or edited in IFS), reconciled against the IFS emulator over HTTP under
the tenant's budget (1000 requests/minute): how many requests it needed and how long it took.

    python -m bench.reconcile [--quick]

The ledger is written directly (the events a sync records: Discovered, Parsed,
VendorResolved, Posted) and the emulator's tables filled in-process, so the figure measures
the reconciliation alone; the status view is brought up to date before the clock starts."""
from __future__ import annotations

import time
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from adapters.settings import settings_from_dict
from bench.common import args, emit, log, result, scratch
from ledger.app import Ledger
from ledger.invoice import Invoice
from ledger.model import CanonicalInvoice, InvoiceLine, invoice_data_and_hash
from projections.reconcile import Period
from runtime import Runtime
from sandbox.ifs.checks import coerce
from sandbox.ifs.runner import start_in_thread
from sandbox.ifs.schema import ENTITIES

TAMPERED = 10                       # 5 deleted, 5 edited in IFS


def _invoice(n: int) -> CanonicalInvoice:
    day = date(2026, 11, 1) + timedelta(days=n % 30)
    net = Decimal(100 + n % 900) + Decimal(n % 100) / 100
    tax = (net * Decimal("0.08")).quantize(Decimal("0.01"))
    return CanonicalInvoice(
        company="10", document_type="Invoice", invoice_number=f"B-{n:07d}",
        vendor_id=f"V{n % 500:05d}", vendor_name="Bench Supply", invoice_date=day.isoformat(),
        due_date=day.isoformat(), currency="USD", net=net, tax=tax, total=net + tax,
        approval_status="Approved", approved_at=f"{day.isoformat()}T12:00:00Z",
        lines=(InvoiceLine(line_number=1, gl_account="6100", cost_center="CC210", net=net,
                           tax_code="TX8", tax=tax),))


def build(ledger: Ledger, count: int) -> tuple[list[dict], list[dict]]:
    """Record `count` posted invoices; return the IFS invoices and vouchers that match."""
    invoices, vouchers, batch = [], [], []
    for n in range(count):
        inv = _invoice(n)
        data, digest = invoice_data_and_hash(inv)
        events: list[Any] = Invoice.discovered_events(
            inv.id, company="10", vendor_id=inv.vendor_id, document_type="Invoice",
            invoice_number=inv.invoice_number, file_name="invoices_C1042_bench.csv",
            file_sha256="0" * 64, locations=[n + 2], invoice=data, content_hash=digest,
            violations=[], approved=True)
        now = Invoice.Event.create_timestamp
        voucher = {"Company": "10", "AccountingYear": 2026, "VoucherType": "I",
                   "VoucherNo": 20260001 + n}
        events.append(Invoice.VendorResolved(originator_id=inv.id, originator_version=3,
                                             timestamp=now(), connector_version="bench",
                                             supplier_id=inv.vendor_id, how="existing",
                                             exchanges=[]))
        events.append(Invoice.Posted(originator_id=inv.id, originator_version=4,
                                     timestamp=now(), connector_version="bench",
                                     ifs_invoice_id=str(1001 + n), voucher=voucher, etags={},
                                     exchanges=[], found_existing=False, content_hash=digest))
        batch.extend(events)
        invoices.append({"Company": "10", "InvoiceId": 1001 + n, "Identity": inv.vendor_id,
                         "InvoiceNo": inv.invoice_number, "InvoiceType": "INVOICE",
                         "InvoiceDate": inv.invoice_date, "Currency": "USD",
                         "NetCurrAmount": str(inv.net), "VatCurrAmount": str(inv.tax),
                         "GrossCurrAmount": str(inv.total), "ExternalRef": str(inv.id)})
        vouchers.append({**voucher, "VoucherDate": inv.invoice_date, "Currency": "USD",
                         "ExternalRef": str(inv.id)})
        if len(batch) >= 20_000:
            ledger.save_all(batch)
            batch = []
    if batch:
        ledger.save_all(batch)
    return invoices, vouchers


def fill(emulator: Any, invoices: list[dict], vouchers: list[dict]) -> None:
    def put_all() -> None:
        store = emulator.emulator.store
        for name, rows, state in (("invoice", invoices, "Posted"),
                                  ("voucher", vouchers, "Approved")):
            edef = ENTITIES[name]
            blank = {p: None for p in edef.props}
            for row in rows:
                store.put(name, {**blank, **coerce(edef, row), "Objstate": state})
        for row in invoices[:TAMPERED // 2]:                   # deleted in IFS by hand
            store.delete("invoice", ("10", row["InvoiceId"]))
        for row in invoices[TAMPERED // 2:TAMPERED]:           # edited in IFS by hand
            key = ("10", row["InvoiceId"])
            store.put("invoice", {**store.get("invoice", key),
                                  **coerce(ENTITIES["invoice"], {"GrossCurrAmount": "1.00"})})
    emulator.call(put_all)


def _time_ifs_reads(rt: Runtime) -> list[float]:
    """Wraps the runtime's IFS reading to time it apart: the emulator answers from this
    process (filtering its 100,000 rows in Python for every page), which a real IFS does
    not; the rest is the connector's own work."""
    spent: list[float] = []
    read = rt._read_ifs_period

    async def timed(*a: Any, **kw: Any) -> Any:
        started = time.perf_counter()
        try:
            return await read(*a, **kw)
        finally:
            spent.append(time.perf_counter() - started)

    rt._read_ifs_period = timed          # type: ignore[method-assign]
    return spent


def register_pass(rt: Runtime) -> tuple[int, float, float]:
    """`audit register` over the same ledger, written to nowhere: rows, seconds, and the
    peak of memory allocated meanwhile (tracemalloc, which slows it: the rate is a floor)."""
    import tracemalloc

    from projections.register import iter_register, to_csv

    tracemalloc.start()
    started, rows = time.perf_counter(), 0
    for row in iter_register(rt.ledger):
        to_csv(row)
        rows += 1
    seconds = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return rows, seconds, peak


def main() -> None:
    opts = args(__doc__.split("\n")[0], lambda p: p.add_argument(
        "--invoices", type=int, default=0, help="how many (default 100,000; --quick 2,000)"))
    count = opts.invoices or (2_000 if opts.quick else 100_000)
    folder = scratch(opts.work, "reconcile")
    ifs = start_in_thread()
    try:
        settings = settings_from_dict({
            "connector": {"company": "10", "ledger": f"sqlite:///{folder}/ledger.db",
                          "data_dir": str(folder / "data")},
            "ifs": {"base_url": ifs.base_url, "realm": "acme1", "client_id": "ml-connector",
                    "requests_per_minute": 1000}})
        rt = Runtime(settings)
        rt.secrets.set("ifs.client_secret", "sandbox-secret")
        started = time.perf_counter()
        invoices, vouchers = build(rt.ledger, count)
        log(f"recorded {count} posted invoices in {time.perf_counter() - started:.1f}s")
        fill(ifs, invoices, vouchers)
        rt.projector.catch_up()
        log("IFS filled, status view current")
        period = Period("10", date(2026, 11, 1), date(2026, 11, 30), "approved")
        reading = _time_ifs_reads(rt)
        started = time.perf_counter()
        report, _ = rt.reconcile(period, "json")
        seconds = time.perf_counter() - started
        rows, register_seconds, peak = register_pass(rt)
        rt.close()
    finally:
        ifs.stop()
    found = report["counts"]["posted_missing_or_changed_in_ifs"]
    notes = [f"{count:,} invoices: {report['counts']['matched']:,} matched, {found} found"
             f" deleted or edited in IFS (of {TAMPERED} tampered)",
             f"IFS read: {report['ifs_documents']:,} supplier invoices and"
             f" {report['ifs_vouchers']:,} vouchers, page size 5000"]
    emit([result("reconciliation requests", report["ifs_requests"], "requests",
                 target="within 1000 requests/minute", met=report["ifs_requests"] <= 1000,
                 notes=notes, invoices=count),
          result("reconciliation time", round(seconds, 1), "s", target="reported",
                 notes=[f"{count:,} invoices: {sum(reading):.1f}s reading IFS (the emulator,"
                        f" in this process), {seconds - sum(reading):.1f}s the connector's own"
                        " work (ledger pass, matching, report)"],
                 invoices=count, found=found, ifs_seconds=round(sum(reading), 1)),
          result("posting register rate", round(rows / register_seconds), "rows/s",
                 target="reported", notes=[
                     f"{rows:,} rows as CSV in {register_seconds:.1f}s under tracemalloc;"
                     f" peak allocated {peak:.1f} MB (bounded: a page of the log and the"
                     " headers of the last 20,000 invoices read)"],
                 rows=rows, peak_mb=round(peak, 1))], opts.out)


if __name__ == "__main__":
    main()
