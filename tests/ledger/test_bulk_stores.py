"""The ledger's own persistence classes (ledger/sqlite_store.py, ledger/postgres_store.py),
on both backends: a save's events go in with one statement, so the notification ids handed
back must be the rows' real positions, a clash must keep nothing of the save, and every byte
of the state must come back as stored. SQLite connections checkpoint the WAL less often."""
from __future__ import annotations

import uuid

import pytest

from eventsourcing.persistence import IntegrityError, StoredEvent
from ledger.app import Ledger
from ledger.postgres_store import BulkPostgresApplicationRecorder
from ledger.sqlite_store import WAL_CHECKPOINT_PAGES, BulkSQLiteApplicationRecorder
from projections.store import open_view_store


def _events(stream: uuid.UUID, versions: range) -> list[StoredEvent]:
    return [StoredEvent(stream, v, "tests.Event", b'{"v":%d}' % v) for v in versions]


BULK_RECORDERS = (BulkSQLiteApplicationRecorder, BulkPostgresApplicationRecorder)


@pytest.fixture(params=["sqlite", "postgres"])
def ledger(request, tmp_path):
    url = (f"sqlite:///{tmp_path}/l.db" if request.param == "sqlite"
           else request.getfixturevalue("pg_url"))
    ledger = Ledger(url)
    yield ledger
    ledger.close()


@pytest.fixture
def sqlite_ledger(tmp_path):
    ledger = Ledger(f"sqlite:///{tmp_path}/l.db")
    yield ledger
    ledger.close()


def test_returned_ids_are_the_stored_positions(ledger):
    assert isinstance(ledger.recorder, BULK_RECORDERS)
    a, b = uuid.uuid4(), uuid.uuid4()
    first = ledger.recorder.insert_events(_events(a, range(1, 4)))
    second = ledger.recorder.insert_events(_events(b, range(1, 3)) + _events(a, range(4, 6)))
    single = ledger.recorder.insert_events(_events(b, range(3, 4)))
    stored = ledger.recorder.select_notifications(1, 100)
    assert [n.id for n in stored] == [*first, *second, *single] == list(range(1, 9))
    assert [(n.originator_id, n.originator_version) for n in stored[3:7]] == [
        (b, 1), (b, 2), (a, 4), (a, 5)]


def test_a_clash_keeps_nothing_of_the_save(ledger):
    a, b = uuid.uuid4(), uuid.uuid4()
    ledger.recorder.insert_events(_events(a, range(1, 3)))
    before = ledger.recorder.max_notification_id()
    with pytest.raises(IntegrityError):        # a's version 2 is taken
        ledger.recorder.insert_events(_events(b, range(1, 3)) + _events(a, range(2, 4)))
    assert ledger.recorder.max_notification_id() == before
    assert ledger.recorder.select_events(b) == []
    assert [e.originator_version for e in ledger.recorder.select_events(a)] == [1, 2]


def test_every_byte_of_the_state_comes_back(ledger):
    stream = uuid.uuid4()
    states = [bytes(range(256)), b"\\x00 '\" {}\\\\", "ünï €".encode(), b""]
    ledger.recorder.insert_events([StoredEvent(stream, v, "tests.Bytes", state)
                                   for v, state in enumerate(states, start=1)])
    assert [e.state for e in ledger.recorder.select_events(stream)] == states


def test_connections_checkpoint_the_wal_every_40_mb(sqlite_ledger):
    ledger = sqlite_ledger
    with ledger.recorder.datastore.transaction(commit=False) as cursor:
        cursor.execute("PRAGMA wal_autocheckpoint")
        assert cursor.fetchone()[0] == WAL_CHECKPOINT_PAGES == 10_000
        cursor.execute("PRAGMA journal_mode")
        assert cursor.fetchone()[0] == "wal"


def test_an_in_memory_ledger_still_works():
    ledger = Ledger("sqlite:///:memory:")
    try:
        ids = ledger.recorder.insert_events(_events(uuid.uuid4(), range(1, 4)))
        assert ids == [1, 2, 3]
    finally:
        ledger.close()


def test_the_projection_store_checkpoints_alike(tmp_path):
    store = open_view_store(f"sqlite:///{tmp_path}/l.db")
    try:
        with store.transaction() as cursor:
            assert cursor.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 10_000
    finally:
        store.close()
