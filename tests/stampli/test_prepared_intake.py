"""Invoices the pass-2 worker prepares for intake (ledger/new_invoice.py: the new invoice's
first two events encoded in the worker) are recorded exactly as the ParsedInvoice items of
the same file: same summary, same events with the same stored members, valid MACs; and a
file read again finds them as duplicates."""
from __future__ import annotations

import orjson
import pytest

from adapters.settings import InvoiceFileSettings
from adapters.stampli.configured import read_invoices
from ledger.app import Ledger
from ledger.intake import record_invoice_file
from ledger.new_invoice import ExportFileRef, PreparedInvoice
from ledger.signing import EventKeys
from tests.builders import export_file
from tests.stampli.exports import csv_text, row, write
from tests.stampli.test_worker_early import here, workers  # noqa: F401 - a fixture

KEYS = EventKeys({"0000000b": b"p" * 32}, "0000000b")
APPROVED = ["Approved"]


def varied_rows(invoices: int = 300):
    """Adjacent rows per invoice; some break a rule, some await approval, some rows cannot
    be attributed."""
    rows = []
    for i in range(invoices):
        status = "Pending" if i % 7 == 3 else "Approved"
        for line in (1, 2):
            net = "51.00" if i % 31 == 0 and line == 2 else "50.00"
            rows.append(row(InvoiceNumber=f"N{i}", LineNumber=str(line), LineNet=net,
                            LineTax="4.00", ApprovalStatus=status))
        if i % 101 == 0:
            rows.append(row(InvoiceNumber="", VendorID=f"V{i}"))
    return rows


def _read(path, file=None):
    return read_invoices(path, InvoiceFileSettings(), default_company="10",
                         companies={"C2000": "20"}, prepare_for=file)


def _members(state: bytes) -> list:
    return [(k, v) for k, v in orjson.loads(state).items() if k not in ("timestamp", "mlc_mac")]


def _record(url, path, prepare: bool):
    file = export_file("invoices_a.csv")
    ledger = Ledger(url)
    ledger.use_keys(KEYS)
    items = list(_read(path, ExportFileRef(file.name, file.sha256) if prepare else None))
    summary = record_invoice_file(ledger, file, iter(items), APPROVED)
    rows = ledger.notification_rows(1, 10_000)
    return ledger, items, summary, rows, file


def test_prepared_invoices_are_recorded_as_parsed_ones(tmp_path, monkeypatch, workers):
    path = write(tmp_path, "invoices_a.csv", csv_text(varied_rows()))
    with monkeypatch.context() as m:
        m.setattr("adapters.stampli.worker.PARALLEL_ROWS", 10**9)
        plain, plain_items, expected, expected_rows, _ = _record(
            f"sqlite:///{tmp_path}/plain.db", path, prepare=False)
    plain.close()
    ledger, items, summary, rows, file = _record(f"sqlite:///{tmp_path}/prepared.db", path,
                                                 prepare=True)
    try:
        assert [job["prepare_for"] for job, _ in workers] == [(file.name, file.sha256)] * 2
        prepared = [i for i in items if isinstance(i, PreparedInvoice)]
        assert len(prepared) == 300 and any(p.states is None for p in prepared)
        # read back from the states (or from msgpack when it broke a rule): the same
        # invoices, decimals written alike (repr), as the items of the plain reader
        back = [i.parsed() if isinstance(i, PreparedInvoice) else i for i in items]
        assert back == plain_items and repr(back) == repr(plain_items)
        assert summary == expected and summary["invoices_new"] == 300
        assert summary["failed"] and len(summary["rejected_rows_listed"]) == 3
        assert [(r[1], r[2], r[3], _members(r[4])) for r in rows] == [
            (r[1], r[2], r[3], _members(r[4])) for r in expected_rows]
        assert all(KEYS.check(stream, version, topic, state) == ""
                   for _, stream, version, topic, state in rows)

        again = record_invoice_file(ledger, export_file("invoices_a.csv", "y"), _read(
            path, ExportFileRef("invoices_a.csv", "y")), APPROVED)
        assert (again["invoices_new"], again["duplicates"]) == (0, 300)
    finally:
        ledger.close()


def test_intake_without_a_worker_ignores_prepare_for(tmp_path, monkeypatch):
    path = write(tmp_path, "invoices_a.csv", csv_text(varied_rows(20)))
    assert not any(isinstance(i, PreparedInvoice)
                   for i in _read(path, ExportFileRef("invoices_a.csv", "x")))
    assert here(monkeypatch, path) == list(_read(path))


@pytest.mark.parametrize("approval", ["Approved", "Pending"])
def test_approval_is_judged_by_intake_not_by_the_worker(tmp_path, monkeypatch, workers,
                                                         approval):
    """The worker encodes the events of every clean invoice; intake records them as they are
    only when the invoice's status is among the approved ones it was given."""
    path = write(tmp_path, "invoices_a.csv", csv_text(
        [row(InvoiceNumber=f"N{i}", ApprovalStatus=approval) for i in range(30)]))
    file = export_file("invoices_a.csv")
    ledger = Ledger(f"sqlite:///{tmp_path}/l.db")
    try:
        record_invoice_file(ledger, file, _read(path, ExportFileRef(file.name, file.sha256)),
                            ["Released"])
        states = {ledger.find_invoice(i).state for i in ledger.recorded(
            p.id for p in _read(path))}
        assert states == {"awaiting_approval"}
    finally:
        ledger.close()
