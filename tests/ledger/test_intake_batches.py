"""Intake saves a batch of new invoices without first asking the ledger which it holds: a
recorded one makes that save fail whole, and from then on each batch asks first. The
outcome is the one asking every time gives, on SQLite and PostgreSQL."""
from __future__ import annotations

import pytest

from ledger.app import Ledger
from ledger.intake import record_invoice_file
from tests.builders import export_file, invoice, parsed


@pytest.fixture(params=["sqlite", "postgres"])
def ledger(request, tmp_path):
    url = request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url")
    opened = Ledger(url)
    asked: list[int] = []
    real = opened.recorded
    opened.recorded = lambda ids: asked.append(len(ids := list(ids))) or real(ids)
    opened.asked = asked
    yield opened
    opened.close()


def test_a_file_of_new_invoices_never_asks(ledger):
    summary = record_invoice_file(ledger, export_file("a.csv"),
                                  [parsed(invoice(f"N{i}")) for i in range(7)], ["Approved"],
                                  batch_size=3)
    assert (summary["invoices_new"], summary["duplicates"]) == (7, 0)
    assert ledger.asked == []
    assert all(ledger.invoice(invoice(f"N{i}").id).version == 2 for i in range(7))


def test_from_the_first_batch_holding_a_recorded_invoice_each_batch_asks(ledger):
    record_invoice_file(ledger, export_file("a.csv"), [parsed(invoice("A"))], ["Approved"])
    changed = invoice("A", lines=(("6100", "CC210", "90.00", "8.00"),))
    items = [parsed(invoice("N1")), parsed(invoice("N2")),            # saved without asking
             parsed(invoice("N3")), parsed(changed),                  # fails, asks, saved
             parsed(invoice("N4")), parsed(invoice("N5"))]            # asks
    summary = record_invoice_file(ledger, export_file("b.csv"), items, ["Approved"],
                                  batch_size=2)
    assert (summary["invoices_new"], summary["amendments"]) == (5, 1)
    assert ledger.asked == [2, 2]
    assert [e["type"] for e in ledger.history(invoice("A").id)] == [
        "Discovered", "Parsed", "Amended"]
    assert all(ledger.invoice(invoice(f"N{i}").id).version == 2 for i in range(1, 6))
    again = record_invoice_file(ledger, export_file("b.csv", "again"), items, ["Approved"],
                                batch_size=2)
    assert (again["invoices_new"], again["duplicates"]) == (0, 6)
