"""Spec §5: every broken rule is reported on the invoice (rule, field, file line), and the
invoice is still produced with whatever could be read."""
from __future__ import annotations

from decimal import Decimal

import pytest

from tests.stampli.exports import csv_text, invoices, only, row, rules, two_line_rows, write


def parse(tmp_path, rows, **settings):
    return only(write(tmp_path, "invoices_t.csv", csv_text(rows)), **settings)


def violation(parsed, rule):
    found = [v for v in parsed.violations if v.rule == rule]
    assert len(found) == 1, parsed.violations
    return found[0]


def test_balanced_invoice_has_no_violations(tmp_path):
    assert parse(tmp_path, two_line_rows()).violations == ()


def test_unbalanced_net(tmp_path):
    first, second = two_line_rows()
    second["LineNet"] = "39.99"
    parsed = parse(tmp_path, [first, second])
    v = violation(parsed, "lines_sum_net")
    assert (v.field, v.line) == ("invoice_net", 0)
    assert "100.00" in v.message and "99.99" in v.message and "LineNet" in v.message
    assert rules(parsed) == {"lines_sum_net"}


def test_unbalanced_tax(tmp_path):
    first, second = two_line_rows()
    second["LineTax"] = "3.00"
    parsed = parse(tmp_path, [first, second])
    assert rules(parsed) == {"lines_sum_tax"}
    assert "7.80" in violation(parsed, "lines_sum_tax").message


def test_net_plus_tax_must_equal_total(tmp_path):
    rows = two_line_rows(InvoiceTotal="108.01")
    parsed = parse(tmp_path, rows)
    assert rules(parsed) == {"net_plus_tax_total"}
    assert violation(parsed, "net_plus_tax_total").field == "invoice_total"


def test_equal_values_written_differently_are_equal(tmp_path):
    rows = [row(InvoiceNet="100", InvoiceTax="8.0", InvoiceTotal="108.000", LineNet="100.0",
                LineTax="8")]
    assert parse(tmp_path, rows).violations == ()


@pytest.mark.parametrize("doc_type,sign,ok", [
    ("Invoice", "", True), ("Invoice", "-", False),
    ("CreditNote", "-", True), ("CreditNote", "", False)])
def test_total_sign_follows_document_type(tmp_path, doc_type, sign, ok):
    rows = [row(DocumentType=doc_type, InvoiceNet=f"{sign}100.00", InvoiceTax=f"{sign}8.00",
                InvoiceTotal=f"{sign}108.00", LineNet=f"{sign}100.00", LineTax=f"{sign}8.00")]
    parsed = parse(tmp_path, rows)
    assert rules(parsed) == (set() if ok else {"total_sign"})


def test_zero_total_invoice_is_not_positive(tmp_path):
    rows = [row(InvoiceNet="0", InvoiceTax="0", InvoiceTotal="0", LineNet="0", LineTax="0")]
    assert rules(parse(tmp_path, rows)) == {"total_sign"}


def test_unknown_document_type(tmp_path):
    parsed = parse(tmp_path, [row(DocumentType="Invoce")])
    v = violation(parsed, "document_type")
    assert (v.field, v.line) == ("document_type", 2) and "'Invoce'" in v.message


def test_header_disagreement_names_field_and_line(tmp_path):
    first, second = two_line_rows()
    second["DueDate"] = "2026-12-05"
    second["VendorName"] = "ACME Inc"
    parsed = parse(tmp_path, [first, second])
    found = {(v.rule, v.field, v.line) for v in parsed.violations}
    assert found == {("header_mismatch", "due_date", 3), ("header_mismatch", "vendor_name", 3)}
    msg = next(v.message for v in parsed.violations if v.field == "vendor_name")
    assert "'ACME Inc' on line 3" in msg and "'Acme' on line 2" in msg


def test_duplicate_line_numbers(tmp_path):
    first, second = two_line_rows()
    second["LineNumber"] = "1"
    parsed = parse(tmp_path, [first, second])
    v = violation(parsed, "line_numbers_unique")
    assert (v.field, v.line) == ("line_number", 3) and "repeats line 2" in v.message


@pytest.mark.parametrize("text", ["0", "-1", "1.5", "one", "١"])
def test_invalid_line_number(tmp_path, text):
    parsed = parse(tmp_path, [row(LineNumber=text)])
    assert rules(parsed) == {"line_number_invalid"}
    assert parsed.invoice.lines[0].line_number == 0


def test_too_many_decimals_for_jpy(tmp_path):
    rows = [row(Currency="JPY", InvoiceNet="1000", InvoiceTax="80", InvoiceTotal="1080",
                LineNet="1000.5", LineTax="80")]
    parsed = parse(tmp_path, rows)
    v = violation(parsed, "amount_precision")
    assert (v.field, v.line) == ("line_net", 2)
    assert "JPY" in v.message and "(0," in v.message
    assert parsed.invoice.lines[0].net == Decimal("1000.5")     # kept: it did parse


def test_jpy_trailing_zero_decimals_are_exact_and_fine(tmp_path):
    rows = [row(Currency="JPY", InvoiceNet="1000.00", InvoiceTax="80", InvoiceTotal="1080",
                LineNet="1000", LineTax="80.0")]
    assert parse(tmp_path, rows).violations == ()


def test_kwd_allows_three_decimals_not_four(tmp_path):
    ok = [row(Currency="KWD", InvoiceNet="1.125", InvoiceTax="0.000", InvoiceTotal="1.125",
              LineNet="1.125", LineTax="0")]
    assert parse(tmp_path, ok).violations == ()
    bad = [row(Currency="KWD", InvoiceNet="1.1255", InvoiceTax="0", InvoiceTotal="1.1255",
               LineNet="1.1255", LineTax="0")]
    assert {(v.rule, v.field) for v in parse(tmp_path, bad).violations} == {
        ("amount_precision", "invoice_net"), ("amount_precision", "invoice_total"),
        ("amount_precision", "line_net")}


def test_unknown_currency(tmp_path):
    parsed = parse(tmp_path, [row(Currency="XYZ")])
    assert rules(parsed) == {"currency_unknown"}
    assert parsed.invoice.currency == "XYZ"


def test_unparseable_amount_becomes_none_and_skips_dependent_sums(tmp_path):
    parsed = parse(tmp_path, [row(InvoiceNet="12O.00")])
    assert rules(parsed) == {"amount_format"}
    assert parsed.invoice.net is None and parsed.invoice.total == Decimal("108.00")


def test_absurdly_long_amount_is_refused(tmp_path):
    parsed = parse(tmp_path, [row(LineNet="1" + "0" * 30 + ".00")])
    assert "amount_format" in rules(parsed)


@pytest.mark.parametrize("fmt,expected", [("%d/%m/%Y", "2026-11-04"),
                                          ("%m/%d/%Y", "2026-04-11")])
def test_day_month_order_is_decided_by_the_configured_format(tmp_path, fmt, expected):
    rows = [row(InvoiceDate="04/11/2026", DueDate="30/12/2026" if fmt.startswith("%d")
                else "12/30/2026")]
    parsed = parse(tmp_path, rows, date_format=fmt)
    assert parsed.violations == ()
    assert parsed.invoice.invoice_date == expected


def test_impossible_day_under_the_configured_format_is_a_violation(tmp_path):
    parsed = parse(tmp_path, [row(InvoiceDate="13/25/2026", DueDate="")],
                   date_format="%m/%d/%Y")
    v = violation(parsed, "date_format")
    assert (v.field, v.line) == ("invoice_date", 2)
    assert "'%m/%d/%Y'" in v.message and "stampli.invoices.date_format" in v.message
    assert parsed.invoice.invoice_date == "13/25/2026"           # raw text kept


@pytest.mark.parametrize("text", ["2026-02-30", "2026-13-01", "04.11.2026", "2026-11-04T00:00"])
def test_invalid_iso_dates(tmp_path, text):
    assert rules(parse(tmp_path, [row(InvoiceDate=text, DueDate="")])) == {"date_format"}


def test_due_date_before_invoice_date(tmp_path):
    parsed = parse(tmp_path, [row(InvoiceDate="2026-11-04", DueDate="2026-11-03")])
    v = violation(parsed, "due_before_invoice")
    assert v.field == "due_date" and "2026-11-03" in v.message


def test_due_date_comparison_uses_parsed_dates_not_text(tmp_path):
    # 05/11 is before 30/10 as text but after it as a date.
    rows = [row(InvoiceDate="30/10/2026", DueDate="05/11/2026")]
    assert parse(tmp_path, rows, date_format="%d/%m/%Y").violations == ()


def test_missing_required_values(tmp_path):
    parsed = parse(tmp_path, [row(GLAccount="", CostCenter="", VendorName="")])
    assert {(v.rule, v.field) for v in parsed.violations} == {
        ("required", "gl_account"), ("required", "cost_center"), ("required", "vendor_name")}


def test_every_broken_rule_is_reported_at_once(tmp_path):
    rows = [row(Currency="JPY", InvoiceDate="2026-11-31", LineNet="1.5", LineTax="x",
                DocumentType="Bill", InvoiceTotal="109")]
    parsed = parse(tmp_path, rows)
    assert rules(parsed) >= {"amount_precision", "amount_format", "date_format", "document_type",
                             "lines_sum_net", "net_plus_tax_total"}


def test_non_approved_status_is_carried_not_violated(tmp_path):
    for status in ("Pending", "Rejected", ""):
        parsed = parse(tmp_path, [row(ApprovalStatus=status)])
        assert parsed.violations == () and parsed.invoice.approval_status == status


def test_bad_row_does_not_affect_other_invoices(tmp_path):
    rows = [row(InvoiceNumber="A"), row(InvoiceNumber="B", LineNet="abc"),
            row(InvoiceNumber="C")]
    a, b, c = invoices(write(tmp_path, "invoices_t.csv", csv_text(rows)))
    assert a.violations == c.violations == ()
    assert rules(b) == {"amount_format"}
