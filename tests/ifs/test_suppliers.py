"""Supplier resolution and vendor sync over real HTTP, including the 412 race."""
from __future__ import annotations

import pytest

from adapters.ifs.errors import PreconditionFailed
from ledger.model import VendorRecord
from ledger.ports import ErpFailure

from .helpers import odata_log, run, simple


def vendor(vid="V00231", **kw):
    return VendorRecord(vendor_id=vid, name=kw.pop("name", "Acme Industrial Supply"), **kw)


def test_existing_linked_supplier_needs_no_write():
    async def body(emu, erp):
        res = await erp.resolve_supplier(simple(), vendor())
        assert (res.supplier_id, res.how, res.exchanges) == ("V00231", "existing", [])
        assert all(e["method"] == "GET" for e in odata_log(emu))
        before = len(odata_log(emu))
        await erp.resolve_supplier(simple("INV-2"), vendor())
        assert len(odata_log(emu)) == before         # cached supplier and links
    run(body)


def test_existing_supplier_not_linked_gets_linked_with_if_match():
    async def body(emu, erp):
        emu.seed({"suppliers": [{"SupplierId": "V00500", "Name": "Bolt Co"}]})
        res = await erp.resolve_supplier(simple(vendor="V00500"), vendor("V00500", currency="EUR"))
        assert res.how == "linked_to_company"
        [sup] = [s for s in emu.state()["suppliers"] if s["SupplierId"] == "V00500"]
        assert [(c["Company"], c["Currency"]) for c in sup["SupplierInvoiceCompanies"]] == [
            ("10", "EUR")]
        [link_post] = [e for e in odata_log(emu) if e["method"] == "POST"]
        assert link_post["path"].endswith("SupplierInfoGeneralSet(SupplierId='V00500')/"
                                          "SupplierInvoiceCompanies")
        assert link_post["headers"]["If-Match"].startswith('W/"') and link_post["status"] == 201
        assert res.exchanges[-1]["status"] == 201
    run(body)


def test_link_retries_after_the_supplier_changed():
    async def body(emu, erp):
        emu.seed({"suppliers": [{"SupplierId": "V00500", "Name": "Bolt Co"}]})
        await erp.reference.load_suppliers()             # cached ETag ...
        emu.seed({"suppliers": [{"SupplierId": "V00500", "Name": "Bolt Company"}]})  # ... stale
        res = await erp.resolve_supplier(simple(vendor="V00500"), vendor("V00500"))
        assert res.how == "linked_to_company"
        statuses = [e["status"] for e in odata_log(emu) if e["method"] == "POST"]
        assert statuses == [412, 201]
    run(body)


def test_missing_supplier_is_created_and_linked():
    async def body(emu, erp):
        rec = vendor("V00900", name="New Vendor GmbH", tax_id="DE123456789", country="de",
                     currency="EUR")
        res = await erp.resolve_supplier(simple(vendor="V00900"), rec)
        assert res.how == "created"
        [sup] = [s for s in emu.state()["suppliers"] if s["SupplierId"] == "V00900"]
        assert (sup["Name"], sup["AssociationNo"], sup["Country"]) == (
            "New Vendor GmbH", "DE123456789", "DE")
        assert [c["Company"] for c in sup["SupplierInvoiceCompanies"]] == ["10"]
        assert [e["status"] for e in odata_log(emu) if e["method"] == "POST"] == [201, 201]
    run(body)


def test_supplier_create_with_a_dropped_answer_is_settled_by_its_key():
    async def body(emu, erp):
        emu.drop_after_commit(1, method="POST", path="SupplierInfoGeneralSet")
        res = await erp.resolve_supplier(simple(vendor="V00901"), vendor("V00901", name="X"))
        assert res.how == "created"
        assert len([s for s in emu.state()["suppliers"] if s["SupplierId"] == "V00901"]) == 1
    run(body)


def test_missing_supplier_without_vendor_record_or_creation_is_reference():
    async def body(emu, erp):
        with pytest.raises(ErpFailure) as err:
            await erp.resolve_supplier(simple(vendor="V00999"), None)
        assert err.value.kind == "reference" and "no vendor record" in str(err.value)
    run(body)

    async def disabled(emu, erp):
        with pytest.raises(ErpFailure) as err:
            await erp.resolve_supplier(simple(vendor="V00999"), vendor("V00999"))
        assert "`ifs.create_missing_suppliers = true`" in str(err.value)
        assert "`ml-connector replay V00999/INV-0117 --reason \"...\"`" in str(err.value)
    run(disabled, create_missing_suppliers=False)


def test_sync_vendor_updates_changed_fields_only():
    async def body(emu, erp):
        same = await erp.sync_vendor(vendor(tax_id="US-84-1234567", country="US"))
        assert same["action"] == "unchanged"
        res = await erp.sync_vendor(vendor(name="Acme Industrial Supply LLC",
                                           tax_id="US-84-7654321", address_line1="1 Main St"))
        assert res["action"] == "updated"
        assert res["changed"] == {
            "Name": {"from": "Acme Industrial Supply", "to": "Acme Industrial Supply LLC"},
            "AssociationNo": {"from": "US-84-1234567", "to": "US-84-7654321"}}
        assert res["not_synced"] == ["address_line1"]
        assert res["fields"] == ["AssociationNo", "Name"]
        [patch] = [e for e in odata_log(emu) if e["method"] == "PATCH"]
        assert patch["body"] == {"Name": "Acme Industrial Supply LLC",
                                 "AssociationNo": "US-84-7654321"}
        assert patch["headers"]["If-Match"].startswith('W/"')
        assert (await erp.sync_vendor(vendor("V00404")))["action"] == "absent"
    run(body)


def _race(erp, change):
    """Make the emulator's supplier change between the connector's GET and its PATCH."""
    original = erp.odata.write
    fired = []

    async def write(method, *args, **kwargs):
        if method == "PATCH" and not fired:
            fired.append(True)
            change()
        return await original(method, *args, **kwargs)
    erp.odata.write = write
    erp._suppliers._odata = erp.odata


def test_sync_vendor_412_race_rereads_and_retries():
    async def body(emu, erp):
        _race(erp, lambda: emu.seed({"suppliers": [{"SupplierId": "V00231",
                                                    "DefaultLanguage": "de"}]}))
        res = await erp.sync_vendor(vendor(name="Acme Renamed"))
        assert res["action"] == "updated" and res["attempts"] == 2
        patches = [e["status"] for e in odata_log(emu) if e["method"] == "PATCH"]
        assert patches == [412, 200]
        [sup] = [s for s in emu.state()["suppliers"] if s["SupplierId"] == "V00231"]
        assert (sup["Name"], sup["DefaultLanguage"]) == ("Acme Renamed", "de")   # both kept
    run(body)


def test_sync_vendor_412_race_where_the_change_no_longer_applies():
    async def body(emu, erp):
        _race(erp, lambda: emu.seed({"suppliers": [{"SupplierId": "V00231",
                                                    "Name": "Acme Renamed"}]}))
        res = await erp.sync_vendor(vendor(name="Acme Renamed"))
        assert res["action"] == "unchanged" and res["attempts"] == 2
        assert [e["status"] for e in odata_log(emu) if e["method"] == "PATCH"] == [412]
    run(body)


def test_precondition_failed_is_distinct():
    assert not issubclass(PreconditionFailed, ErpFailure)
