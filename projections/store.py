"""Where projections live: tables beside the ledger (the same SQLite file, or the same
PostgreSQL database), reached through one small interface so the projection code is the
same on both. SQL is written with `?` placeholders; PostgreSQL gets `%s`."""
from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any
from urllib.parse import unquote, urlparse

from ledger.sqlite_store import wal_checkpoint_pages


class ViewStore:
    dialect = ""

    def transaction(self) -> Any:  # pragma: no cover - interface
        raise NotImplementedError

    def close(self) -> None:  # pragma: no cover - interface
        raise NotImplementedError


class Cursor:
    """The few cursor calls projections make, with placeholder translation."""

    def __init__(self, raw: Any, translate: bool) -> None:
        self.raw, self.translate = raw, translate

    def _sql(self, sql: str) -> str:
        return sql.replace("?", "%s") if self.translate else sql

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Cursor:
        self.raw.execute(self._sql(sql), tuple(params))
        return self

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            self.raw.executemany(self._sql(sql), rows)

    def upsert(self, table: str, columns: Sequence[str], types: Sequence[str],
               rows: Sequence[Sequence[Any]]) -> None:
        """Rows written over any with the same first column (the table's key; unique within
        `rows`). PostgreSQL gets them in one statement, a column per array, in binary:
        executemany's statement per row (25,000 for a 5,000-invoice backfill) cost twice the
        client's CPU for the same rows; the same arrays in text cost the server twice the
        time to parse them."""
        if not rows:
            return
        update = ", ".join(f"{c} = excluded.{c}" for c in columns[1:])
        names = ", ".join(columns)
        if not self.translate:
            self.raw.executemany(
                f"INSERT INTO {table} ({names}) VALUES ({', '.join('?' * len(columns))})"
                f" ON CONFLICT ({columns[0]}) DO UPDATE SET {update}", rows)
            return
        arrays = ", ".join(f"%b::{t}[]" for t in types)
        self.raw.execute(f"INSERT INTO {table} ({names}) SELECT * FROM unnest({arrays})"
                         f" ON CONFLICT ({columns[0]}) DO UPDATE SET {update}",
                         [list(column) for column in zip(*rows)])

    def fetchall(self) -> list[tuple[Any, ...]]:
        return list(self.raw.fetchall())

    def fetchone(self) -> tuple[Any, ...] | None:
        return self.raw.fetchone()

    @property
    def columns(self) -> list[str]:
        return [d[0] for d in self.raw.description]


class SqliteViewStore(ViewStore):
    dialect = "sqlite"

    def __init__(self, path: str) -> None:
        self.path = path
        self._local = threading.local()

    def _connection(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None,
                                   check_same_thread=False)
            if self.path != ":memory:":
                conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            # Same reason as the ledger's (ledger/sqlite_store.py): upserts keyed by random
            # UUIDs dirty pages all over the index; checkpointing each page's commit cost 7%.
            conn.execute(f"PRAGMA wal_autocheckpoint={wal_checkpoint_pages(conn)}")
            self._local.conn = conn
        return conn

    @contextmanager
    def transaction(self) -> Iterator[Cursor]:
        conn = self._connection()
        cursor = conn.cursor()
        # IMMEDIATE takes the write lock up front: two processes catching up the same view
        # queue here instead of both reading an old position.
        cursor.execute("BEGIN IMMEDIATE")
        try:
            yield Cursor(cursor, translate=False)
        except BaseException:
            conn.rollback()
            raise
        conn.commit()

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None


class PostgresViewStore(ViewStore):
    dialect = "postgres"

    def __init__(self, url: str) -> None:
        import psycopg

        from ledger.persistence import postgres_options

        parts = urlparse(url)
        self.schema, options = postgres_options(url)
        self._connect_args = dict(
            dbname=(parts.path or "/").lstrip("/") or "postgres",
            host=parts.hostname or "127.0.0.1", port=parts.port or 5432,
            user=unquote(parts.username or "postgres"),
            password=unquote(parts.password or "") or None, connect_timeout=10) | options
        self._psycopg = psycopg
        self._local = threading.local()

    def _connection(self) -> Any:
        conn = getattr(self._local, "conn", None)
        if conn is None or conn.closed:
            conn = self._psycopg.connect(**self._connect_args)
            if self.schema:          # the tenant's schema: its read models beside its events
                from psycopg.sql import SQL, Identifier

                conn.execute(SQL("SET search_path TO {}").format(Identifier(self.schema)))
                conn.commit()
            self._local.conn = conn
        return conn

    @contextmanager
    def transaction(self) -> Iterator[Cursor]:
        conn = self._connection()
        with conn.transaction():
            with conn.cursor() as cursor:
                yield Cursor(cursor, translate=True)

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None


def open_view_store(ledger_url: str) -> ViewStore:
    if ledger_url.startswith("sqlite:///"):
        return SqliteViewStore(ledger_url[len("sqlite:///"):])
    return PostgresViewStore(ledger_url)
