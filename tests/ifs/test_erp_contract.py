"""One contract suite for the `Erp` port, run against the in-memory fake the pipeline tests
use and against IfsErp on the emulator: what the pipeline may rely on from either."""
from __future__ import annotations

import asyncio

import pytest

from ledger.ports import ErpFailure, PostingResult, SupplierResolution, ValidationOutcome
from tests.fakes import FakeErp

from .helpers import make_invoice, request, run, simple, vendor_record


def with_erp(kind, test):
    if kind == "ifs":
        return run(lambda emu, erp: test(erp))

    async def fake():
        return await test(FakeErp())
    return asyncio.run(fake())


backends = pytest.mark.parametrize("kind", ["fake", "ifs"])


@backends
def test_validate_passes_and_names_a_missing_account(kind):
    async def body(erp):
        outcome = await erp.validate(simple())
        assert isinstance(outcome, ValidationOutcome) and outcome.checks
        with pytest.raises(ErpFailure) as err:
            await erp.validate(make_invoice([("6999", "CC210", "1.00", "TX8", "0.08")]))
        assert err.value.kind == "reference"
        assert "GL account 6999 does not exist in IFS company 10 (invoice V00231/INV-0117, " \
               "line 1" in str(err.value)
    with_erp(kind, body)


@backends
def test_resolve_existing_and_created(kind):
    async def body(erp):
        res = await erp.resolve_supplier(simple(), vendor_record())
        assert isinstance(res, SupplierResolution) and (res.supplier_id, res.how) == (
            "V00231", "existing")
        new = await erp.resolve_supplier(simple(vendor="V00777"), vendor_record("V00777"))
        assert (new.supplier_id, new.how) == ("V00777", "created")
    with_erp(kind, body)


@backends
def test_post_one_result_per_request_in_order_then_found(kind):
    async def body(erp):
        reqs = [request(simple(f"INV-{n}")) for n in range(3)]
        results = await erp.post(reqs)
        assert len(results) == 3 and all(isinstance(r, PostingResult) for r in results)
        assert len({r.ifs_invoice_id for r in results}) == 3
        assert all(r.voucher.get("VoucherNo") and not r.found_existing for r in results)
        found = await erp.find_posted(reqs[1])
        assert found is not None and found.found_existing
        assert found.ifs_invoice_id == results[1].ifs_invoice_id
        assert await erp.find_posted(request(simple("NEVER-SENT"))) is None
    with_erp(kind, body)


@backends
def test_sync_vendor_reports_supplier_and_action(kind):
    async def body(erp):
        outcome = await erp.sync_vendor(vendor_record())
        assert outcome["supplier_id"] == "V00231"
        assert outcome["action"] in ("unchanged", "updated", "created", "absent")
        assert isinstance(outcome.get("fields", []), list)
    with_erp(kind, body)
