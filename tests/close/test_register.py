"""The posting register through the CLI after a real sync against the IFS emulator: one row
per document IFS received, matching what IFS holds; CSV cells safe in a spreadsheet."""
from __future__ import annotations

import csv
import io
import json

from projections.csvsafe import csv_line, safe_cell
from tests.close.conftest import CloseWorld

HOSTILE = '=HYPERLINK("http://evil.invalid","Acme")'


def _make_vendor_hostile(world: CloseWorld) -> None:
    path = world.outbound / "invoices_C1042_20261106152500.csv"
    path.write_text(path.read_text().replace("Acme Industrial Supply", HOSTILE.replace('"', '""')
                                             .join('""')))


def test_register_has_one_row_per_document_ifs_received(close_world):
    report = close_world.sync()
    assert report.errors == []
    result = close_world.cli("audit", "register", "--format", "jsonl")
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.output.splitlines()]
    ifs = {str(i["InvoiceId"]): i for i in close_world.ifs.state()["invoices"]}
    vouchers = {v["ExternalRef"]: v for v in close_world.ifs.state()["vouchers"]}
    assert len(rows) == len(ifs) == 4
    for row in rows:
        doc = ifs[row["ifs_invoice_id"]]
        assert doc["ExternalRef"] == row["ledger_id"]
        assert (row["vendor_id"], row["invoice_number"]) == (doc["Identity"], doc["InvoiceNo"])
        assert row["total"] == doc["GrossCurrAmount"] and row["net"] == doc["NetCurrAmount"]
        voucher = vouchers[row["ledger_id"]]
        assert (row["voucher_year"], row["voucher_type"], row["voucher_no"]) == (
            str(voucher["AccountingYear"]), voucher["VoucherType"], str(voucher["VoucherNo"]))
        assert row["kind"] == "posted" and row["posted_at"] and row["connector_version"]
        assert len(row["source_sha256"]) == 64 and row["source_file"].startswith("invoices_")
    two_lines = next(r for r in rows if (r["vendor_id"], r["invoice_number"])
                     == ("V00231", "INV-2026-0117"))
    assert two_lines["line_count"] == 2 and two_lines["vendor_name"] == "Acme Industrial Supply"
    assert two_lines["ifs_supplier"] == "V00231"


def test_register_window_and_file_output(close_world, tmp_path):
    close_world.sync()
    out = tmp_path / "register.csv"
    result = close_world.cli("audit", "register", "-o", str(out))
    assert result.exit_code == 0, result.output
    assert "wrote 4 register rows" in result.output
    assert len(list(csv.DictReader(out.open()))) == 4
    later = close_world.cli("audit", "register", "--since", "2999-01-01")
    assert later.exit_code == 0 and later.output.count("\n") == 1     # the header only
    # posting times shown in connector.timezone, with the offset
    config = close_world.config.read_text().replace('company = "10"',
                                                    'company = "10"\ntimezone = "Asia/Kolkata"', 1)
    close_world.config.write_text(config)
    local = close_world.cli("audit", "register", "--format", "jsonl")
    assert all(json.loads(line)["posted_at"].endswith("+05:30")
               for line in local.output.splitlines())
    bad = close_world.cli("audit", "register", "--since", "last tuesday")
    assert bad.exit_code == 2 and "--since/--until" in bad.output


def test_a_formula_vendor_name_reads_back_as_text_and_amounts_stay_numbers(close_world):
    _make_vendor_hostile(close_world)
    assert close_world.sync().errors == []
    result = close_world.cli("audit", "register", "--format", "csv")
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.output)))
    hostile = [r for r in rows if "HYPERLINK" in r["vendor_name"]]
    assert len(hostile) == 2 and all(r["vendor_name"] == "'" + HOSTILE for r in hostile)
    credit = next(r for r in hostile if r["invoice_number"] == "CN-2026-0009")
    assert (credit["total"], credit["net"]) == ("-216.00", "-200.00")   # a number, unquoted
    # the audit export's CSV goes through the same helper
    export = close_world.cli("audit", "export", "--format", "csv")
    cells = [c for r in csv.reader(io.StringIO(export.output)) for c in r]
    assert not any(c.startswith(("=", "+", "@", "\t", "\r")) for c in cells)


def test_every_formula_start_is_neutralised_and_numbers_are_not():
    for start in ("=", "+", "-", "@", "\t", "\r"):
        cell = next(csv.reader(io.StringIO(csv_line([f"{start}1+1", -5]), newline="")))
        assert cell == [f"'{start}1+1", "-5"]
    assert safe_cell("Acme") == "Acme" and safe_cell(None) == ""


def test_rows_from_recent_events_equal_rows_read_from_each_stream(close_world):
    """The register keeps the last invoices' events to spare a query per row; with that
    memory at zero every row is read from its stream: the same rows either way."""
    from adapters.settings import ledger_url, load_settings
    from ledger.app import Ledger
    from projections.register import iter_register

    _make_vendor_hostile(close_world)
    close_world.sync()
    ledger = Ledger(ledger_url(load_settings(close_world.config)))
    try:
        remembered = list(iter_register(ledger))
        looked_up = list(iter_register(ledger, recent=0))
        one_page = list(iter_register(ledger, page_size=3, recent=1))
    finally:
        ledger.close()
    assert len(remembered) == 4 and remembered == looked_up == one_page
