"""Creates, reads, updates, actions and deletes, with the ETag / If-Match rules."""
from __future__ import annotations

import base64
import json
from decimal import Decimal

from .helpers import (APPROVE_ACTION, INVOICE, POST_ACTION, SUPPLIER, VOUCHER, Tenant,
                      invoice_path, tenant_test, voucher_path)


@tenant_test()
async def test_create_invoice_returns_entity_and_etag(t: Tenant) -> None:
    r = await t.create_invoice()
    assert r.status == 201
    inv = r.body
    assert r.etag == inv["@odata.etag"]
    assert r.etag.startswith('W/"') and r.etag.endswith('"')
    base64.b64decode(r.etag[3:-1], validate=True)           # opaque base64
    assert isinstance(inv["InvoiceId"], int)
    assert inv["Objstate"] == "Preliminary" and inv["luname"] and inv["keyref"]
    assert inv["NetCurrAmount"] == "1250.00"                # decimals travel as strings
    assert r.headers["Location"].endswith(invoice_path(inv))
    got = await t.get(INVOICE, invoice_path(inv))
    assert got.status == 200 and got.etag == r.etag and got.body["InvoiceNo"] == "INV-2026-0117"


@tenant_test()
async def test_missing_entity_is_404(t: Tenant) -> None:
    r = await t.get(INVOICE, "PostingProposalHeadSet(Company='10',InvoiceId=999999)")
    assert r.status == 404 and r.code == "ODP_RESOURCE_NOTFOUND"
    r = await t.get(INVOICE, "PostingProposalHeadSet(Company='10',InvoiceId='1')")
    assert r.status == 400                                   # numbers are bare in keys


@tenant_test()
async def test_child_post_needs_parent_if_match_and_keeps_parent_etag(t: Tenant) -> None:
    head = await t.create_invoice()
    inv, etag = head.body, head.etag
    r = await t.add_line(inv, None)
    assert r.status == 428 and r.code == "ODP_MISSING_PRECONDITION"
    stale = etag.replace(etag[5], "A" if etag[5] != "A" else "B")
    r = await t.add_line(inv, stale)
    assert r.status == 412 and r.code == "ODP_PRECONDITION_FAILED"
    r = await t.add_line(inv, etag)
    assert r.status == 201 and r.body["RowNo"] == 1
    r = await t.add_line(inv, "*", CodeB="CC220", CurrAmount="500.00", TaxCurrAmount="40.00")
    assert r.status == 201 and r.body["RowNo"] == 2
    assert (await t.get(INVOICE, invoice_path(inv))).etag == etag   # children do not touch it
    lines = await t.get(INVOICE, invoice_path(inv) + "/Lines")
    assert [ln["CurrAmount"] for ln in lines.body["value"]] == ["750.00", "500.00"]


@tenant_test()
async def test_patch_and_action_change_the_etag(t: Tenant) -> None:
    inv, etag = await t.full_invoice()
    path = invoice_path(inv)
    r = await t.call("PATCH", INVOICE, path, json_body={"DueDate": "2026-12-31"})
    assert r.status == 428
    r = await t.call("PATCH", INVOICE, path, json_body={"DueDate": "2026-12-31"}, if_match=etag)
    assert r.status == 200 and r.body["DueDate"] == "2026-12-31"
    patched = r.etag
    assert patched != etag
    r = await t.post(INVOICE, f"{path}/{POST_ACTION}", if_match=etag)
    assert r.status == 412                                   # the old ETag is stale now
    r = await t.post(INVOICE, f"{path}/{POST_ACTION}", if_match=patched)
    assert r.status == 200 and r.body["Objstate"] == "Posted"
    assert r.etag not in (etag, patched)
    r = await t.post(INVOICE, f"{path}/{POST_ACTION}", if_match=r.etag)
    assert r.status == 400 and r.code == "FND_STATE_NOT_ALLOWED"


@tenant_test()
async def test_return_minimal(t: Tenant) -> None:
    r = await t.call("POST", INVOICE, "PostingProposalHeadSet", headers={
        "Prefer": "return=minimal"}, json_body={
        "Company": "10", "Identity": "V00231", "InvoiceNo": "M-1", "InvoiceDate": "2026-11-04",
        "Currency": "USD"})
    assert r.status == 204 and r.etag and r.text == ""
    entity = r.headers["OData-EntityId"]
    assert "PostingProposalHeadSet(Company='10',InvoiceId=" in entity
    got = await t.get_url(entity)
    assert got.status == 200 and got.etag == r.etag


@tenant_test()
async def test_delete_line_needs_if_match(t: Tenant) -> None:
    inv, _ = await t.full_invoice()
    lines = (await t.get(INVOICE, invoice_path(inv) + "/Lines")).body["value"]
    one = f"{invoice_path(inv)}/Lines(Company='10',InvoiceId={inv['InvoiceId']},RowNo=1)"
    assert (await t.call("DELETE", INVOICE, one)).status == 428
    r = await t.call("DELETE", INVOICE, one, if_match=lines[0]["@odata.etag"])
    assert r.status == 204
    assert (await t.get(INVOICE, one)).status == 404
    assert len((await t.get(INVOICE, invoice_path(inv) + "/Lines")).body["value"]) == 1


@tenant_test()
async def test_amounts_as_json_numbers_stay_exact(t: Tenant) -> None:
    r = await t.create_invoice(NetCurrAmount=0.1, VatCurrAmount=0.2, GrossCurrAmount=0.3)
    assert r.status == 201
    assert (r.body["NetCurrAmount"], r.body["GrossCurrAmount"]) == ("0.1", "0.3")
    stored = t.emu.store.get("invoice", ("10", r.body["InvoiceId"]))
    assert stored["NetCurrAmount"] + stored["VatCurrAmount"] == Decimal("0.3")


@tenant_test()
async def test_purchase_orders_are_read_only_and_main_endpoint_serves(t: Tenant) -> None:
    r = await t.get("PurchaseOrderHandling", "PurchaseOrderSet('PO-55012')", endpoint="main")
    assert r.status == 200 and r.body["VendorNo"] == "V00231"
    assert r.body["Objstate"] == "Released"
    r = await t.post("PurchaseOrderHandling", "PurchaseOrderSet", {"OrderNo": "PO-1"})
    assert r.status == 405


@tenant_test()
async def test_voucher_create_rows_approve(t: Tenant) -> None:
    r = await t.create_voucher()
    assert r.status == 201 and r.body["Objstate"] == "Waiting"
    v, etag = r.body, r.etag
    assert v["AccountingYear"] == 2026 and isinstance(v["VoucherNo"], int)
    for row in ({"Account": "6100", "CodeB": "CC210", "CurrencyDebitAmount": "1250.00"},
                {"Account": "2640", "CurrencyDebitAmount": "100.00"},
                {"Account": "2440", "CurrencyCreditAmount": "1350.00"}):
        assert (await t.post(VOUCHER, voucher_path(v) + "/Rows", row, if_match=etag)).status == 201
    r = await t.post(VOUCHER, f"{voucher_path(v)}/{APPROVE_ACTION}", if_match=etag)
    assert r.status == 200 and r.body["Objstate"] == "Approved" and r.etag != etag
    rows = await t.get(VOUCHER, voucher_path(v) + "/Rows")
    assert [x["RowNo"] for x in rows.body["value"]] == [1, 2, 3]


@tenant_test()
async def test_supplier_create_link_and_quoted_keys(t: Tenant) -> None:
    r = await t.post(SUPPLIER, "SupplierInfoGeneralSet", {
        "SupplierId": "O'NEIL", "Name": "O'Neil & Sons", "Country": "IE",
        "AssociationNo": "IE123"})
    assert r.status == 201 and r.body["CreationDate"]
    path = "SupplierInfoGeneralSet(SupplierId='O''NEIL')"
    got = await t.get(SUPPLIER, path)
    assert got.status == 200 and got.body["Name"] == "O'Neil & Sons"
    link = {"Company": "10", "PayTermId": "30", "Currency": "EUR"}
    assert (await t.post(SUPPLIER, path + "/SupplierInvoiceCompanies", link)).status == 428
    r = await t.post(SUPPLIER, path + "/SupplierInvoiceCompanies", link, if_match=got.etag)
    assert r.status == 201
    r = await t.post(SUPPLIER, path + "/SupplierInvoiceCompanies", link, if_match=got.etag)
    assert r.status == 400 and r.code == "FND_RECORD_EXIST"
    r = await t.create_invoice(Identity="O'NEIL", Currency="EUR")
    assert r.status == 201
    r = await t.call("PATCH", SUPPLIER, path, json_body={"Name": "O'Neil Ltd"},
                     if_match=got.etag)
    assert r.status == 200 and r.body["Name"] == "O'Neil Ltd" and r.etag != got.etag


@tenant_test()
async def test_decimals_are_numbers_without_ieee754compatible(t: Tenant) -> None:
    created = await t.create_invoice(NetCurrAmount="1250.10", GrossCurrAmount="1350.10")
    path = invoice_path(created.body)
    r = await t.get(INVOICE, path, headers={"Accept": "application/json"})
    assert "IEEE754Compatible=false" in r.headers["Content-Type"]
    assert '"NetCurrAmount":1250.10' in r.text                # a bare, exact number
    assert json.loads(r.text, parse_float=Decimal)["NetCurrAmount"] == Decimal("1250.10")
    r = await t.get(INVOICE, path)                              # the helper asks for strings
    assert r.body["NetCurrAmount"] == "1250.10"


_LINES = [{"Account": "6100", "CodeB": "CC210", "CurrAmount": "750.00", "TaxCode": "TX8",
           "TaxCurrAmount": "60.00"},
          {"Account": "6100", "CodeB": "CC220", "CurrAmount": "500.00", "TaxCode": "TX8",
           "TaxCurrAmount": "40.00"}]


@tenant_test()
async def test_a_deep_insert_is_refused_by_default_and_creates_nothing(t: Tenant) -> None:
    r = await t.create_invoice(Lines=_LINES)
    assert r.status == 400 and r.code == "ODP_DESERIALIZATION_ERROR" and "Lines" in r.text
    assert t.emu.state()["invoices"] == []


@tenant_test(deep_insert=True)
async def test_a_deep_insert_creates_header_and_children_all_or_nothing(t: Tenant) -> None:
    r = await t.create_invoice(Lines=_LINES)
    assert r.status == 201, r.text
    inv = r.body
    assert [ln["RowNo"] for ln in inv["Lines"]] == [1, 2] and r.etag == inv["@odata.etag"]
    lines = await t.get(INVOICE, invoice_path(inv) + "/Lines")
    assert [ln["CurrAmount"] for ln in lines.body["value"]] == ["750.00", "500.00"]
    assert (await t.get(INVOICE, invoice_path(inv))).etag == r.etag
    posted = await t.post(INVOICE, f"{invoice_path(inv)}/{POST_ACTION}", {}, if_match=r.etag)
    assert posted.status == 200 and posted.body["Objstate"] == "Posted"
    bad = [_LINES[0], {**_LINES[1], "Account": "9999"}]
    r = await t.create_invoice(InvoiceNo="INV-2", Lines=bad)
    assert r.status >= 400 and r.code == "ACCOUNT_NOT_FOUND"
    assert [i["InvoiceNo"] for i in t.emu.state()["invoices"]] == ["INV-2026-0117"]
    assert (await t.create_invoice(InvoiceNo="INV-3", Lines={"x": 1})).status == 400
