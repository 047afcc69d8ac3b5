"""A temporary SQLite file that holds pass-1 records so memory stays bounded.

Pass 1 of every reader streams the export and `add`s each record, keyed by invoice identity
(rows of one invoice may be far apart in the file). Each new key gets the next ordinal, so
`groups()` can hand back the records grouped by key, in first-seen order, straight off an
index: only one group is in memory at a time. The database lives in its own temporary
directory and is deleted by `close()` (also on garbage collection of the TemporaryDirectory).
"""
from __future__ import annotations

import sqlite3
import tempfile
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path

_BATCH = 5000
_RECENT = 4096        # identities remembered in memory; adjacent rows rarely hit SQLite


class Spill:
    def __init__(self) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="ml-connector-stampli-")
        self._db = sqlite3.connect(Path(self._dir.name) / "spill.db", isolation_level=None)
        # A scratch file: no journal, no fsync; a crash just loses the temp file.
        self._db.executescript("""
            PRAGMA journal_mode = OFF;
            PRAGMA synchronous = OFF;
            PRAGMA cache_size = -8192;
            PRAGMA temp_store = FILE;
            CREATE TABLE groups (key BLOB PRIMARY KEY, ord INTEGER NOT NULL) WITHOUT ROWID;
            CREATE TABLE items (seq INTEGER PRIMARY KEY, ord INTEGER NOT NULL, data BLOB);
            BEGIN;
        """)
        self._next = 0
        self._recent: OrderedDict[bytes, int] = OrderedDict()
        self._batch: list[tuple[int, bytes]] = []
        self.count = 0

    def add(self, key: str | None, data: bytes) -> None:
        """Store one record; records with the same key come back together. key=None: alone."""
        self._batch.append((self._ordinal(key), data))
        self.count += 1
        if len(self._batch) >= _BATCH:
            self._flush()

    def groups(self) -> Iterator[list[bytes]]:
        """Every group's records in insertion order, groups in first-seen order."""
        self._flush()
        self._db.execute("COMMIT")
        self._db.execute("CREATE INDEX items_by_group ON items (ord, seq)")
        current: int | None = None
        group: list[bytes] = []
        for ordinal, data in self._db.execute("SELECT ord, data FROM items ORDER BY ord, seq"):
            if ordinal != current and group:
                yield group
                group = []
            current = ordinal
            group.append(data)
        if group:
            yield group

    def close(self) -> None:
        try:
            self._db.close()
        finally:
            self._dir.cleanup()

    def _ordinal(self, key: str | None) -> int:
        if key is None:
            self._next += 1
            return self._next
        raw = key.encode("utf-8", "surrogatepass")
        ordinal = self._recent.get(raw)
        if ordinal is not None:
            self._recent.move_to_end(raw)
            return ordinal
        hit = self._db.execute("SELECT ord FROM groups WHERE key = ?", (raw,)).fetchone()
        if hit:
            ordinal = hit[0]
        else:
            self._next += 1
            ordinal = self._next
            self._db.execute("INSERT INTO groups (key, ord) VALUES (?, ?)", (raw, ordinal))
        self._recent[raw] = ordinal
        if len(self._recent) > _RECENT:
            self._recent.popitem(last=False)
        return ordinal

    def _flush(self) -> None:
        if self._batch:
            self._db.executemany("INSERT INTO items (ord, data) VALUES (?, ?)", self._batch)
            self._batch.clear()
