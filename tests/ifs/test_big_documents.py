"""Issue 17, item 13: a document with more lines than one `$batch` may carry (5000
operations) stays in `$batch` (its lines go in chunks), also under a 429 burst, where it waits
for the budget instead of failing or going line by line. Request counts are what IFS saw.

To keep the tests fast, the per-`$batch` limit is 500 on both sides (the emulator refuses a
larger `$batch` with ODP_REQUEST_TOO_LARGE, as IFS does above 5000); the shape is the same."""
from __future__ import annotations

import pytest

from adapters.ifs import batch as client_batch
from ledger.ports import PostingResult
from sandbox.ifs import batch as emulator_batch

from .helpers import make_invoice, odata_log, request, run

LIMIT = 500
LINES = 1200                            # > LIMIT: cannot travel in one changeset


@pytest.fixture(autouse=True)
def small_batch_limit(monkeypatch):
    monkeypatch.setattr(client_batch, "MAX_OPERATIONS", LIMIT)
    monkeypatch.setattr(emulator_batch, "MAX_OPERATIONS", LIMIT)


def big_invoice():
    return make_invoice([("6100", "CC210", "1.00", "TX8", "0.08")] * LINES, number="BIG-1")


def _batches(emu):
    return [e for e in odata_log(emu) if e["path"].endswith("$batch")]


def _check_posted(emu, result):
    assert isinstance(result, PostingResult), result
    [invoice] = emu.state()["invoices"]
    assert invoice["Objstate"] == "Posted" and len(invoice["Lines"]) == LINES
    [voucher] = emu.state()["vouchers"]
    assert voucher["Objstate"] == "Approved" and len(voucher["Rows"]) == LINES + 2


FAST = {"emulator": {"budget": (100_000, 60.0)}, "requests_per_minute": 100_000}


def test_a_document_over_the_batch_limit_is_posted_in_a_few_batches():
    async def body(emu, erp):
        [result] = await erp.post([request(big_invoice())])
        _check_posted(emu, result)
        # header, 3 chunks of lines, post; voucher header, 3 chunks of rows, approve
        assert len(odata_log(emu)) == 10, [e["path"][-30:] for e in odata_log(emu)]
        assert len(_batches(emu)) == 6 and all(e["status"] == 200 for e in _batches(emu))
        operations = [e for e in emu.requests() if e.get("kind") == "batch-operation"]
        assert len(operations) >= 2 * LINES
    run(body, **FAST)


def test_a_429_burst_on_a_big_document_waits_for_the_budget_in_batch():
    async def body(emu, erp):
        erp.start_cycle(60)                       # the cycle's deadline bounds the waiting
        emu.rate_limit_burst(10, retry_after=0)   # more 429s than `retries` allows
        [result] = await erp.post([request(big_invoice())])
        _check_posted(emu, result)
        refused = [e for e in odata_log(emu) if e["status"] == 429]
        assert len(refused) == 10
        assert len(odata_log(emu)) == 10 + 10, len(odata_log(emu))
    run(body, **FAST)


def test_a_429_burst_on_a_batch_of_small_documents_waits_too():
    async def body(emu, erp):
        erp.start_cycle(60)
        emu.rate_limit_burst(10, retry_after=0, path="$batch")
        reqs = [request(make_invoice([("6100", "CC210", "10.00", "TX8", "0.80")],
                                     number=f"S-{n}")) for n in range(20)]
        results = await erp.post(reqs)
        assert all(isinstance(r, PostingResult) for r in results)
        assert len(odata_log(emu)) <= 2 + 10 + 2
    run(body, **FAST)
