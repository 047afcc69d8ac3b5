"""Vendor exports (CSV and XML) and purchase-order CSV."""
from __future__ import annotations

from decimal import Decimal

import pytest

from adapters.stampli.configured import read_purchase_orders
from adapters.stampli.errors import ExportFileError
from ledger.model import PurchaseOrderLine, RejectedRow, VendorRecord
from tests.stampli.exports import csv_text, purchase_orders, vendors, write

V_HEADER = ["VendorID", "VendorName", "TaxID", "AddressLine1", "City", "PostalCode", "Country",
            "Currency", "PaymentTerms", "Active"]
V_BASE = {"VendorID": "V1", "VendorName": "Acme", "TaxID": "T1", "AddressLine1": "1 Road",
          "City": "Köln", "PostalCode": "50667", "Country": "DE", "Currency": "EUR",
          "PaymentTerms": "NET30", "Active": "true"}
P_HEADER = ["PONumber", "VendorID", "LineNumber", "Description", "Quantity", "UnitPrice",
            "Amount", "Currency", "Status"]
P_BASE = {"PONumber": "PO-1", "VendorID": "V1", "LineNumber": "1", "Description": "Hoses",
          "Quantity": "50", "UnitPrice": "15.125", "Amount": "756.25", "Currency": "USD",
          "Status": "Open"}


def vrow(**over):
    return {**V_BASE, **over}


def prow(**over):
    return {**P_BASE, **over}


def test_cp1252_vendor_names(tmp_path):
    rows = [vrow(VendorName="Société Générale"), vrow(VendorID="V2", VendorName="Müller €")]
    path = write(tmp_path, "vendors_x.csv", csv_text(rows, V_HEADER), encoding="cp1252")
    a, b = vendors(path, encoding="cp1252")
    assert (a.name, b.name, a.city) == ("Société Générale", "Müller €", "Köln")
    with pytest.raises(ExportFileError) as caught:
        vendors(path)                                   # default utf-8-sig: rejected
    assert (caught.value.line, caught.value.field) == (2, "VendorName")
    assert "stampli.vendors.encoding" in caught.value.message


def test_active_flag_and_bad_values_become_rejected_rows(tmp_path):
    rows = [vrow(Active="FALSE"), vrow(VendorID="V2", Active="yes"),
            vrow(VendorID="V3", Country="Germany"), vrow(VendorID="V4", Currency="EURO"),
            vrow(VendorID="", VendorName="Nobody"), vrow(VendorID="V6")]
    path = write(tmp_path, "vendors_x.csv", csv_text(rows, V_HEADER))
    out = vendors(path)
    assert isinstance(out[0], VendorRecord) and out[0].active is False
    assert [(r.line, r.field) for r in out[1:5]] == [
        (3, "active"), (4, "country"), (5, "currency"), (6, "vendor_id")]
    assert all(isinstance(r, RejectedRow) for r in out[1:5])
    assert isinstance(out[5], VendorRecord) and out[5].source_line == 7


def test_vendor_columns_mapping_and_missing_required_column(tmp_path):
    header = ["Vendor Code" if h == "VendorID" else h for h in V_HEADER if h != "Active"]
    path = write(tmp_path, "vendors_x.csv",
                 csv_text([{**vrow(), "Vendor Code": "V77"}], header))
    (vendor,) = vendors(path, columns={"vendor_id": "Vendor Code"})
    assert vendor.vendor_id == "V77" and vendor.active is True   # no Active column: active
    with pytest.raises(ExportFileError) as caught:
        vendors(path)
    assert caught.value.field == "VendorID" and "[stampli.vendors.columns]" in str(caught.value)


VENDOR_XML = """<?xml version="1.0" encoding="UTF-8"?>
<StampliExport entity="Vendor">
  <Vendor id="V00231"><Name>Acme Industrial Supply</Name><TaxID>US-84</TaxID>
    <AddressLine1>12 Forge Road</AddressLine1><City>Dayton</City><PostalCode>45402</PostalCode>
    <Country>US</Country><Currency>USD</Currency><PaymentTerms>NET30</PaymentTerms>
    <Active>false</Active></Vendor>
  <Vendor id=""><Name>No id</Name></Vendor>
  <Vendor id="V00877"><Name>Nordlicht GmbH</Name></Vendor>
</StampliExport>
"""


def test_vendor_xml(tmp_path):
    a, rejected, b = vendors(write(tmp_path, "vendors_x.xml", VENDOR_XML))
    assert a == VendorRecord(vendor_id="V00231", name="Acme Industrial Supply", tax_id="US-84",
                             address_line1="12 Forge Road", city="Dayton", postal_code="45402",
                             country="US", currency="USD", payment_terms="NET30", active=False,
                             source_line=1)
    assert isinstance(rejected, RejectedRow) and (rejected.line, rejected.field) == (
        2, "vendor_id")
    assert (b.vendor_id, b.name, b.active, b.source_line) == ("V00877", "Nordlicht GmbH",
                                                              True, 3)


def test_vendor_xml_rejections(tmp_path):
    with pytest.raises(ExportFileError, match="'Invoice' export"):
        vendors(write(tmp_path, "vendors_a.xml", VENDOR_XML.replace('"Vendor">', '"Invoice">')))
    with pytest.raises(ExportFileError, match="not well-formed"):
        vendors(write(tmp_path, "vendors_b.xml", VENDOR_XML[:-30]))
    with pytest.raises(ExportFileError, match="DTD"):
        vendors(write(tmp_path, "vendors_c.xml",
                      VENDOR_XML.replace("<StampliExport", '<!DOCTYPE a [<!ENTITY e "x">]>'
                                         "<StampliExport", 1)))


def test_purchase_orders_with_eu_number_format(tmp_path):
    rows = [prow(Quantity="1.000", UnitPrice="1.234,5678", Amount="1.234.567,80",
                 Currency="EUR")]
    path = write(tmp_path, "purchase_orders_x.csv", csv_text(rows, P_HEADER, delimiter=";"))
    (line,) = purchase_orders(path, delimiter=";", decimal_separator=",",
                              thousands_separator=".")
    assert (line.quantity, line.unit_price, line.amount) == (
        Decimal("1000"), Decimal("1234.5678"), Decimal("1234567.80"))


def test_purchase_order_bad_rows_are_rejected_alone(tmp_path):
    rows = [prow(), prow(LineNumber="x"), prow(Amount="7,5"), prow(Amount="1.001"),
            prow(PONumber=""), prow(Quantity="", UnitPrice="", Amount="", LineNumber="6")]
    path = write(tmp_path, "purchase_orders_x.csv", csv_text(rows, P_HEADER))
    out = purchase_orders(path)
    assert isinstance(out[0], PurchaseOrderLine) and out[0].unit_price == Decimal("15.125")
    assert [(r.line, r.field) for r in out[1:5]] == [
        (3, "line_number"), (4, "amount"), (5, "amount"), (6, "po_number")]
    assert out[1].message.startswith("LineNumber: expected a whole number")
    assert "decimal separator" in out[2].message and "USD allows (2)" in out[3].message
    assert (out[5].quantity, out[5].amount, out[5].line_number) == (None, None, 6)


def test_purchase_orders_only_from_csv(tmp_path):
    path = write(tmp_path, "purchase_orders_x.xml", "<StampliExport/>")
    with pytest.raises(ExportFileError, match=".csv"):
        list(read_purchase_orders(path, None))  # type: ignore[arg-type]


def test_a_huge_vendor_xml_value_rejects_that_vendor_only(tmp_path):
    huge = VENDOR_XML.replace("Acme Industrial Supply", "z" * (130 * 1024), 1)
    first, _rejected, last = vendors(write(tmp_path, "vendors_big.xml", huge))
    assert isinstance(first, RejectedRow) and first.line == 1 and "128 KiB" in first.message
    assert "Name" in first.message
    assert isinstance(last, VendorRecord) and last.vendor_id == "V00877"


def test_a_broken_csv_row_is_a_rejected_row_in_vendor_and_po_files(tmp_path):
    text = csv_text([{"VendorID": "V1", "VendorName": "A"}, {"VendorID": "V2",
                     "VendorName": "B"}], ["VendorID", "VendorName"])
    first, broken = vendors(write(tmp_path, "vendors_q.csv", text.replace("V2,B", '"V2"x,B')))
    assert isinstance(first, VendorRecord) and isinstance(broken, RejectedRow)
    assert broken.line == 3 and "quote" in broken.message
