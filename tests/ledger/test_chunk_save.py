"""A stage records a chunk of invoices in one transaction (ledger/chunked.py). When another
worker sharing the ledger moved one of them first, nothing of the chunk is written; the
others are then recorded together, the moved one is left as the other worker recorded it."""
from __future__ import annotations

from collections import OrderedDict
from types import SimpleNamespace

import pytest

from ledger.app import Ledger
from ledger.chunked import ChunkedStages
from ledger.intake import record_invoice_file
from tests.builders import export_file, invoice, parsed


@pytest.fixture
def two_workers(sqlite_url):
    """Two ledgers on one database (two `sync` processes) holding invoices A, B and C."""
    first, second = Ledger(sqlite_url), Ledger(sqlite_url)
    record_invoice_file(first, export_file(), [parsed(invoice(n)) for n in "ABC"], ["Approved"])
    yield first, second
    first.close()
    second.close()


def stages(ledger: Ledger) -> ChunkedStages:
    chunked = ChunkedStages()
    chunked.ledger = ledger
    chunked.settings = SimpleNamespace(page=10, post_batch=5, save_chunk=10)
    chunked._recent = OrderedDict()
    return chunked


def failed_in(ledger: Ledger, *numbers: str) -> list:
    found = [ledger.invoice(invoice(n).id) for n in numbers]
    for inv in found:
        inv.fail("validate", "data", f"checked by {id(ledger)}")
    return found


def stage_messages(ledger: Ledger, number: str) -> list[str]:
    return [e["data"]["message"] for e in ledger.history(invoice(number).id)
            if e["type"] == "Failed"]


def test_a_chunk_with_an_invoice_moved_by_another_worker_saves_the_others(two_workers):
    first, second = two_workers
    mine = failed_in(first, "A", "B", "C")
    theirs = failed_in(second, "B")
    assert stages(second)._save_chunk(theirs) == theirs

    saved = stages(first)._save_chunk(mine)
    assert [i.id for i in saved] == [invoice("A").id, invoice("C").id]
    assert stage_messages(first, "A") == [f"checked by {id(first)}"]
    assert stage_messages(first, "B") == [f"checked by {id(second)}"]     # theirs stands
    assert stage_messages(first, "C") == [f"checked by {id(first)}"]


def test_without_each_nothing_of_the_chunk_is_saved(two_workers):
    first, second = two_workers
    mine = failed_in(first, "A", "B")
    stages(second)._save_chunk(failed_in(second, "A"))
    assert stages(first)._save_chunk(mine, each=False) == []
    assert stage_messages(first, "B") == []
    assert stage_messages(first, "A") == [f"checked by {id(second)}"]


def test_the_saved_invoices_are_kept_for_the_next_stage(two_workers):
    first, _ = two_workers
    chunked = stages(first)
    saved = chunked._save_chunk(failed_in(first, "A", "C"))
    assert list(chunked._recent) == [str(i.id) for i in saved]
    assert stages(first)._save_chunk([]) == []


def test_after_a_clash_the_unmoved_invoices_are_saved_together(two_workers, monkeypatch):
    """Which invoices the other worker moved is read in one query; the others go in one
    save, not one transaction each."""
    first, second = two_workers
    mine = failed_in(first, "A", "B", "C")
    stages(second)._save_chunk(failed_in(second, "B"))
    saves = []
    real_save_all = first.save_all
    monkeypatch.setattr(first, "save_all", lambda events: (saves.append(len(list(events))),
                                                           real_save_all(events))[1])
    saved = stages(first)._save_chunk(mine)
    assert [i.id for i in saved] == [invoice("A").id, invoice("C").id]
    assert saves == [3, 2]          # the chunk (clashed), then A and C together
    assert stage_messages(first, "C") == [f"checked by {id(first)}"]


@pytest.fixture(params=["sqlite", "postgres"])
def ledger_url(request):
    return request.getfixturevalue(f"{'pg' if request.param == 'postgres' else 'sqlite'}_url")


def test_last_versions_reads_each_streams_last_version(ledger_url):
    ledger = Ledger(ledger_url)
    try:
        record_invoice_file(ledger, export_file(), [parsed(invoice(n)) for n in "AB"],
                            ["Approved"])
        a = ledger.invoice(invoice("A").id)
        a.fail("validate", "data", "checked")
        ledger.save_all([a])
        absent = invoice("Z").id
        last = ledger.last_versions([invoice("A").id, invoice("B").id, absent])
        assert last == {invoice("A").id: a.version, invoice("B").id: a.version - 1}
    finally:
        ledger.close()
