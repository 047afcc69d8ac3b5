"""Where the ledger is stored: the eventsourcing settings for a ledger URL, the schema lock,
and the few reads done in each dialect's own SQL because the library's are too slow for them.
The application (ledger/app.py) holds the use cases; this module, ledger/sqlite_store.py and
ledger/postgres_store.py hold SQLite and PostgreSQL."""
from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlparse
from uuid import UUID

from eventsourcing.persistence import InterfaceError, OperationalError
from eventsourcing.utils import retry

from ledger.errors import LedgerError
from ledger.private import create_private_file, make_private_dir

# eventsourcing's persistence, with faster bulk inserts (ledger/sqlite_store.py and
# ledger/postgres_store.py). Named by topic, so only the backend in use is imported.
SQLITE_FACTORY_TOPIC = "ledger.sqlite_store:LedgerSQLiteFactory"
POSTGRES_FACTORY_TOPIC = "ledger.postgres_store:LedgerPostgresFactory"


def environment_for(url: str) -> dict[str, str]:
    """eventsourcing settings from a ledger URL."""
    if url.startswith("sqlite:///"):
        path = url[len("sqlite:///"):]
        if path != ":memory:":
            make_private_dir(os.path.dirname(os.path.abspath(path)))
            if create_private_file(path):     # vendor tax ids: 0600, and so its -wal and -shm
                from ledger.sqlite_store import new_ledger_file   # the backend in use only
                new_ledger_file(path)
        return {"PERSISTENCE_MODULE": SQLITE_FACTORY_TOPIC,
                "SQLITE_DBNAME": path if path != ":memory:" else ":memory:",
                "SQLITE_LOCK_TIMEOUT": "30"}
    if url.startswith(("postgresql://", "postgres://")):
        parts = urlparse(url)
        schema, options = postgres_options(url)
        return {"PERSISTENCE_MODULE": POSTGRES_FACTORY_TOPIC,
                "POSTGRES_SCHEMA": schema, LIBPQ_OPTIONS_ENV: json.dumps(options),
                "POSTGRES_DBNAME": (parts.path or "/").lstrip("/") or "postgres",
                "POSTGRES_HOST": parts.hostname or "127.0.0.1",
                "POSTGRES_PORT": str(parts.port or 5432),
                "POSTGRES_USER": unquote(parts.username or "postgres"),
                "POSTGRES_PASSWORD": unquote(parts.password or ""),
                "POSTGRES_CONNECT_TIMEOUT": "10",
                "POSTGRES_LOCK_TIMEOUT": "30",
                "POSTGRES_POOL_SIZE": "4"}
    raise LedgerError(f"ledger URL {redact_url(url)!r} is neither sqlite:///PATH nor"
                      " postgresql://USER@HOST:PORT/DB")


# ---- PostgreSQL: a tenant's schema and libpq options (issue 14) ---------------------------
# The ledger URL keeps libpq's own options (?sslmode=verify-full&sslrootcert=...), passed to
# every connection; `schema` (connector.schema) puts this connector's tables in a schema of
# their own, so several connectors (tenants) can share one database.
LIBPQ_OPTIONS = frozenset({
    "sslmode", "sslrootcert", "sslcert", "sslkey", "sslcrl", "sslpassword",
    "sslcompression", "sslsni", "ssl_min_protocol_version", "ssl_max_protocol_version",
    "channel_binding", "gssencmode", "krbsrvname", "application_name", "options",
    "target_session_attrs", "keepalives", "keepalives_idle", "keepalives_interval",
    "keepalives_count", "tcp_user_timeout", "connect_timeout", "requirepeer", "service"})
LIBPQ_OPTIONS_ENV = "MLC_LIBPQ_OPTIONS"
_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def postgres_options(url: str) -> tuple[str, dict[str, str]]:
    """(schema, libpq options) from a postgresql:// URL's query."""
    schema, options = "", {}
    for key, value in parse_qsl(urlparse(url).query, keep_blank_values=True):
        if key == "schema":
            if not _SCHEMA_NAME.match(value):
                raise LedgerError(f"schema {value!r}: use lower-case letters, digits and _"
                                  " (a PostgreSQL identifier that needs no quoting)")
            schema = value
        elif key in LIBPQ_OPTIONS:
            options[key] = value
        else:
            raise LedgerError(f"ledger URL option {key!r} is not a libpq connection option"
                              f" ml-connector passes on; known: {', '.join(sorted(LIBPQ_OPTIONS))}")
    return schema, options


def connection_url(url: str, password: str = "", schema: str = "") -> str:
    """The ledger URL a connection uses: the configured one, plus the password (kept as the
    secret `ledger.password`, never in the TOML) and the tenant's schema."""
    if not url.startswith(("postgresql://", "postgres://")) or not (password or schema):
        return url
    parts = urlparse(url)
    netloc = parts.netloc
    if password:
        user, _, host = netloc.rpartition("@")
        netloc = f"{user.split(':')[0] or 'postgres'}:{quote(password, safe='')}@{host}"
    query = parts.query + ("&" if parts.query else "") + (f"schema={schema}" if schema else "")
    return parts._replace(netloc=netloc, query=query).geturl()


SCHEMA_LOCK_KEY = 0x6D6C63  # "mlc": serialises CREATE TABLE between processes starting at once


@contextmanager
def schema_lock(env: dict[str, str]) -> Iterator[None]:
    """PostgreSQL's CREATE TABLE IF NOT EXISTS is not safe against itself: two processes
    creating the same tables at the same moment fail with a unique violation on pg_type.
    Hold an advisory lock while the schema is made. SQLite needs nothing."""
    if env.get("PERSISTENCE_MODULE") != POSTGRES_FACTORY_TOPIC:
        yield
        return
    import psycopg

    args = dict(dbname=env["POSTGRES_DBNAME"], host=env["POSTGRES_HOST"],
                port=env["POSTGRES_PORT"], user=env["POSTGRES_USER"],
                password=env["POSTGRES_PASSWORD"] or None,
                connect_timeout=int(env["POSTGRES_CONNECT_TIMEOUT"]))
    with psycopg.connect(**(args | json.loads(env.get(LIBPQ_OPTIONS_ENV) or "{}")),
                         autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (SCHEMA_LOCK_KEY,))
        try:
            if env.get("POSTGRES_SCHEMA"):
                from psycopg.sql import SQL, Identifier

                conn.execute(SQL("CREATE SCHEMA IF NOT EXISTS {}").format(
                    Identifier(env["POSTGRES_SCHEMA"])))
            yield
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (SCHEMA_LOCK_KEY,))


def redact_url(url: str) -> str:
    parts = urlparse(url)
    if parts.password:
        return url.replace(f":{parts.password}@", ":***@")
    return url


# The SQLite recorder stores a UUID as 32 hex digits; str(UUID) has dashes. A rebuild reads
# a million ids of a few hundred thousand streams: each stream's is dashed once, here (a
# UUID per id showed in its profile; dashing in SQL cost half the read).
_DASHED: dict[str, str] = {}
_DASHED_KEPT = 20_000                  # a stream's events sit close together: ~3 MB at most


def _dashed(h: str) -> str:
    if len(_DASHED) >= _DASHED_KEPT:
        _DASHED.clear()
    dashed = _DASHED[h] = (f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
                           if len(h) == 32 else h)
    return dashed


_IDS_PER_QUERY = 500                   # well under SQLite's bound-parameter limit


def recorded(recorder: Any, ids: Iterable[UUID]) -> set[UUID]:
    """Which of these streams have any event (_rows_of_streams: one query per few hundred ids
    on SQLite, one for all on PostgreSQL); any other recorder is asked per id."""
    ids = list(ids)
    rows = _rows_of_streams(
        recorder, ids,
        "SELECT DISTINCT originator_id FROM {table} WHERE originator_id IN ({marks})",
        # One index probe per id (LATERAL ... LIMIT 1): a plain `= ANY(ids)` was planned as
        # a sequential scan of the whole table on a freshly filled one (no statistics yet),
        # so each batch of an ingest read every event recorded before it.
        "SELECT i.id FROM unnest(%s::{id_type}[]) AS i(id), LATERAL (SELECT 1 FROM"
        " {schema}.{table} AS t WHERE t.originator_id = i.id LIMIT 1) AS hit")
    if rows is None:
        return {i for i in ids if recorder.select_events(i, limit=1)}
    return {_stream_id(stream) for stream, in rows}


def notification_rows(recorder: Any, start: int,
                      limit: int) -> list[tuple[int, str, int, str, bytes]]:
    """The notification log from `start` as plain tuples (position, stream id, version,
    topic, stored state). On SQLite it reads the table directly: the library's reader
    builds a UUID and a Notification per row, which costs more than the projections' own
    work on a rebuild. Same rows, same order (rowid is the notification id). On PostgreSQL
    it reads them in binary (_postgres_notification_rows)."""
    from eventsourcing.sqlite import SQLiteApplicationRecorder

    if isinstance(recorder, SQLiteApplicationRecorder):
        with recorder.datastore.transaction(commit=False) as wrapped:
            cursor = wrapped.sqlite_cursor
            cursor.row_factory = None      # plain tuples, not sqlite3.Row
            cursor.execute(f"SELECT rowid, originator_id, originator_version, topic, state"
                           f" FROM {recorder.events_table_name} WHERE rowid >= ?"
                           " ORDER BY rowid LIMIT ?", (start, limit))
            known = _DASHED.get
            return [(position, known(hex_id) or _dashed(hex_id), version, topic, state)
                    for position, hex_id, version, topic, state in cursor.fetchall()]
    if _is_postgres(recorder):
        return _postgres_notification_rows(recorder, start, limit)
    return [(n.id, str(n.originator_id), n.originator_version, n.topic, n.state)
            for n in recorder.select_notifications(start, limit)]


def _postgres_notification_rows(recorder: Any, start: int,
                                limit: int) -> list[tuple[int, str, int, str, bytes]]:
    """The same rows from PostgreSQL as tuples, in binary: the library's reader takes dict
    rows, bytea as hex text and a Notification per row, three times the time of this read
    for a page holding Posted events (17 KB of IFS exchanges each)."""
    from psycopg.sql import SQL, Identifier

    statement = SQL("SELECT notification_id, originator_id::text, originator_version, topic,"
                    " state FROM {schema}.{table} WHERE notification_id >= %s"
                    " ORDER BY notification_id LIMIT %s").format(
        schema=Identifier(recorder.datastore.schema),
        table=Identifier(recorder.events_table_name))
    return _postgres_rows(recorder, statement, (start, limit))


@retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)   # as the library's
def _postgres_rows(recorder: Any, statement: Any, params: tuple[Any, ...]) -> list[tuple]:
    """A read-only query's rows as tuples, in binary (bytea as bytes, not hex text); a lost
    connection is retried as the library's reads are."""
    from psycopg.rows import tuple_row

    with recorder.datastore.get_connection() as conn, \
            conn.transaction(force_rollback=True), \
            conn.cursor(row_factory=tuple_row, binary=True) as cursor:
        cursor.execute(statement, params)
        return cursor.fetchall()


def _is_postgres(recorder: Any) -> bool:
    postgres = sys.modules.get("eventsourcing.postgres")    # loaded if the ledger uses it
    return postgres is not None and isinstance(recorder, postgres.PostgresAggregateRecorder)


def _postgres_ids(recorder: Any, ids: list[UUID]) -> list[Any]:
    """Stream ids as the PostgreSQL table's originator_id column takes them."""
    return [str(i) for i in ids] if recorder.datastore.originator_id_type == "text" else ids


def _rows_of_streams(recorder: Any, ids: list[UUID], sqlite_sql: str,
                     postgres_sql: str) -> list[tuple] | None:
    """Rows of a query on the events table for these streams: on SQLite one query per few
    hundred ids (its bound-parameter limit), `sqlite_sql` with {table} and {marks} (a
    placeholder per id; the recorder stores UUID stream ids as their hex text); on
    PostgreSQL one query for all (they go as one array; each query is a round trip),
    `postgres_sql` with {schema}, {table}, {id_type} and the array parameter. None for a
    recorder of neither kind."""
    from eventsourcing.sqlite import SQLiteAggregateRecorder

    if isinstance(recorder, SQLiteAggregateRecorder):
        rows = []
        for part in iter_chunks(ids, _IDS_PER_QUERY):
            with recorder.datastore.transaction(commit=False) as cursor:
                cursor.execute(sqlite_sql.format(table=recorder.events_table_name,
                                                 marks=",".join("?" * len(part))),
                               [i.hex for i in part])
                rows += [tuple(row) for row in cursor.fetchall()]
        return rows
    if not _is_postgres(recorder):
        return None
    if not ids:
        return []
    from psycopg.sql import SQL, Identifier

    statement = SQL(postgres_sql).format(
        id_type=Identifier(recorder.datastore.originator_id_type),
        schema=Identifier(recorder.datastore.schema),
        table=Identifier(recorder.events_table_name))
    return _postgres_rows(recorder, statement, (_postgres_ids(recorder, ids),))


def _stream_id(value: Any) -> UUID:
    """A stream id as a row gives it (a UUID, or text: SQLite's hex, a text id column)."""
    return value if isinstance(value, UUID) else UUID(str(value))


def last_versions(recorder: Any, ids: list[UUID]) -> dict[UUID, int]:
    """The last version recorded of each of these streams (a stream with no event left out),
    read as _rows_of_streams reads; any other recorder is asked per id."""
    rows = _rows_of_streams(
        recorder, ids,
        "SELECT originator_id, MAX(originator_version) FROM {table}"
        " WHERE originator_id IN ({marks}) GROUP BY originator_id",
        # One index probe per id, newest version first (see recorded on `= ANY`).
        "SELECT i.id, last.version FROM unnest(%s::{id_type}[]) AS i(id), LATERAL"
        " (SELECT originator_version AS version FROM {schema}.{table} AS t"
        " WHERE t.originator_id = i.id ORDER BY originator_version DESC LIMIT 1) AS last")
    if rows is None:
        rows = [(i, events[0].originator_version) for i in ids
                if (events := recorder.select_events(i, desc=True, limit=1))]
    return {_stream_id(stream): int(version) for stream, version in rows}


def stored_events_of(recorder: Any, ids: list[UUID]) -> dict[UUID, list[Any]]:
    """Every stored event of these streams, oldest first per stream, read as
    _rows_of_streams reads (any other recorder is asked per id). The pipeline
    reads a chunk of invoices at once: a query per invoice was a round trip per invoice to
    PostgreSQL."""
    from eventsourcing.persistence import StoredEvent

    rows = _rows_of_streams(
        recorder, ids,
        "SELECT originator_id, originator_version, topic, state FROM {table}"
        " WHERE originator_id IN ({marks}) ORDER BY originator_id, originator_version",
        "SELECT originator_id, originator_version, topic, state FROM {schema}.{table}"
        " WHERE originator_id = ANY(%s) ORDER BY originator_id, originator_version")
    if rows is None:
        return {i: list(recorder.select_events(i)) for i in ids}
    found: dict[UUID, list[Any]] = {}
    for stream, version, topic, state in rows:
        key = _stream_id(stream)
        found.setdefault(key, []).append(StoredEvent(
            originator_id=key, originator_version=version, topic=topic, state=bytes(state)))
    return found


def iter_chunks(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    chunk: list[Any] = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
