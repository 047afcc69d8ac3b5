"""The shared sample exports parse to exactly the invoices, vendors and PO lines they hold."""
from __future__ import annotations

import filecmp
from decimal import Decimal

import pytest

from ledger.model import ParsedInvoice, PurchaseOrderLine, VendorRecord, invoice_id
from tests.stampli.exports import (SAMPLES, SHARED_SAMPLES, invoices, purchase_orders, read,
                                   vendors)

CSV = SAMPLES / "invoices_C1042_20261106152500.csv"
XML = SAMPLES / "invoices_C1042_20261106153000.xml"


@pytest.mark.skipif(not SHARED_SAMPLES.is_dir(), reason="no /work/shared checkout here")
def test_sample_copies_match_the_shared_samples():
    for copy in SAMPLES.iterdir():
        assert filecmp.cmp(copy, SHARED_SAMPLES / copy.name, shallow=False), copy.name


def test_csv_sample_parses_to_four_clean_invoices_in_file_order():
    items = invoices(CSV)
    assert [(p.invoice.vendor_id, p.invoice.invoice_number, p.invoice.document_type)
            for p in items] == [("V00231", "INV-2026-0117", "Invoice"),
                                ("V00231", "CN-2026-0009", "CreditNote"),
                                ("V00877", "INV-2026-0117", "Invoice"),
                                ("V00231", "7781", "Invoice")]
    assert all(p.violations == () for p in items), [p.violations for p in items]
    assert all(p.invoice.company == "10" and p.invoice.stampli_company_id == "C1042"
               for p in items)


def test_same_number_from_two_vendors_is_two_invoices():
    acme, _credit, nordlicht, _pending = invoices(CSV)
    assert acme.invoice.id != nordlicht.invoice.id
    assert acme.invoice.id == invoice_id("10", "V00231", "Invoice", "inv-2026-0117")
    assert (nordlicht.invoice.currency, nordlicht.invoice.total) == ("EUR", Decimal("1190.00"))
    assert nordlicht.invoice.lines[0].description == "Consulting, October"


def test_two_line_invoice_with_tax():
    acme = invoices(CSV)[0]
    inv = acme.invoice
    assert (inv.net, inv.tax, inv.total) == (Decimal("1250.00"), Decimal("100.00"),
                                             Decimal("1350.00"))
    assert [(ln.line_number, ln.gl_account, ln.cost_center, ln.net, ln.tax_code, ln.tax,
             ln.source_line) for ln in inv.lines] == [
        (1, "6100", "CC210", Decimal("750.00"), "TX8", Decimal("60.00"), 2),
        (2, "6100", "CC220", Decimal("500.00"), "TX8", Decimal("40.00"), 3)]
    assert acme.locations == (2, 3)
    assert (inv.invoice_date, inv.due_date, inv.po_number, inv.approved_by) == (
        "2026-11-04", "2026-12-04", "PO-55012", "j.doe")
    assert inv.approved_at == "2026-11-06T15:22:10Z"
    assert inv.exported_at == "2026-11-06T15:25:00Z"
    assert inv.stampli_invoice_id == "98765431"


def test_credit_note_is_negative_and_clean():
    credit = invoices(CSV)[1]
    assert credit.invoice.total == Decimal("-216.00")
    assert credit.invoice.lines[0].net == Decimal("-200.00")
    assert credit.violations == ()


def test_pending_invoice_is_carried_without_violation():
    pending = invoices(CSV)[3]
    assert pending.invoice.approval_status == "Pending"
    assert pending.violations == ()
    assert pending.invoice.lines[0].tax_code == ""


def test_xml_sample():
    (parsed,) = read(XML)
    assert isinstance(parsed, ParsedInvoice)
    inv = parsed.invoice
    assert parsed.violations == ()
    assert parsed.locations == (1,)
    assert (inv.company, inv.stampli_company_id, inv.stampli_invoice_id) == ("10", "C1042",
                                                                             "98765470")
    assert (inv.vendor_id, inv.vendor_name, inv.invoice_number) == (
        "V00231", "Acme Industrial Supply", "A-5531")
    assert (inv.net, inv.tax, inv.total) == (Decimal("310.50"), Decimal("24.84"),
                                             Decimal("335.34"))
    assert (inv.approval_status, inv.approved_at, inv.approved_by) == (
        "Approved", "2026-11-06T15:28:00Z", "j.doe")
    assert inv.exported_at == "2026-11-06T15:30:00Z"
    assert [(ln.line_number, ln.description, ln.gl_account, ln.cost_center, ln.net,
             ln.tax_code, ln.tax) for ln in inv.lines] == [
        (1, "Valves", "6100", "CC210", Decimal("210.50"), "TX8", Decimal("16.84")),
        (2, "Freight", "6540", "CC300", Decimal("100.00"), "TX8", Decimal("8.00"))]


def test_vendor_sample():
    assert vendors(next(SAMPLES.glob("vendors_*.csv"))) == [
        VendorRecord(vendor_id="V00231", name="Acme Industrial Supply", tax_id="US-84-1234567",
                     address_line1="12 Forge Road", city="Dayton", postal_code="45402",
                     country="US", currency="USD", payment_terms="NET30", active=True,
                     source_line=2),
        VendorRecord(vendor_id="V00877", name="Nordlicht GmbH", tax_id="DE811234567",
                     address_line1="Hafenstrasse 4", city="Hamburg", postal_code="20457",
                     country="DE", currency="EUR", payment_terms="NET30", active=True,
                     source_line=3)]


def test_purchase_order_sample():
    lines = purchase_orders(next(SAMPLES.glob("purchase_orders_*.csv")))
    assert lines == [
        PurchaseOrderLine(po_number="PO-55012", vendor_id="V00231", line_number=1,
                          description="Hydraulic hoses", quantity=Decimal("50"),
                          unit_price=Decimal("15.00"), amount=Decimal("750.00"), currency="USD",
                          status="Open", source_line=2),
        PurchaseOrderLine(po_number="PO-55012", vendor_id="V00231", line_number=2,
                          description="Fittings", quantity=Decimal("100"),
                          unit_price=Decimal("5.00"), amount=Decimal("500.00"), currency="USD",
                          status="Open", source_line=3)]
    assert all(isinstance(v, Decimal) for ln in lines
               for v in (ln.quantity, ln.unit_price, ln.amount))
