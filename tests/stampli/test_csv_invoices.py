"""Invoice CSV: encodings, number formats, layout mapping, grouping and file-level rejection."""
from __future__ import annotations

import codecs
from decimal import Decimal

import pytest

from adapters.settings import InvoiceFileSettings
from adapters.stampli.configured import read_invoices
from adapters.stampli.errors import ExportFileError
from ledger.model import ParsedInvoice, RejectedRow
from tests.stampli.exports import (HEADER, csv_text, invoices, only, read, row, rules,
                                   two_line_rows, write)


def test_bom_is_accepted_under_default_encoding(tmp_path):
    path = write(tmp_path, "invoices_bom.csv", codecs.BOM_UTF8 + csv_text([row()]).encode())
    assert only(path).invoice.company == "10"     # CompanyID (first column) was recognised
    assert only(path).violations == ()


def test_bom_under_plain_utf8_does_not_hide_the_first_column(tmp_path):
    path = write(tmp_path, "invoices_bom.csv", codecs.BOM_UTF8 + csv_text([row()]).encode())
    assert only(path, encoding="utf-8").invoice.stampli_company_id == "C1042"


def test_utf8_bom_under_cp1252_is_rejected_not_misread(tmp_path):
    text = csv_text([row(VendorName="Café")])
    path = write(tmp_path, "invoices_bom.csv", codecs.BOM_UTF8 + text.encode())
    with pytest.raises(ExportFileError) as caught:
        read(path, encoding="cp1252")
    assert caught.value.line == 1 and "utf-8-sig" in caught.value.message


def test_cp1252_vendor_name_reads_under_cp1252(tmp_path):
    path = write(tmp_path, "invoices_1252.csv", csv_text([row(VendorName="Café Müller")]),
                 encoding="cp1252")
    assert only(path, encoding="cp1252").invoice.vendor_name == "Café Müller"


def test_cp1252_bytes_under_utf8_reject_the_file_with_line_and_column(tmp_path):
    rows = [row(InvoiceNumber="A"), row(InvoiceNumber="B", VendorName="Café")]
    path = write(tmp_path, "invoices_1252.csv", csv_text(rows), encoding="cp1252")
    with pytest.raises(ExportFileError) as caught:
        read(path)
    err = caught.value
    assert (err.file, err.line, err.field) == ("invoices_1252.csv", 3, "VendorName")
    assert "0xE9" in err.message and "utf-8-sig" in err.message
    assert "stampli.invoices.encoding" in err.message and "'Caf'" in err.message
    assert str(err).startswith("invoices_1252.csv line 3, column VendorName: ")


def test_bad_byte_on_a_late_line_rejects_the_file_before_anything_is_yielded(tmp_path):
    rows = [row(InvoiceNumber=f"N{i}") for i in range(3000)] + [row(VendorName="Caf\xe9")]
    path = write(tmp_path, "invoices_late.csv", csv_text(rows), encoding="latin-1")
    iterator = read_invoices(path, InvoiceFileSettings(), default_company="10", companies={})
    with pytest.raises(ExportFileError) as caught:
        next(iterator)
    assert caught.value.line == 3002


def test_bad_byte_inside_a_quoted_multiline_value_names_its_physical_line(tmp_path):
    rows = [row(LineDescription="first\nsecond Caf\xe9")]
    path = write(tmp_path, "invoices_ml.csv", csv_text(rows), encoding="latin-1")
    with pytest.raises(ExportFileError) as caught:
        read(path)
    assert (caught.value.line, caught.value.field) == (3, "LineDescription")


def test_semicolon_decimal_comma_thousands_dot(tmp_path):
    rows = [row(InvoiceNet="1.250,00", InvoiceTax="100,00", InvoiceTotal="1.350,00",
                LineNumber="1", LineNet="750,00", LineTax="60,00", LineDescription="a;b"),
            row(InvoiceNet="1.250,00", InvoiceTax="100,00", InvoiceTotal="1.350,00",
                LineNumber="2", LineNet="500,00", LineTax="40,00")]
    path = write(tmp_path, "invoices_eu.csv", csv_text(rows, delimiter=";"))
    parsed = only(path, delimiter=";", decimal_separator=",", thousands_separator=".")
    assert parsed.violations == ()
    assert (parsed.invoice.net, parsed.invoice.total) == (Decimal("1250.00"),
                                                          Decimal("1350.00"))
    assert parsed.invoice.lines[0].description == "a;b"


def test_decimal_comma_under_default_settings_is_a_violation_naming_the_setting(tmp_path):
    path = write(tmp_path, "invoices_eu.csv", csv_text([row(LineNet="100,00")]))
    parsed = only(path)
    (violation,) = [v for v in parsed.violations if v.rule == "amount_format"]
    assert (violation.field, violation.line) == ("line_net", 2)
    assert "'100,00'" in violation.message
    assert "stampli.invoices.decimal_separator" in violation.message
    assert parsed.invoice.lines[0].net is None


def test_misplaced_thousands_separator_is_not_guessed(tmp_path):
    rows = [row(InvoiceNet="1.25,00", InvoiceTotal="1.25,00", InvoiceTax="0,00",
                LineNet="125,00", LineTax="0,00")]
    path = write(tmp_path, "invoices_eu.csv", csv_text(rows, delimiter=";"))
    parsed = only(path, delimiter=";", decimal_separator=",", thousands_separator=".")
    assert {(v.rule, v.field) for v in parsed.violations} >= {("amount_format", "invoice_net")}
    assert parsed.invoice.net is None


def test_quoted_newlines_keep_record_start_lines(tmp_path):
    rows = [row(InvoiceNumber="A", LineDescription="two\nlines"),
            row(InvoiceNumber="B", LineDescription="three\r\nphysical\nlines"),
            row(InvoiceNumber="C")]
    path = write(tmp_path, "invoices_nl.csv", csv_text(rows))
    a, b, c = invoices(path)
    assert a.invoice.lines[0].description == "two\nlines"
    assert b.invoice.lines[0].description == "three\r\nphysical\nlines"
    assert (a.locations, b.locations, c.locations) == ((2,), (4,), (7,))


def test_missing_required_column_rejects_the_file_naming_it(tmp_path):
    header = [h for h in HEADER if h != "GLAccount"]
    path = write(tmp_path, "invoices_nogl.csv", csv_text([row()], header=header))
    with pytest.raises(ExportFileError) as caught:
        read(path)
    assert (caught.value.line, caught.value.field) == (1, "GLAccount")
    assert "gl_account" in caught.value.message
    assert "[stampli.invoices.columns]" in caught.value.message


def test_missing_optional_columns_and_column_order_are_free(tmp_path):
    optional = {"CompanyID", "StampliInvoiceID", "DueDate", "ApprovedAt", "ApprovedBy",
                "PONumber", "LineDescription", "TaxCode", "LineTax", "ExportedAt"}
    header = [h for h in reversed(HEADER) if h not in optional] + ["Whatever"]
    path = write(tmp_path, "invoices_min.csv",
                 csv_text([row(InvoiceTax="0", InvoiceTotal="100.00", Whatever="x")],
                          header=header))
    parsed = only(path)
    assert parsed.violations == ()
    assert parsed.invoice.lines[0].tax == Decimal("0")
    assert parsed.invoice.company == "10"      # no CompanyID: the default company


def test_empty_file_and_header_only_file(tmp_path):
    with pytest.raises(ExportFileError, match="header row is required"):
        read(write(tmp_path, "invoices_empty.csv", b""))
    assert read(write(tmp_path, "invoices_header.csv", csv_text([]))) == []


def test_column_mapping_reads_a_customer_template(tmp_path):
    header = ["Invoice #" if h == "InvoiceNumber" else "Vendor Code" if h == "VendorID" else h
              for h in HEADER]
    data = [{**r, "Invoice #": r["InvoiceNumber"], "Vendor Code": r["VendorID"]}
            for r in [row(InvoiceNumber="X-1", VendorID="V9")]]
    path = write(tmp_path, "invoices_custom.csv", csv_text(data, header=header))
    columns = {"invoice_number": "Invoice #", "vendor_id": "Vendor Code"}
    parsed = only(path, columns=columns)
    assert (parsed.invoice.invoice_number, parsed.invoice.vendor_id) == ("X-1", "V9")
    with pytest.raises(ExportFileError) as caught:   # without the mapping: rejected, named
        read(path)
    assert caught.value.field == "InvoiceNumber"


def test_unknown_field_in_column_mapping_is_reported(tmp_path):
    path = write(tmp_path, "invoices_x.csv", csv_text([row()]))
    with pytest.raises(ExportFileError, match="invoice_no"):
        read(path, columns={"invoice_no": "Invoice #"})


def test_unknown_encoding_setting_is_reported(tmp_path):
    path = write(tmp_path, "invoices_x.csv", csv_text([row()]))
    with pytest.raises(ExportFileError, match="stampli.invoices.encoding"):
        read(path, encoding="klingon")


def test_non_adjacent_rows_group_in_first_seen_order(tmp_path):
    a1, a2 = two_line_rows(InvoiceNumber="A")
    b1, b2 = two_line_rows(InvoiceNumber="B")
    path = write(tmp_path, "invoices_mixed.csv", csv_text([a1, b1, row(InvoiceNumber="C"),
                                                           b2, a2]))
    a, b, c = invoices(path)
    assert [p.invoice.invoice_number for p in (a, b, c)] == ["A", "B", "C"]
    assert (a.locations, b.locations, c.locations) == ((2, 6), (3, 5), (4,))
    assert a.violations == b.violations == c.violations == ()
    assert [ln.source_line for ln in a.invoice.lines] == [2, 6]


def test_rows_out_of_line_order_are_sorted_by_line_number(tmp_path):
    first, second = two_line_rows()
    path = write(tmp_path, "invoices_rev.csv", csv_text([second, first]))
    parsed = only(path)
    assert [ln.line_number for ln in parsed.invoice.lines] == [1, 2]
    assert parsed.locations == (2, 3)


def test_identity_normalizes_invoice_number_and_maps_company(tmp_path):
    rows = [row(InvoiceNumber="inv 1", LineNumber="1"),
            row(InvoiceNumber="INV-1", LineNumber="1"),
            row(CompanyID="C2000", LineNumber="1"),
            row(CompanyID="C9999", InvoiceNumber="inv-1", LineNumber="1")]
    path = write(tmp_path, "invoices_id.csv", csv_text(rows))
    items = invoices(path)
    # "inv 1" is its own invoice; "INV-1" and C9999's "inv-1" (unmapped: default company 10)
    # share an identity; C2000 maps to company 20.
    assert [(p.invoice.company, p.invoice.invoice_number, p.locations) for p in items] == [
        ("10", "inv 1", (2,)), ("10", "INV-1", (3, 5)), ("20", "INV-1", (4,))]
    merged = items[1]
    assert {(v.rule, v.field) for v in merged.violations} >= {
        ("header_mismatch", "company_id"), ("header_mismatch", "invoice_number"),
        ("line_numbers_unique", "line_number")}


@pytest.mark.parametrize("field", ["InvoiceNumber", "VendorID", "DocumentType"])
def test_row_without_identity_is_rejected_alone(tmp_path, field):
    rows = [row(InvoiceNumber="A"), row(**{"InvoiceNumber": "B", field: " "}),
            row(InvoiceNumber="C")]
    path = write(tmp_path, "invoices_rej.csv", csv_text(rows))
    a, rejected, c = read(path)
    assert isinstance(rejected, RejectedRow)
    canonical = {"InvoiceNumber": "invoice_number", "VendorID": "vendor_id",
                 "DocumentType": "document_type"}[field]
    assert (rejected.line, rejected.field) == (3, canonical)
    assert field in rejected.message
    assert isinstance(a, ParsedInvoice) and isinstance(c, ParsedInvoice)
    assert a.violations == c.violations == ()


def test_shifted_row_is_a_violation_not_a_silent_misread(tmp_path):
    text = csv_text([row()])
    text = text.replace(",Hoses,", ",Hoses, and fittings,")   # unquoted delimiter
    path = write(tmp_path, "invoices_shift.csv", text)
    parsed = only(path)
    assert "row_shape" in rules(parsed)
    (shape,) = [v for v in parsed.violations if v.rule == "row_shape"]
    assert shape.line == 2 and "25 columns" in shape.message


def test_trailing_empty_cells_and_blank_lines_are_harmless(tmp_path):
    text = csv_text([row(InvoiceNumber="A")]) + "\r\n\r\n" + \
        csv_text([row(InvoiceNumber="B")]).split("\r\n", 1)[1].replace("\r\n", ",,\r\n")
    path = write(tmp_path, "invoices_blank.csv", text)
    a, b = invoices(path)
    assert a.violations == b.violations == ()
    assert b.locations == (5,)


def test_one_value_over_the_size_limit_breaks_only_its_row(tmp_path):
    huge = "x" * 200_000       # beyond the 128 KiB limit on one value, on one line
    rows = [row(InvoiceNumber="A"), row(InvoiceNumber="B", LineDescription=huge),
            row(InvoiceNumber="C")]
    items = read(write(tmp_path, "invoices_huge.csv", csv_text(rows)))
    assert [i.invoice.invoice_number for i in items if isinstance(i, ParsedInvoice)] == \
        ["A", "C"]
    (broken,) = [i for i in items if isinstance(i, RejectedRow)]
    assert broken.line == 3 and "128 KiB" in broken.message


def test_a_quoted_value_running_over_the_size_limit_across_lines_rejects_the_file(tmp_path):
    lines = "\r\n".join("x" * 1000 for _ in range(200))   # a runaway quote, in effect
    path = write(tmp_path, "invoices_huge.csv",
                 csv_text([row(InvoiceNumber="A"), row(LineDescription=lines)]))
    with pytest.raises(ExportFileError) as caught:
        read(path)
    assert caught.value.line == 3 and caught.value.field == "LineDescription"
    assert "never closed" in caught.value.message
