"""Hostile export files (issue 17): nothing an export held may vanish without a recorded
reason; control characters and oversized values never reach the ledger unflagged."""
from __future__ import annotations

import pytest

from adapters.stampli import worker
from adapters.stampli.errors import ExportFileError
from ledger.model import ParsedInvoice, RejectedRow
from tests.stampli.exports import csv_text, read, row, rules, write
from tests.stampli.test_xml_invoices import export, invoice_xml


def _unclosed(rows: list[dict[str, str]], opened_in: int) -> str:
    """The export with a quote opened in the last field of data row `opened_in` (1-based),
    never closed: the attack of issue 17 item 1."""
    lines = csv_text(rows).split("\r\n")
    lines[opened_in] = lines[opened_in].rsplit(",", 1)[0] + ',"2026-11-06T15:25:00Z'
    return "\r\n".join(lines)


@pytest.mark.parametrize("opened_in", [1, 3])
def test_an_unclosed_quote_rejects_the_file_naming_the_line_it_opened(tmp_path, opened_in):
    rows = [row(InvoiceNumber=f"N{i}") for i in range(1, 5)]
    path = write(tmp_path, "invoices_q.csv", _unclosed(rows, opened_in))
    with pytest.raises(ExportFileError) as caught:
        read(path)
    assert caught.value.line == opened_in + 1
    assert "quote" in caught.value.message and "never closed" in caught.value.message


def test_an_unclosed_quote_after_a_quoted_multiline_value_names_the_quote_line(tmp_path):
    rows = [row(InvoiceNumber="N1", LineDescription="two\nlines"), row(InvoiceNumber="N2")]
    path = write(tmp_path, "invoices_q.csv", _unclosed(rows, 1))
    with pytest.raises(ExportFileError) as caught:
        read(path)
    assert caught.value.line == 3          # the record starts on 2; its quote opens on 3


def test_the_unclosed_quote_is_rejected_on_the_worker_path_too(tmp_path, monkeypatch):
    monkeypatch.setattr(worker, "PARALLEL_ROWS", 1)
    monkeypatch.setattr(worker, "_cores", lambda: 2)
    rows = [row(InvoiceNumber=f"N{i}") for i in range(1, 5)]
    path = write(tmp_path, "invoices_q.csv", _unclosed(rows, 2))
    with pytest.raises(ExportFileError) as caught:
        read(path)
    assert caught.value.line == 3


def test_text_after_a_closing_quote_is_a_broken_row_and_its_neighbours_go_on(tmp_path):
    text = csv_text([row(InvoiceNumber=f"N{i}") for i in range(1, 4)])
    lines = text.split("\r\n")
    lines[2] = lines[2].replace(",Hoses,", ',"Hoses"x,')
    items = read(write(tmp_path, "invoices_j.csv", "\r\n".join(lines)))
    parsed = [i for i in items if isinstance(i, ParsedInvoice)]
    broken = [i for i in items if isinstance(i, RejectedRow)]
    assert [p.invoice.invoice_number for p in parsed] == ["N1", "N3"]
    assert [(b.line, "quote" in b.message) for b in broken] == [(3, True)]


def test_a_line_break_in_a_field_that_allows_none_is_a_broken_row(tmp_path):
    rows = [row(InvoiceNumber="N1", ExportedAt="2026-11-06T15:25:00Z\nN2,x"),
            row(InvoiceNumber="N3", LineDescription="two\nlines")]
    items = read(write(tmp_path, "invoices_nl.csv", csv_text(rows)))
    first, second = items
    assert "line_break" in rules(first)
    assert [v.line for v in first.violations if v.rule == "line_break"] == [2]
    assert second.violations == ()         # a description may hold line breaks


def test_exported_at_and_approved_at_must_be_timestamps(tmp_path):
    rows = [row(InvoiceNumber="N1", ExportedAt="yesterday"),
            row(InvoiceNumber="N2", ApprovedAt="2026-13-01T00:00:00Z"),
            row(InvoiceNumber="N3", ApprovedAt="", ExportedAt="2026-11-06T15:25:00+01:00")]
    first, second, third = read(write(tmp_path, "invoices_ts.csv", csv_text(rows)))
    assert "timestamp_format" in rules(first) and "ExportedAt" in first.violations[0].message
    assert "timestamp_format" in rules(second)
    assert third.violations == ()


@pytest.mark.parametrize("char", ["\x00", "\x1b", "\x07", "\x7f", "\x9b"])
def test_control_characters_in_invoice_fields_break_a_rule(tmp_path, char):
    rows = [row(InvoiceNumber="N1", VendorName=f"Acme{char}[2J"),
            row(InvoiceNumber="N2", LineDescription=f"x{char}y"),
            row(InvoiceNumber="N3", LineDescription="tab\tis fine")]
    first, second, third = read(write(tmp_path, "invoices_cc.csv", csv_text(rows)))
    assert "control_character" in rules(first) and "control_character" in rules(second)
    message = next(v.message for v in first.violations if v.rule == "control_character")
    assert char not in message and "VendorName" in message
    assert third.violations == ()


def test_a_huge_xml_text_field_is_a_broken_field_not_a_ledger_value(tmp_path):
    huge = "x" * (200 * 1024)
    path = write(tmp_path, "invoices_big.xml",
                 export(invoice_xml("BIG", name=huge), invoice_xml("OK")))
    big, ok = read(path)
    assert "field_too_long" in rules(big)
    message = next(v.message for v in big.violations if v.rule == "field_too_long")
    assert "Vendor" in message and "128 KiB" in message
    assert len(big.invoice.vendor_name) <= 128 * 1024
    assert ok.violations == () and ok.invoice.invoice_number == "OK"


def test_a_huge_xml_attribute_or_line_text_is_flagged_too(tmp_path):
    huge = "y" * (129 * 1024)
    path = write(tmp_path, "invoices_big.xml",
                 export(invoice_xml("BIG", extra=f"<PONumber>{huge}</PONumber>")))
    (big,) = read(path)
    assert "field_too_long" in rules(big) and len(big.invoice.po_number) <= 128 * 1024
