"""eventsourcing's PostgreSQL persistence, with large saves sent by COPY and small ones as
four arrays.

Chosen by the ledger URL's environment (`PERSISTENCE_MODULE` names LedgerPostgresFactory).

- A save of COPY_FROM events or more (intake's batches) goes by `COPY ... FROM STDIN` in
  binary, in the transaction that takes the library's table lock and sends its NOTIFY. The
  server writes COPY's rows in bulk (100k invoices recorded in 5.5 s instead of 7.6 s, same
  load). COPY hands back no ids:
  the table lock (EXCLUSIVE, as the library takes it) keeps every other writer out until the
  commit, and `notification_id` is a bigserial whose default is evaluated row by row in COPY
  order, so this save's ids are the `len(events)` consecutive values ending at the
  sequence's `currval` in this session -- the ids RETURNING would have given, in commit
  order as before. A duplicate (stream, version) raises the same IntegrityError, nothing of
  the save kept. No pipeline either: one run of the library's pipelined INSERT with a
  10,000-event save hung, client and server each waiting to read (seen once, 2026-12-01).
- Smaller saves: the library sends a save's events as one array of a composite type, which
  psycopg writes out in text, in Python, escaping every byte of every event's state with a
  regular expression. Here the same rows go as four parallel arrays (ids, versions, topics,
  states) in binary, unnested in the same order: the same table lock, NOTIFY, statement shape
  (INSERT ... SELECT ... RETURNING notification_id), ids read back and errors as the library's.
- Event states are compressed with lz4 instead of PostgreSQL's default pglz (PostgreSQL 14
  and later). A Posted event keeps its IFS exchanges, about 17 KB of JSON, so every one is
  compressed on its way into TOAST; pglz took a fifth of the server's CPU in the end-to-end
  flow (2.7 s of server CPU for 5,000 invoices, 2.1 s with lz4). Only new rows are affected;
  a server without lz4 keeps pglz.
"""
from __future__ import annotations

import json
import struct
from collections.abc import Iterator, Sequence
from typing import Any
from uuid import UUID

from eventsourcing.persistence import (InterfaceError, NotSupportedError, OperationalError,
                                      ProgrammingError, StoredEvent)
from eventsourcing.postgres import PostgresApplicationRecorder, PostgresFactory
from eventsourcing.utils import retry
from psycopg.sql import SQL, Identifier, Literal

COPY_FROM = 100                        # events per save from which COPY pays its round trips
_ROWS_PER_WRITE = 1000
# PostgreSQL's binary COPY format: signature, flags, header extension; per row the number of
# fields, then each field's length and bytes; -1 at the end.
_COPY_SIGNATURE = b"PGCOPY\n\xff\r\n\x00" + bytes(8)
_COPY_TRAILER = b"\xff\xff"
_ROW_HEAD = struct.Struct("!hi16siqi")   # 4 fields; uuid; int8 version; the topic's length
_LENGTH = struct.Struct("!i")


def copy_data(stored_events: Sequence[StoredEvent]) -> Iterator[bytes]:
    """The events as a binary COPY stream (originator_id, originator_version, topic, state),
    in blocks: psycopg's write_row formats each field in Python, which cost more than the
    server's insert of the row."""
    yield _COPY_SIGNATURE
    topics: dict[str, bytes] = {}
    block: list[bytes] = []
    for n, e in enumerate(stored_events, start=1):
        topic = topics.get(e.topic)
        if topic is None:
            topic = topics[e.topic] = e.topic.encode()
        oid = e.originator_id
        block += (_ROW_HEAD.pack(4, 16, (oid if oid.__class__ is UUID else UUID(str(oid))).bytes,
                                 8, e.originator_version, len(topic)),
                  topic, _LENGTH.pack(len(e.state)), e.state)
        if n % _ROWS_PER_WRITE == 0:
            yield b"".join(block)
            block = []
    block.append(_COPY_TRAILER)
    yield b"".join(block)


class BulkPostgresApplicationRecorder(PostgresApplicationRecorder):
    def __init__(self, datastore: Any, *, events_table_name: str = "stored_events") -> None:
        super().__init__(datastore, events_table_name=events_table_name)
        table = dict(schema=Identifier(datastore.schema), table=Identifier(events_table_name))
        self.insert_columns_statement = SQL(
            "INSERT INTO {schema}.{table} AS t (originator_id, originator_version, topic, state)"
            " SELECT * FROM unnest(%b::{id_type}[], %b::bigint[], %b::text[], %b::bytea[])"
            " RETURNING notification_id").format(
            id_type=Identifier(datastore.originator_id_type), **table)
        self.copy_statement = SQL(
            "COPY {schema}.{table} (originator_id, originator_version, topic, state)"
            " FROM STDIN (FORMAT BINARY)").format(**table)
        # COPY for uuid stream ids (the ledger's); a recorder configured for text ids inserts
        self.copy_from = COPY_FROM if datastore.originator_id_type == "uuid" else 2**62
        self.last_id_statement = SQL(
            "SELECT currval(pg_get_serial_sequence({name}, 'notification_id')) AS last").format(
            name=Literal(f'"{datastore.schema}"."{events_table_name}"'))
        self.state_compression_statement = SQL(
            "SELECT attcompression FROM pg_attribute WHERE attrelid = to_regclass({name})"
            " AND attname = 'state'").format(
            name=Literal(f'"{datastore.schema}"."{events_table_name}"'))
        self.compress_with_lz4_statement = SQL(
            "ALTER TABLE {schema}.{table} ALTER COLUMN state SET COMPRESSION lz4").format(**table)

    def create_table(self) -> None:
        super().create_table()
        # Asked first: ALTER TABLE locks out the other workers, even when nothing changes.
        try:
            with self.datastore.transaction(commit=True) as curs:
                curs.execute(self.state_compression_statement)
                row = curs.fetchone()
                if row is not None and row["attcompression"] != "l":
                    curs.execute(self.compress_with_lz4_statement)
        except (ProgrammingError, NotSupportedError):
            pass                       # PostgreSQL 13 (no attcompression) or built without lz4

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)
    def insert_events(self, stored_events: Sequence[StoredEvent],
                      **kwargs: Any) -> Sequence[int] | None:
        if len(stored_events) < self.copy_from or self.datastore.enable_db_functions:
            return super().insert_events(stored_events, **kwargs)
        # psycopg errors raised in get_connection's block become the library's (IntegrityError
        # on a duplicate version); the transaction is rolled back as it exits.
        with self.datastore.get_connection() as conn, conn.transaction(), \
                conn.cursor() as curs:
            self._lock_table(curs)
            self._notify_channel(curs)
            with curs.copy(self.copy_statement) as copy:
                for data in copy_data(stored_events):
                    copy.write(data)
            curs.execute(self.last_id_statement)
            last = curs.fetchone()["last"]
        return list(range(last - len(stored_events) + 1, last + 1))

    def _insert_stored_events(self, curs: Any, stored_events: Sequence[StoredEvent],
                              **_: Any) -> None:
        self._lock_table(curs)
        self._notify_channel(curs)
        curs.execute(self.insert_columns_statement, (
            [e.originator_id for e in stored_events],
            [e.originator_version for e in stored_events],
            [e.topic for e in stored_events],
            [e.state for e in stored_events]))


class LedgerPostgresFactory(PostgresFactory):
    application_recorder_class = BulkPostgresApplicationRecorder

    def __init__(self, env: Any) -> None:
        super().__init__(env)
        # libpq options from the ledger URL (sslmode, ...): on every pooled connection
        options = json.loads(self.env.get("MLC_LIBPQ_OPTIONS") or "{}")
        self.datastore.pool.kwargs.update(options)
