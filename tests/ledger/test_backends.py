"""The ledger contract on each backend, and the two backends agreeing with each other."""
from __future__ import annotations

import pytest

from ledger.app import Ledger
from ledger.intake import record_invoice_file
from projections.runner import Projector
from projections.status import read_status
from tests.builders import export_file, invoice, parsed
from tests.ledger.contract import LedgerContract


class TestSqliteLedger(LedgerContract):
    @pytest.fixture
    def url(self, sqlite_url):
        return sqlite_url


@pytest.mark.postgres
class TestPostgresLedger(LedgerContract):
    @pytest.fixture
    def url(self, pg_url):
        return pg_url


def _scenario(url: str) -> list[dict]:
    """A fixed sequence of commands; returns status without the recording times."""
    ledger = Ledger(url)
    projector = Projector(ledger)
    try:
        record_invoice_file(ledger, export_file("a.csv"), [
            parsed(invoice("INV-1")), parsed(invoice("INV-2", approval="Pending")),
            parsed(invoice("INV-3", currency="JPY", lines=(("6100", "CC210", "1000", "80"),))),
        ], ["Approved"])
        record_invoice_file(ledger, export_file("b.csv"), [
            parsed(invoice("INV-2")), parsed(invoice("INV-1"))], ["Approved"])
        inv = ledger.invoice(invoice("INV-1").id)
        inv.validate(["ok"], "s")
        inv.resolve_vendor("V00231", "existing")
        inv.intend_posting("w", approved_statuses=["Approved"])
        inv.post("1", {"VoucherNo": 2}, {}, [])
        ledger.record(inv)
        inv3 = ledger.invoice(invoice("INV-3", currency="JPY").id)
        inv3.fail("validate", "reference", "cost center CC999 unknown")
        ledger.record(inv3)
        ledger.request_replay(inv3.id, None, "x", operator="tester")
        projector.catch_up()
        with projector.store.transaction() as cur:
            rows = read_status(cur)
        return sorted(({k: v for k, v in r.items() if k != "updated_at"} for r in rows),
                      key=lambda r: r["id"])
    finally:
        projector.store.close()
        ledger.close()


@pytest.mark.postgres
def test_sqlite_and_postgresql_give_the_same_status(sqlite_url, pg_url):
    on_sqlite = _scenario(sqlite_url)
    assert len(on_sqlite) == 3
    assert on_sqlite == _scenario(pg_url)
