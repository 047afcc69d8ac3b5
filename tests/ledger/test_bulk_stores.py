"""The ledger's own persistence classes (ledger/sqlite_store.py, ledger/postgres_store.py),
on both backends: a save's events go in with one statement, so the notification ids handed
back must be the rows' real positions, a clash must keep nothing of the save, and every byte
of the state must come back as stored. SQLite connections checkpoint the WAL less often."""
from __future__ import annotations

import sqlite3
import uuid

import pytest

from eventsourcing.persistence import IntegrityError, StoredEvent
from ledger.app import Ledger
from ledger.postgres_store import BulkPostgresApplicationRecorder
from ledger.sqlite_store import (CACHE_KIB, PAGE_BYTES, WAL_CHECKPOINT_BYTES,
                                  BulkSQLiteApplicationRecorder)
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


def _pragmas(ledger, *names):
    with ledger.recorder.datastore.transaction(commit=False) as cursor:
        found = []
        for name in names:
            cursor.execute(f"PRAGMA {name}")
            found.append(cursor.fetchone()[0])
    return found


def test_a_new_ledger_has_16_kib_pages_a_40_mb_wal_and_a_32_mib_cache(sqlite_ledger):
    # What the pages and the cache save (fewer writes, no dirty pages spilled and written
    # again, no index pages read back) shows in time only: bench/ingest.py measures it.
    assert _pragmas(sqlite_ledger, "page_size", "journal_mode", "wal_autocheckpoint",
                    "cache_size") == [PAGE_BYTES, "wal", 2500, -CACHE_KIB]
    assert PAGE_BYTES == 16 * 1024 and CACHE_KIB == 32 * 1024
    assert 2500 * PAGE_BYTES == WAL_CHECKPOINT_BYTES == 40_960_000


def test_a_ledger_made_with_4_kib_pages_keeps_them_and_its_events(tmp_path):
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as old:     # as SQLite (and the connector before) made them
        old.execute("PRAGMA journal_mode=WAL")
    ledger = Ledger(f"sqlite:///{path}")
    try:
        stream = uuid.uuid4()
        ledger.recorder.insert_events(_events(stream, range(1, 3)))
        assert _pragmas(ledger, "page_size", "wal_autocheckpoint") == [4096, 10_000]
        assert [e.state for e in ledger.recorder.select_events(stream)] == [
            b'{"v":1}', b'{"v":2}']
    finally:
        ledger.close()


def test_an_in_memory_ledger_still_works():
    ledger = Ledger("sqlite:///:memory:")
    try:
        ids = ledger.recorder.insert_events(_events(uuid.uuid4(), range(1, 4)))
        assert ids == [1, 2, 3]
    finally:
        ledger.close()


def test_the_projection_store_checkpoints_alike(sqlite_ledger, tmp_path):
    store = open_view_store(f"sqlite:///{tmp_path}/l.db")     # the ledger's file
    try:
        with store.transaction() as cursor:
            assert cursor.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 2500
    finally:
        store.close()


def test_notification_rows_are_the_librarys_notifications_as_tuples(ledger):
    """The projections' own reader (ledger/persistence.py notification_rows): the rows the
    library's select_notifications gives, from a position, every byte of the state."""
    a, b = uuid.uuid4(), uuid.uuid4()
    states = [bytes(range(256)), b"", b"\\x00 '\" \\N", b'{"big":"%s"}' % (b"x" * 20_000)]
    ledger.recorder.insert_events([StoredEvent(a, v, "tests.Bytes", s)
                                   for v, s in enumerate(states, start=1)])
    ledger.recorder.insert_events(_events(b, range(1, 4)))
    expected = [(n.id, str(n.originator_id), n.originator_version, n.topic, bytes(n.state))
                for n in ledger.recorder.select_notifications(3, 100)]
    rows = ledger.notification_rows(3, 100)
    assert rows == expected and len(rows) == 5
    assert all(type(r[1]) is str and type(r[4]) is bytes for r in rows)
    assert ledger.notification_rows(3, 2) == expected[:2]
    assert ledger.notification_rows(8, 10) == []


def test_a_projection_upsert_writes_new_rows_and_overwrites_old_ones(ledger):
    """The status view's flush (projections/store.py Cursor.upsert): on PostgreSQL one
    statement of arrays, on SQLite a statement a row; the same table either way."""
    store = open_view_store(ledger.url)
    columns, types = ("id", "note", "attempts"), ("TEXT", "TEXT", "INTEGER")
    try:
        with store.transaction() as cur:
            cur.execute("CREATE TABLE t_upsert (id TEXT PRIMARY KEY, note TEXT, attempts INTEGER)")
            cur.upsert("t_upsert", columns, types, [("a", "first", 0), ("b", None, 1)])
            cur.upsert("t_upsert", columns, types, [])
        with store.transaction() as cur:
            cur.upsert("t_upsert", columns, types, [("b", "it's \\ \"ü\"", 2), ("c", "", None)])
            rows = cur.execute("SELECT id, note, attempts FROM t_upsert ORDER BY id").fetchall()
    finally:
        store.close()
    assert [tuple(r) for r in rows] == [("a", "first", 0), ("b", "it's \\ \"ü\"", 2),
                                        ("c", "", None)]


# ---- PostgreSQL: large saves go by COPY (ledger/postgres_store.py) -------------------------

@pytest.fixture(params=["copy", "insert"])
def pg_ledger(request, pg_url):
    """A PostgreSQL ledger whose saves all go by COPY, or none do."""
    ledger = Ledger(pg_url)
    ledger.recorder.copy_from = 1 if request.param == "copy" else 10**9
    yield ledger
    ledger.close()


def _rows(recorder) -> list[tuple]:
    return [(n.id, n.originator_id, n.originator_version, n.topic, n.state)
            for n in recorder.select_notifications(1, 10_000)]


def test_copy_stores_the_rows_and_ids_an_insert_stores(pg_url, tmp_path):
    a, b = uuid.uuid4(), uuid.uuid4()
    states = [bytes(range(256)), b"\\x00 '\" {}\\\\\t\n", "ünï €".encode(), b"", b"\\N"]
    saves = [[StoredEvent(a, v, "tests.Bytes", s) for v, s in enumerate(states, start=1)],
             _events(b, range(1, 3)) + _events(a, range(6, 8)),
             _events(b, range(3, 4)),
             _events(uuid.uuid4(), range(1, 2501))]         # sent in several blocks
    results = {}
    for how, copy_from in (("copy", 1), ("insert", 10**9)):
        ledger = Ledger(pg_url if how == "copy" else f"{pg_url}?schema=by_insert")
        ledger.recorder.copy_from = copy_from
        try:
            ids = [ledger.recorder.insert_events(save) for save in saves]
            results[how] = (ids, _rows(ledger.recorder))
        finally:
            ledger.close()
    assert results["copy"] == results["insert"]
    ids, rows = results["copy"]
    assert [i for save in ids for i in save] == [row[0] for row in rows] == list(range(1, 2511))
    assert [row[4] for row in rows[:5]] == states


def test_a_clash_in_a_copy_keeps_nothing_and_raises_as_an_insert(pg_ledger):
    ledger = pg_ledger
    a, b = uuid.uuid4(), uuid.uuid4()
    ledger.recorder.insert_events(_events(a, range(1, 3)))
    with pytest.raises(IntegrityError):
        ledger.recorder.insert_events(_events(b, range(1, 200)) + _events(a, range(2, 4)))
    assert ledger.recorder.select_events(b) == []
    # the ids burnt by the failed save leave a gap, as the library's insert does; the next
    # save's ids are still its rows' positions
    ids = ledger.recorder.insert_events(_events(b, range(1, 4)))
    assert [n.id for n in ledger.recorder.select_notifications(ids[0], 10)] == ids


def test_save_all_reports_a_concurrent_change_from_a_copy(pg_ledger):
    from ledger.errors import ConcurrentChange
    from ledger.intake import record_invoice_file
    from tests.builders import export_file, invoice, parsed

    ledger = pg_ledger
    invoices = [parsed(invoice(f"N{i}")) for i in range(150)]
    record_invoice_file(ledger, export_file("a.csv"), invoices[:1], ["Approved"])
    # a second writer got there first: the intake batch that also holds N0 as new clashes
    stale = Ledger(ledger.url)
    stale.recorder.copy_from = ledger.recorder.copy_from
    try:
        stale.recorded = lambda ids: set()                      # it has not seen N0
        with pytest.raises(ConcurrentChange):
            record_invoice_file(stale, export_file("b.csv"), invoices, ["Approved"])
    finally:
        stale.close()
    assert ledger.recorded(i.invoice.id for i in invoices) == {invoices[0].invoice.id}


def test_concurrent_copies_get_ids_in_commit_order(pg_url):
    """Two writers saving by COPY at once: each save's ids are its own rows, in order, and
    the log holds every row once (the table lock serialises them, as for the library)."""
    import threading

    ledgers = [Ledger(pg_url) for _ in range(2)]
    saved: list[tuple[list[int], list[StoredEvent]]] = []
    lock = threading.Lock()

    def write(ledger):
        ledger.recorder.copy_from = 1
        for _ in range(5):
            events = _events(uuid.uuid4(), range(1, 150))
            ids = ledger.recorder.insert_events(events)
            with lock:
                saved.append((ids, events))

    threads = [threading.Thread(target=write, args=(ledger,)) for ledger in ledgers]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        log = {n.id: n for n in ledgers[0].recorder.select_notifications(1, 10_000)}
        assert len(log) == 10 * 149
        for ids, events in saved:
            assert [(log[i].originator_id, log[i].originator_version) for i in ids] == [
                (e.originator_id, e.originator_version) for e in events]
    finally:
        for ledger in ledgers:
            ledger.close()


def test_recorded_finds_exactly_the_streams_with_events(ledger):
    """Intake asks once per batch which invoices the ledger holds (SQLite: a few hundred ids
    per query; PostgreSQL: one query, one index probe per id)."""
    held = [uuid.uuid4() for _ in range(700)]
    ledger.recorder.insert_events([e for stream in held[::3] for e in _events(stream, range(1, 3))])
    asked = held + [uuid.uuid4() for _ in range(600)] + held[:5]
    assert ledger.recorded(asked) == set(held[::3])
    assert ledger.recorded([]) == set()


def test_event_states_are_compressed_with_lz4(pg_ledger):
    """A Posted event's IFS exchanges make large states: lz4 compresses them for a fraction
    of pglz's CPU, and they come back byte for byte."""
    ledger = pg_ledger
    stream = uuid.uuid4()
    state = b'{"exchanges":[%s]}' % b",".join(b'{"n":%d,"body":"%s"}' % (n, b"x" * 200)
                                                for n in range(100))
    ledger.recorder.insert_events([StoredEvent(stream, 1, "tests.Large", state)])
    with ledger.recorder.datastore.transaction() as curs:
        curs.execute(ledger.recorder.state_compression_statement)
        assert curs.fetchone()["attcompression"] == "l"
        curs.execute("SELECT pg_column_compression(state) AS method, octet_length(state) AS n,"
                     " pg_column_size(state) AS stored FROM ml_connector_events")
        row = curs.fetchone()
    assert row["method"] == "lz4" and row["n"] == len(state) and row["stored"] < len(state) / 4
    assert ledger.recorder.select_events(stream)[0].state == state
    Ledger(ledger.url).close()                 # opened again: the setting is kept, no error
