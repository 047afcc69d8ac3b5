"""One contract suite for the `Erp` port, run against the in-memory fake the pipeline tests
use and against IfsErp on the emulator: what the pipeline may rely on from either. Every test
runs on both, so the fake cannot drift from the real adapter. Each asserts what the port
answers and what IFS then holds, never how the answer was made."""
from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from ledger.model import VendorRecord
from decimal import Decimal

from ledger.ports import ErpDocument, ErpFailure, PostingResult, SupplierResolution, ValidationOutcome
from tests.fakes import FakeErp

from .helpers import make_invoice, request, run, simple, vendor_record


class FakeIfs:
    """What the fake holds, seen as a test looks at IFS."""

    def __init__(self, erp: FakeErp) -> None:
        self.erp = erp

    def documents(self) -> list[tuple[str, str]]:
        return sorted((ref, d["invoice_number"]) for ref, d in self.erp.documents.items())

    def add_supplier(self, supplier_id: str, name: str) -> None:
        """A supplier IFS knows, linked to no company yet."""
        self.erp.suppliers[supplier_id] = {"Name": name}
        self.erp.links[supplier_id] = set()

    def enter_by_hand(self, company: str, supplier_id: str, number: str, currency: str,
                      net: str, tax: str, gross: str) -> str:
        return self.erp.enter_by_hand(company, supplier_id, number, currency, net, tax, gross)


class EmulatedIfs:
    def __init__(self, emu: Any) -> None:
        self.emu = emu

    def documents(self) -> list[tuple[str, str]]:
        return sorted((i["ExternalRef"], i["InvoiceNo"]) for i in self.emu.state()["invoices"])

    def add_supplier(self, supplier_id: str, name: str) -> None:
        self.emu.seed({"suppliers": [{"SupplierId": supplier_id, "Name": name}]})

    def enter_by_hand(self, company: str, supplier_id: str, number: str, currency: str,
                      net: str, tax: str, gross: str) -> str:
        """As a person typing it into IFS: the emulator's own create rule, no ExternalRef."""
        from sandbox.ifs.rules import create_invoice

        rec = create_invoice(self.emu.store, {
            "Company": company, "Identity": supplier_id, "InvoiceNo": number,
            "InvoiceDate": "2026-11-04", "Currency": currency, "NetCurrAmount": net,
            "VatCurrAmount": tax, "GrossCurrAmount": gross})
        return str(rec["InvoiceId"])


Body = Callable[[Any, Any], Awaitable[None]]


@pytest.fixture(params=["fake", "ifs"])
def on_erp(request) -> Callable[[Body], None]:
    """Runs `body(erp, ifs)` against one backend."""
    def go(body: Body) -> None:
        if request.param == "ifs":
            run(lambda emu, erp: body(erp, EmulatedIfs(emu)))
        else:
            erp = FakeErp()
            asyncio.run(body(erp, FakeIfs(erp)))
    return go


# ---------------------------------------------------------------------- validate

def test_validate_passes_and_names_a_missing_account(on_erp):
    async def body(erp, ifs):
        outcome = await erp.validate(simple())
        assert isinstance(outcome, ValidationOutcome) and outcome.checks
        with pytest.raises(ErpFailure) as err:
            await erp.validate(make_invoice([("6999", "CC210", "1.00", "TX8", "0.08")]))
        assert err.value.kind == "reference"
        assert "GL account 6999 does not exist in IFS company 10 (invoice V00231/INV-0117, " \
               "line 1" in str(err.value)
        assert "`ml-connector replay V00231/INV-0117 --reason \"...\"`" in str(err.value)
    on_erp(body)


def test_validate_names_every_unknown_value_with_its_lines(on_erp):
    async def body(erp, ifs):
        with pytest.raises(ErpFailure) as err:
            await erp.validate(make_invoice([("6100", "CC999", "1.00", "TX8", "0.08"),
                                             ("6998", "CC999", "2.00", "TX8", "0.16")]))
        message = str(err.value)
        assert err.value.kind == "reference"
        assert "cost center CC999 (code part B) does not exist in IFS company 10 (invoice" \
               " V00231/INV-0117, lines 1, 2)" in message
        assert "GL account 6998 does not exist in IFS company 10 (invoice V00231/INV-0117," \
               " line 2)" in message
    on_erp(body)


def test_amounts_a_currency_cannot_hold_are_data_not_reference(on_erp):
    async def body(erp, ifs):
        with pytest.raises(ErpFailure) as err:
            await erp.validate(make_invoice([("6100", "CC210", "1.00", "TX8", "0.08")],
                                            currency="JPY"))
        assert err.value.kind == "data" and "JPY" in str(err.value)
        results = await erp.post([request(make_invoice([("6100", "CC210", "1.00", "TX8",
                                                         "0.08")], currency="JPY"))])
        assert isinstance(results[0], ErpFailure) and results[0].kind == "data"
        assert ifs.documents() == []
    on_erp(body)


# ---------------------------------------------------------------------- suppliers

def test_resolve_existing_and_created(on_erp):
    async def body(erp, ifs):
        res = await erp.resolve_supplier(simple(), vendor_record())
        assert isinstance(res, SupplierResolution) and (res.supplier_id, res.how) == (
            "V00231", "existing")
        new = await erp.resolve_supplier(simple(vendor="V00777"), vendor_record("V00777"))
        assert (new.supplier_id, new.how) == ("V00777", "created")
        again = await erp.resolve_supplier(simple("INV-2", vendor="V00777"), None)
        assert (again.supplier_id, again.how) == ("V00777", "existing")
        synced = await erp.sync_vendor(vendor_record("V00777"))   # created from this record
        assert (synced["action"], synced["fields"]) == ("unchanged", [])
    on_erp(body)


def test_a_supplier_of_another_company_is_linked(on_erp):
    async def body(erp, ifs):
        ifs.add_supplier("V00500", "Globex")
        res = await erp.resolve_supplier(simple(vendor="V00500"), None)
        assert (res.supplier_id, res.how) == ("V00500", "linked_to_company")
        again = await erp.resolve_supplier(simple("INV-2", vendor="V00500"), None)
        assert again.how == "existing"
    on_erp(body)


def test_an_unknown_supplier_without_a_vendor_record_is_a_reference_failure(on_erp):
    async def body(erp, ifs):
        with pytest.raises(ErpFailure) as err:
            await erp.resolve_supplier(simple(vendor="V05555"), None)
        assert err.value.kind == "reference"
        assert "supplier V05555 does not exist in IFS" in str(err.value)
        assert "export the vendor from Stampli" in str(err.value)
        synced = await erp.sync_vendor(vendor_record("V05555"))   # still not created
        assert synced["action"] == "absent"
    on_erp(body)


def test_sync_vendor_says_what_changed(on_erp):
    async def body(erp, ifs):
        outcome = await erp.sync_vendor(vendor_record())
        assert (outcome["supplier_id"], outcome["action"], outcome["fields"]) == (
            "V00231", "unchanged", [])
        renamed = VendorRecord(vendor_id="V00231", name="Acme Supply Co", country="us")
        outcome = await erp.sync_vendor(renamed)
        assert (outcome["action"], outcome["fields"]) == ("updated", ["Name"])  # US already
        assert (await erp.sync_vendor(renamed))["action"] == "unchanged"
        assert (await erp.sync_vendor(vendor_record("V09999")))["action"] == "absent"
    on_erp(body)


# ---------------------------------------------------------------------- posting

def test_post_one_result_per_request_in_order_then_found(on_erp):
    async def body(erp, ifs):
        reqs = [request(simple(f"INV-{n}")) for n in range(3)]
        results = await erp.post(reqs)
        assert len(results) == 3 and all(isinstance(r, PostingResult) for r in results)
        assert len({r.ifs_invoice_id for r in results}) == 3
        assert all(r.voucher.get("VoucherNo") and not r.found_existing for r in results)
        found = await erp.find_posted(reqs[1])
        assert found is not None and found.found_existing
        assert found.ifs_invoice_id == results[1].ifs_invoice_id
        assert await erp.find_posted(request(simple("NEVER-SENT"))) is None
        assert ifs.documents() == [(f"led-INV-{n}", f"INV-{n}") for n in range(3)]
    on_erp(body)


def test_a_refused_document_does_not_fail_its_neighbours(on_erp):
    async def body(erp, ifs):
        results = await erp.post([request(simple("INV-1")),
                                  request(simple("INV-2", account="6999")),
                                  request(simple("INV-3", vendor="V09999"))])
        assert isinstance(results[0], PostingResult)
        assert [(r.kind, r.code) for r in results[1:]] == [
            ("reference", "ACCOUNT_NOT_FOUND"), ("reference", "SUPPLIER_NOT_FOUND")]
        assert "6999" in str(results[1]) and "V09999" in str(results[2])
        assert ifs.documents() == [("led-INV-1", "INV-1")]
    on_erp(body)


def test_posting_the_same_invoice_again_gives_back_the_first_document(on_erp):
    async def body(erp, ifs):
        [first] = await erp.post([request(simple("INV-1"))])
        [again] = await erp.post([request(simple("INV-1"))])
        assert isinstance(again, PostingResult) and again.found_existing
        assert again.ifs_invoice_id == first.ifs_invoice_id
        assert ifs.documents() == [("led-INV-1", "INV-1")]
    on_erp(body)


def test_a_number_ifs_holds_for_another_ledger_invoice_is_a_conflict(on_erp):
    async def body(erp, ifs):
        await erp.post([request(simple("INV-1"))])
        other = request(simple("INV-1"), ledger_id="led-other")
        [result] = await erp.post([other])
        assert isinstance(result, ErpFailure) and result.kind == "conflict"
        assert "created for another ledger invoice (ExternalRef led-INV-1)" in str(result)
        with pytest.raises(ErpFailure) as err:
            await erp.find_posted(other)
        assert err.value.kind == "conflict" and "ExternalRef led-INV-1" in str(err.value)
        assert ifs.documents() == [("led-INV-1", "INV-1")]
    on_erp(body)


def test_a_document_ifs_holds_with_other_amounts_is_a_conflict_not_found(on_erp):
    async def body(erp, ifs):
        await erp.post([request(simple("INV-1"))])
        amended = request(simple("INV-1", amount="700.00", tax="56.00"))
        with pytest.raises(ErpFailure) as err:
            await erp.find_posted(amended)
        assert err.value.kind == "conflict"
        assert "GrossCurrAmount 810.00 (the invoice now says 756.00)" in str(err.value)
        [result] = await erp.post([amended])
        assert isinstance(result, ErpFailure) and result.kind == "conflict"
        assert ifs.documents() == [("led-INV-1", "INV-1")]
    on_erp(body)


# ---------------------------------------------------------------------- reading one document

def test_read_invoice_by_its_invoice_id(on_erp):
    async def body(erp, ifs):
        ifs_id = ifs.enter_by_hand("10", "V00231", "HAND-1", "USD", "100.00", "8.00", "108.00")
        doc = await erp.read_invoice("10", int(ifs_id))
        assert isinstance(doc, ErpDocument)
        assert (doc.ifs_invoice_id, doc.company, doc.supplier_id, doc.invoice_number,
                doc.currency, doc.invoice_type, doc.state) == (
            ifs_id, "10", "V00231", "HAND-1", "USD", "INVOICE", "Preliminary")
        assert [Decimal(x) for x in (doc.net, doc.tax, doc.gross)] == [
            Decimal("100.00"), Decimal("8.00"), Decimal("108.00")]
        assert await erp.read_invoice("10", 999999) is None
        [posted] = await erp.post([request(simple())])
        assert isinstance(posted, PostingResult)
        doc = await erp.read_invoice("10", int(posted.ifs_invoice_id))
        assert doc is not None and (doc.invoice_number, doc.state) == ("INV-0117", "Posted")
        assert doc.external_ref == "led-INV-0117"
        assert Decimal(doc.gross) == Decimal("810.00")
    on_erp(body)
