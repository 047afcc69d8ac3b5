"""CanonicalInvoice -> IFS payloads. Pure; no sockets."""
from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.ifs import mapping
from adapters.settings import PostingSettings
from ledger.model import CanonicalInvoice, InvoiceLine
from ledger.ports import ErpFailure, PostingRequest

POSTING = PostingSettings(tax_accounts={"TX8": "2640", "VAT19": "2641"})
D = Decimal


def make_invoice(lines, *, currency="USD", doc_type="Invoice", number="INV-0117", po=""):
    net = sum((ln[2] for ln in lines), D(0))
    tax = sum((ln[4] for ln in lines), D(0))
    return CanonicalInvoice(
        company="10", document_type=doc_type, invoice_number=number, vendor_id="V00231",
        vendor_name="Acme Industrial Supply", invoice_date="2026-11-04", due_date="2026-12-04",
        currency=currency, net=net, tax=tax, total=net + tax, approval_status="Approved",
        po_number=po,
        lines=tuple(InvoiceLine(line_number=i + 1, description=f"item {i + 1}", gl_account=a,
                                cost_center=cc, net=n, tax_code=tc, tax=t)
                    for i, (a, cc, n, tc, t) in enumerate(lines)))


def request(invoice):
    return PostingRequest(ledger_id="ledger-1", invoice=invoice, supplier_id="V00231")


def sums(rows):
    return (sum(D(r["CurrencyDebitAmount"]) for r in rows),
            sum(D(r["CurrencyCreditAmount"]) for r in rows))


def test_invoice_header_lines_and_voucher():
    inv = make_invoice([("6100", "CC210", D("750.00"), "TX8", D("60.00")),
                        ("6540", "CC220", D("500.00"), "TX8", D("40.00"))], po="PO-55012")
    doc = mapping.document(request(inv), POSTING)
    assert doc.invoice == {
        "Company": "10", "Identity": "V00231", "InvoiceNo": "INV-0117", "InvoiceType": "INVOICE",
        "InvoiceDate": "2026-11-04", "DueDate": "2026-12-04", "Currency": "USD",
        "NetCurrAmount": "1250.00", "VatCurrAmount": "100.00", "GrossCurrAmount": "1350.00",
        "PurchaseOrderRef": "PO-55012", "ExternalRef": "ledger-1"}
    assert doc.lines[0] == {"Account": "6100", "CodeB": "CC210", "CurrAmount": "750.00",
                            "TaxCode": "TX8", "TaxCurrAmount": "60.00", "Text": "item 1"}
    assert all(isinstance(v, str) for v in doc.invoice.values())   # never floats
    assert doc.voucher["VoucherType"] == "I" and doc.voucher["VoucherDate"] == "2026-11-04"
    assert doc.voucher["ExternalRef"] == "ledger-1"
    accounts = [(r["Account"], r.get("CodeB"), r["CurrencyDebitAmount"],
                 r["CurrencyCreditAmount"]) for r in doc.rows]
    assert accounts == [("6100", "CC210", "750.00", "0.00"), ("6540", "CC220", "500.00", "0.00"),
                        ("2640", None, "100.00", "0.00"), ("2440", None, "0.00", "1350.00")]
    assert sums(doc.rows) == (D("1350.00"), D("1350.00"))


def test_credit_note_reverses_sides_with_positive_columns():
    inv = make_invoice([("6100", "CC210", D("-200.00"), "TX8", D("-16.00"))],
                       doc_type="CreditNote", number="CN-7")
    doc = mapping.document(request(inv), POSTING)
    assert doc.invoice["InvoiceType"] == "CREDIT"
    assert doc.invoice["GrossCurrAmount"] == "-216.00"
    rows = {r["Account"]: (r["CurrencyDebitAmount"], r["CurrencyCreditAmount"]) for r in doc.rows}
    assert rows == {"6100": ("0.00", "200.00"), "2640": ("0.00", "16.00"),
                    "2440": ("216.00", "0.00")}
    for r in doc.rows:
        assert D(r["CurrencyDebitAmount"]) >= 0 and D(r["CurrencyCreditAmount"]) >= 0


def test_jpy_zero_decimals():
    inv = make_invoice([("6100", "CC210", D("10000"), "TX8", D("800")),
                        ("6540", "CC300", D("333"), "TX8", D("26"))], currency="JPY")
    doc = mapping.document(request(inv), POSTING)
    assert doc.invoice["GrossCurrAmount"] == "11159"
    assert doc.lines[1]["CurrAmount"] == "333"
    assert sums(doc.rows) == (D(11159), D(11159))
    assert all("." not in r["CurrencyDebitAmount"] for r in doc.rows)


def test_jpy_refuses_decimals():
    inv = make_invoice([("6100", "CC210", D("100.5"), "TX8", D("8"))], currency="JPY")
    with pytest.raises(ErpFailure) as err:
        mapping.document(request(inv), POSTING)
    assert err.value.kind == "data" and "JPY" in str(err.value) and "V00231/INV-0117" in str(err.value)


def test_kwd_three_decimals_balance_to_the_fils():
    inv = make_invoice([("6100", "CC210", D("12.345"), "TX8", D("0.988")),
                        ("6540", "CC220", D("0.001"), "", D("0"))], currency="KWD")
    doc = mapping.document(request(inv), POSTING)
    assert doc.invoice["NetCurrAmount"] == "12.346" and doc.invoice["GrossCurrAmount"] == "13.334"
    assert doc.lines[1]["TaxCurrAmount"] == "0.000"
    assert sums(doc.rows) == (D("13.334"), D("13.334"))


def test_unbalanced_refused_before_sending():
    inv = make_invoice([("6100", "CC210", D("100.00"), "TX8", D("8.00"))])
    bad = inv.__class__(**{**{f: getattr(inv, f) for f in inv.__struct_fields__},
                           "total": D("108.01")})
    with pytest.raises(ErpFailure) as err:
        mapping.document(request(bad), POSTING)
    assert err.value.kind == "data" and "108.01" in str(err.value)
    lines_off = inv.__class__(**{**{f: getattr(inv, f) for f in inv.__struct_fields__},
                                 "net": D("99.00"), "total": D("107.00")})
    with pytest.raises(ErpFailure, match="lines' net amounts add up to 100.00"):
        mapping.document(request(lines_off), POSTING)


def test_unknown_tax_code_is_data():
    inv = make_invoice([("6100", "CC210", D("100.00"), "GST5", D("5.00"))])
    with pytest.raises(ErpFailure) as err:
        mapping.document(request(inv), POSTING)
    assert err.value.kind == "data" and "GST5" in str(err.value)
    assert "ifs.posting.tax_accounts" in str(err.value)
    # Without a voucher the tax account is not needed.
    no_voucher = PostingSettings(post_voucher=False)
    doc = mapping.document(request(inv), no_voucher)
    assert doc.voucher is None and doc.rows == []


def test_tax_without_code_is_data():
    inv = make_invoice([("6100", "CC210", D("100.00"), "", D("5.00"))])
    with pytest.raises(ErpFailure, match="no tax code"):
        mapping.document(request(inv), POSTING)


def test_code_part_letter_is_configurable():
    inv = make_invoice([("6100", "CC210", D("100.00"), "TX8", D("8.00"))])
    doc = mapping.document(request(inv), PostingSettings(cost_center_code_part="c",
                                                         tax_accounts={"TX8": "2640"}))
    assert doc.lines[0]["CodeC"] == "CC210" and "CodeB" not in doc.lines[0]
    assert doc.rows[0]["CodeC"] == "CC210"


amounts = st.decimals(min_value=D("-99999"), max_value=D("99999"), places=3,
                      allow_nan=False, allow_infinity=False)


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(["USD", "JPY", "KWD"]),
       st.lists(st.tuples(amounts, amounts), min_size=1, max_size=6))
def test_voucher_always_balances_or_is_refused(currency, raw):
    places = {"USD": 2, "JPY": 0, "KWD": 3}[currency]
    q = D(1).scaleb(-places)
    lines = [("6100", "CC210", n.quantize(q), "TX8", t.quantize(q)) for n, t in raw]
    inv = make_invoice(lines, currency=currency)
    try:
        doc = mapping.document(request(inv), POSTING)
    except ErpFailure as exc:
        assert exc.kind == "data"
        return
    debit, credit = sums(doc.rows)
    assert debit == credit
    for r in doc.rows:
        for col in ("CurrencyDebitAmount", "CurrencyCreditAmount"):
            assert D(r[col]) >= 0 and -D(r[col]).as_tuple().exponent == places
