"""The plain path of pass 2 (adapters/stampli/plain_invoice.py) may only ever be a shortcut:
for any group of spilled rows, it gives what the rules give (rules.build_invoice), or None and
the rules decide. Groups are clean invoices with a few fields replaced by what exports get
wrong; the clean ones must take the shortcut, or it saves nothing."""
from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.stampli.invoice_groups import build_groups
from adapters.stampli.plain_invoice import PlainReader
from adapters.stampli.rules import HEADER_FIELDS, LINE_FIELDS, Context, Row, build_invoice
from adapters.stampli.values import Formats

ALL_FIELDS = (*HEADER_FIELDS, *LINE_FIELDS)
# A template without the optional columns: the rules read them as "".
SHORT_FIELDS = tuple(f for f in ALL_FIELDS if f not in (
    "company_id", "po_number", "tax_code", "line_description", "approved_at", "due_date"))
PLAIN = Formats()
EUROPEAN = Formats(decimal_separator=",", thousands_separator=".", date_format="%d.%m.%Y")
ODD_VALUES = ["", " ", "0", "abc", "é", "Müller", "a\nb", "x\x1b[31m", "\u2028", "\t", '"',
              "\\"]
_AMOUNTS = ["", "0", "0.00", "1.00", "-1.00", "10.00", "-10.00", "10,00", "-10,00", "17.00",
            "-17.00", "0.25", "0,25", "1E+2", "12.345", "0.001", "1,250.00", "1.250,00"]
_STAMPS = ["", "2026-11-04", "2026-11-04T10:00:00", "2026-11-04T10:00:00+01:00", "x"]
# What exports get wrong, field by field (a field not named here gets ODD_VALUES).
DEFECTS = {
    "due_date": ["", "2026-10-01", "01.10.2026", "2026-12-04", "04.12.2026", "2026-02-30"],
    "invoice_date": ["", "2026-12-31", "31.12.2026", "2026-13-01"],
    "invoice_net": _AMOUNTS, "invoice_tax": _AMOUNTS, "invoice_total": _AMOUNTS,
    "line_net": _AMOUNTS, "line_tax": _AMOUNTS,
    "document_type": ["Invoice", "CreditNote", "invoice", ""],
    "line_number": ["1", "2", "0", "01", "", "1000", "x"],
    "gl_account": ["", "6200"], "cost_center": ["", "CC1"], "vendor_name": ["", "Müller"],
    "currency": ["", "XXX", "usd", "JPY", "BHD", "EUR"],
    "approved_at": _STAMPS, "exported_at": _STAMPS,
}


def clean_rows(fields: tuple[str, ...], formats: Formats, lines: int, credit: bool
               ) -> list[list[str]]:
    sign = -1 if credit else 1
    nets = [Decimal(sign * (10 + 7 * i)) for i in range(lines)]
    taxes = [Decimal(sign * i) / 4 for i in range(lines)]
    dec = formats.decimal_separator

    def amount(value: Decimal) -> str:
        return f"{value:.2f}".replace(".", dec)

    def date(iso: str) -> str:
        y, m, d = iso.split("-")
        return iso if formats.date_format == "%Y-%m-%d" else f"{d}.{m}.{y}"
    head = {"company_id": "C1042", "stampli_invoice_id": "77", "document_type":
            "CreditNote" if credit else "Invoice", "invoice_number": "INV-9", "vendor_id": "V1",
            "vendor_name": "Acme Hoses", "invoice_date": date("2026-11-04"),
            "due_date": date("2026-12-04"), "currency": "USD",
            "invoice_net": amount(sum(nets)), "invoice_tax": amount(sum(taxes)),
            "invoice_total": amount(sum(nets) + sum(taxes)), "approval_status": "Approved",
            "approved_at": "2026-11-06T15:22:10Z", "approved_by": "j.doe", "po_number": "",
            "exported_at": "2026-11-06T15:25:00Z"}
    return [[{**head, "line_number": str(i + 1), "line_description": f"part {i}",
              "gl_account": "6100", "cost_center": "CC210", "line_net": amount(nets[i]),
              "tax_code": "TX8", "line_tax": amount(taxes[i])}[f] for f in fields]
            for i in range(lines)]


def by_the_rules(group, fields, formats, company="10"):
    rows = [Row(line, dict(zip(fields, values)), [("row_shape", "", shape)] if shape else ())
            for _kind, line, values, shape in group]
    context = Context(company=company, formats=formats, labels={f: f for f in fields})
    return build_invoice(rows, rows, context, [row.line for row in rows])


@st.composite
def groups(draw):
    fields = draw(st.sampled_from([ALL_FIELDS, SHORT_FIELDS]))
    formats = draw(st.sampled_from([PLAIN, EUROPEAN]))
    rows = clean_rows(fields, formats, draw(st.integers(1, 4)), draw(st.booleans()))
    for _ in range(draw(st.integers(0, 2))):       # in one row, or in all (a header value)
        field = draw(st.one_of(st.sampled_from(sorted(DEFECTS)), st.sampled_from(fields)))
        if field not in fields:
            continue
        value = draw(st.sampled_from(DEFECTS.get(field, ODD_VALUES)))
        everywhere = draw(st.booleans())
        for values in rows if everywhere else [rows[draw(st.integers(0, len(rows) - 1))]]:
            values[fields.index(field)] = value
    if draw(st.booleans()) and len(rows) > 1:      # a row twice, or rows swapped
        rows.insert(draw(st.integers(0, len(rows))), list(rows[0]))
    shapes = draw(st.lists(st.sampled_from(["", "", "", "the row has 25 columns"]),
                           min_size=len(rows), max_size=len(rows)))
    group = [("row", 10 + 3 * i, values, shape) for i, (values, shape) in
             enumerate(zip(rows, shapes))]
    return group, fields, formats


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(groups())
def test_the_plain_path_gives_what_the_rules_give_or_leaves_it_to_them(case):
    group, fields, formats = case
    plain = PlainReader(fields, formats).invoice(group, "10")
    expected = by_the_rules(group, fields, formats)
    if plain is not None:
        assert expected.violations == ()
        assert plain == expected and repr(plain) == repr(expected)


@pytest.mark.parametrize("fields", [ALL_FIELDS, SHORT_FIELDS])
@pytest.mark.parametrize("formats", [PLAIN, EUROPEAN])
@pytest.mark.parametrize("credit", [False, True])
def test_a_clean_invoice_takes_the_plain_path(fields, formats, credit):
    group = [("row", 5 + i, values, "") for i, values in
             enumerate(clean_rows(fields, formats, 3, credit))]
    plain = PlainReader(fields, formats).invoice(group, "10")
    expected = by_the_rules(group, fields, formats)
    assert expected.violations == ()
    if formats is EUROPEAN:        # amounts with separators: the rules read each on its own
        assert plain is None
    else:
        assert plain is not None and repr(plain) == repr(expected)


def test_pass_2_mixes_both_paths_in_the_files_order():
    clean = clean_rows(ALL_FIELDS, PLAIN, 2, False)
    broken = clean_rows(ALL_FIELDS, PLAIN, 2, False)
    broken[1][ALL_FIELDS.index("line_net")] = "99.00"
    spilled = [[("row", 2, clean[0], ""), ("row", 3, clean[1], "")],
               [("rejected", 4, "vendor_id", "VendorID is empty")],
               [("row", 5, broken[0], ""), ("row", 6, broken[1], "")]]
    items = list(build_groups(spilled, ALL_FIELDS, {}, PLAIN, "10", {"C1042": "10"}))
    assert [type(i).__name__ for i in items] == ["ParsedInvoice", "RejectedRow",
                                                 "ParsedInvoice"]
    assert items[0].violations == () and items[0].locations == (2, 3)
    assert [v.rule for v in items[2].violations] == ["lines_sum_net"]


@pytest.mark.parametrize("field,value,rule", [
    ("due_date", "2026-10-01", "due_before_invoice"),
    ("invoice_total", "999.00", "net_plus_tax_total"),
    ("invoice_net", "1.00", "lines_sum_net"),
    ("invoice_tax", "1.00", "lines_sum_tax"),
    ("document_type", "CreditNote", "total_sign"),
    ("document_type", "Bill", "document_type"),
    ("currency", "JPY", "amount_precision"),       # its quarter cents of tax
    ("currency", "XXX", "currency_unknown"),
    ("vendor_name", "", "required"),
    ("exported_at", "2026-11-06", "timestamp_format"),
    ("invoice_date", "04.11.2026", "date_format"),
    ("vendor_name", "Acme\x1b[31m", "control_character"),
])
def test_each_rule_an_invoice_breaks_leaves_it_to_the_rules(field, value, rule):
    rows = clean_rows(ALL_FIELDS, PLAIN, 3, False)
    for values in rows:
        values[ALL_FIELDS.index(field)] = value
    group = [("row", 5 + i, values, "") for i, values in enumerate(rows)]
    assert rule in [v.rule for v in by_the_rules(group, ALL_FIELDS, PLAIN).violations]
    assert PlainReader(ALL_FIELDS, PLAIN).invoice(group, "10") is None


@pytest.mark.parametrize("field,value,rule", [
    ("line_number", "1", "line_numbers_unique"), ("gl_account", "", "required"),
    ("line_net", "10.001", "amount_precision"), ("cost_center", "a\nb", "line_break")])
def test_each_rule_a_line_breaks_leaves_it_to_the_rules(field, value, rule):
    rows = clean_rows(ALL_FIELDS, PLAIN, 3, False)
    rows[2][ALL_FIELDS.index(field)] = value
    group = [("row", 5 + i, values, "") for i, values in enumerate(rows)]
    assert rule in [v.rule for v in by_the_rules(group, ALL_FIELDS, PLAIN).violations]
    assert PlainReader(ALL_FIELDS, PLAIN).invoice(group, "10") is None
