"""How many IFS requests an invoice costs: the target is <= 0.2 per posted invoice with
batching and a warm reference cache (one $batch for the invoices, one for the vouchers)."""
from __future__ import annotations

from ledger.ports import PostingResult

from .helpers import make_invoice, odata_log, request, run, vendor_record


def invoices(start, n):
    return [make_invoice([("6100", "CC210", "750.00", "TX8", "60.00"),
                          ("6540", "CC220", "500.00", "VAT19", "95.00")],
                         number=f"INV-{i:05d}", po="PO-55012") for i in range(start, start + n)]


async def pipeline(erp, batch):
    """What the pipeline does per invoice: validate, resolve the supplier, then post."""
    for inv in batch:
        await erp.validate(inv)
        await erp.resolve_supplier(inv, vendor_record())
    return await erp.post([request(inv) for inv in batch])


def test_requests_per_invoice_cold_and_warm(capsys):
    async def body(emu, erp):
        cold = await pipeline(erp, invoices(0, 50))
        cold_requests = erp.requests_sent
        warm = await pipeline(erp, invoices(50, 50))
        warm_requests = erp.requests_sent - cold_requests
        assert all(isinstance(r, PostingResult) for r in cold + warm)
        assert len(emu.state()["invoices"]) == 100 and len(emu.state()["vouchers"]) == 100
        assert len(odata_log(emu)) == erp.requests_sent
        with capsys.disabled():
            print(f"\n  IFS requests per invoice: cold {cold_requests / 50:.2f} "
                  f"({cold_requests} for 50), warm {warm_requests / 50:.2f} "
                  f"({warm_requests} for 50)")
        assert cold_requests / 50 <= 0.2
        assert warm_requests == 2 and warm_requests / 50 <= 0.2
    run(body)
