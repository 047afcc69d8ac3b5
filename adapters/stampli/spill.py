"""A temporary folder that holds pass-1 records so memory stays bounded.

Pass 1 of every reader streams the export and `add`s each record (any msgpack-able value),
keyed by invoice identity (rows of one invoice may be far apart in the file). Each new key
gets the next ordinal, so `groups()` can hand back the records grouped by key, in first-seen
order: only one group is in memory at a time. The database lives in its own temporary
directory and is deleted by `close()` (also on garbage collection of the TemporaryDirectory).

Consecutive records with the same key (an invoice's rows are usually adjacent) are stored as
one item, so a typical invoice costs one item and one identity lookup, not one per line. Items
are appended to a plain file (items.bin: length, group ordinal, msgpack), which costs a third
of SQLite rows holding the same bytes; the identities live in memory up to KEYS_IN_MEMORY,
then all in SQLite (groups), so that memory stays bounded on any file. When every
key's records were adjacent, the items are already in group order and pass 2 reads the file
straight through; otherwise seal() indexes the items by group once, in SQLite.

A watcher (`on_flush`) hears of every batch written to items.bin, so pass 2 may start reading
it while pass 1 still writes (worker.py): `read_groups(..., until=...)` waits at the end of
what is there until pass 1 says how long the file ends up.
"""
from __future__ import annotations

import sqlite3
import struct
import tempfile
from collections.abc import Callable, Iterator
from contextlib import closing
from itertools import chain
from pathlib import Path
from typing import Any, TypeVar

import msgspec

_BATCH = 5000         # stored rows per executemany
_BATCH_BYTES = 4 << 20  # ... or fewer, when the encoded rows add up to this much
_RECENT = 4096        # identities remembered in memory (then forgotten all at once); adjacent
                      # rows rarely hit SQLite
KEYS_IN_MEMORY = 200_000  # identities known without SQLite (~20 MB), then all moved there:
                      # inserting each into SQLite cost a seventh of pass 1
RUN = 256             # records of one key stored together at most (bounds one blob)

T = TypeVar("T")
Y = TypeVar("Y")

_encode = msgspec.msgpack.Encoder().encode
_decode = msgspec.msgpack.Decoder().decode
_HEAD = struct.Struct("<IQ")   # an item in items.bin: data length, group ordinal; then data


class Spill:
    def __init__(self, on_flush: Callable[[Spill], None] | None = None) -> None:
        self.on_flush = on_flush       # called after each batch of items reaches the file
        self._dir = tempfile.TemporaryDirectory(prefix="ml-connector-stampli-")
        self._db = sqlite3.connect(self.path, isolation_level=None)
        # A scratch file: no journal, no fsync; a crash just loses the temp file.
        self._db.executescript("""
            PRAGMA journal_mode = OFF;
            PRAGMA synchronous = OFF;
            PRAGMA cache_size = -8192;
            PRAGMA temp_store = FILE;
            CREATE TABLE groups (key BLOB PRIMARY KEY, ord INTEGER NOT NULL) WITHOUT ROWID;
            BEGIN;
        """)
        self._items = open(items_path(self.path), "wb")  # noqa: SIM115 - closed in seal/close
        self._next = 0
        self._recent: dict[bytes, int] = {}
        self._known: dict[bytes, int] | None = {}       # every identity, until there are many
        self._batch: list[tuple[int, bytes]] = []
        self._new_keys: list[tuple[bytes, int]] = []    # ordinals given since the last flush
        self._batch_bytes = 0
        self._run_key: str | None = None
        self._run: list[Any] = []
        self._last = 0                 # highest ordinal stored so far
        self._in_order = True          # every stored row's ordinal >= the one before it
        self._sealed = False
        self.count = 0
        self.written = 0               # bytes of items.bin written so far

    def add(self, key: str | None, record: Any) -> None:
        """Store one record; records with the same key come back together. key=None: alone."""
        self.count += 1
        if key is None:
            self._end_run()
            self._next += 1
            self._store(self._next, [record])
            return
        if key != self._run_key or len(self._run) >= RUN:
            self._end_run()
            self._run_key = key
        self._run.append(record)

    def add_run(self, key: str, records: list[Any]) -> None:
        """add(key, record) for each of records (adjacent rows of one key), in one call; the
        caller keeps runs to about RUN records."""
        self.count += len(records)
        if key != self._run_key:
            self._end_run()
            self._run_key = key
        self._run += records
        if len(self._run) >= RUN:
            self._end_run()

    def groups(self) -> Iterator[list[Any]]:
        """Every group's records in insertion order, groups in first-seen order."""
        return read_groups(*self.seal())

    def seal(self) -> tuple[Path, bool]:
        """End pass 1: everything stored and committed, so another connection (pass 2 in a
        worker process) can read the groups. Returns (database file, in_order) for
        read_groups."""
        if not self._sealed:
            self._end_run()
            self._flush()
            self._items.close()
            if not self._in_order:
                self._index()
            self._db.execute("COMMIT")
            self._sealed = True
        return self.path, self._in_order

    @property
    def in_order(self) -> bool:
        """So far, every key's records were adjacent (items.bin is in group order)."""
        return self._in_order

    @property
    def path(self) -> Path:
        return Path(self._dir.name) / "spill.db"

    def close(self) -> None:
        try:
            self._items.close()
            self._db.close()
        finally:
            self._dir.cleanup()

    def _end_run(self) -> None:
        if self._run:
            assert self._run_key is not None
            self._store(self._ordinal(self._run_key), self._run)
            self._run = []
        self._run_key = None

    def _store(self, ordinal: int, records: list[Any]) -> None:
        if ordinal < self._last:
            self._in_order = False
        self._last = max(self._last, ordinal)
        data = _encode(records)
        self._batch.append((ordinal, data))
        self._batch_bytes += len(data)
        if len(self._batch) >= _BATCH or self._batch_bytes >= _BATCH_BYTES:
            self._flush()

    def _ordinal(self, key: str) -> int:
        raw = key.encode("utf-8", "surrogatepass")
        known = self._known
        if known is not None:          # every identity so far is here: no SQLite
            ordinal = known.get(raw)
            if ordinal is None:
                self._next += 1
                ordinal = known[raw] = self._next
                if len(known) >= KEYS_IN_MEMORY:   # from now on, SQLite keeps them
                    self._new_keys = list(known.items())
                    self._known = None
            return ordinal
        ordinal = self._recent.get(raw)
        if ordinal is not None:
            return ordinal
        # Assume the key is new (nearly always true) and check the whole batch in _flush,
        # with one statement instead of one or two per key.
        self._next += 1
        ordinal = self._next
        self._new_keys.append((raw, ordinal))
        if len(self._recent) >= _RECENT:
            self._recent.clear()       # cheaper than an LRU; a miss only costs a re-check
        self._recent[raw] = ordinal
        return ordinal

    def _flush(self) -> None:
        if self._new_keys:
            inserted = self._db.executemany(
                "INSERT OR IGNORE INTO groups (key, ord) VALUES (?, ?)", self._new_keys).rowcount
            if inserted != len(self._new_keys):
                self._reassign()
            self._new_keys.clear()
        if self._batch:
            pack = _HEAD.pack      # piece by piece: a joined copy would double the memory
            self._items.writelines(chain.from_iterable((pack(len(data), ordinal), data)
                                                       for ordinal, data in self._batch))
            self.written += _HEAD.size * len(self._batch) + self._batch_bytes
            self._batch.clear()
            self._batch_bytes = 0
            if self.on_flush is not None:
                self._items.flush()    # whole items only, for a reader of the growing file
                self.on_flush(self)

    def _index(self) -> None:
        """Some key's records are far apart: where each item is, by group, for read_groups."""
        self._db.execute("CREATE TABLE items (seq INTEGER PRIMARY KEY, ord INTEGER NOT NULL, "
                         "pos INTEGER NOT NULL)")
        batch: list[tuple[int, int]] = []
        for ordinal, pos, _data in _items(items_path(self.path)):
            batch.append((ordinal, pos))
            if len(batch) >= _BATCH:
                self._db.executemany("INSERT INTO items (ord, pos) VALUES (?, ?)", batch)
                batch.clear()
        self._db.executemany("INSERT INTO items (ord, pos) VALUES (?, ?)", batch)
        self._db.execute("CREATE INDEX items_by_group ON items (ord, seq)")

    def _reassign(self) -> None:
        """Some keys of the batch were seen before (long ago, or earlier in the batch): their
        rows, all still in the batch, take the ordinal the key got first."""
        first_of: dict[bytes, int] = {}
        for start in range(0, len(self._new_keys), 500):
            keys = [raw for raw, _ in self._new_keys[start:start + 500]]
            first_of.update(self._db.execute(
                f"SELECT key, ord FROM groups WHERE key IN ({','.join('?' * len(keys))})", keys))
        moved: dict[int, int] = {}
        for raw, ordinal in self._new_keys:
            first = first_of[raw]
            if first != ordinal:
                moved[ordinal] = first
                if self._recent.get(raw) == ordinal:
                    self._recent[raw] = first
        if moved:
            self._in_order = False
            self._batch[:] = [(moved.get(ordinal, ordinal), data)
                              for ordinal, data in self._batch]


class SpillError(Exception):
    """The spill file is not what pass 1 wrote (a bug or a full disk, not the export)."""


def items_path(db_path: Path) -> Path:
    return Path(db_path).with_name("items.bin")


def _items(path: Path, until: Callable[[], int | None] | None = None
           ) -> Iterator[tuple[int, int, bytes]]:
    """(group ordinal, position, data) of every item of items.bin, in file order. With
    `until`, the file may still be growing: at the end of what is there, until() waits a
    moment and returns the size the file ends up with once pass 1 is over, else None."""
    head, unpack = _HEAD.size, _HEAD.unpack
    final: int | None = None
    with open(path, "rb") as items:
        pos = 0
        while True:
            raw = items.read(head)
            if len(raw) == head:
                size, ordinal = unpack(raw)
                data = items.read(size)
                if len(data) == size:
                    yield ordinal, pos, data
                    pos += head + size
                    continue
            if until is None or pos == final:
                return
            if final is not None:
                raise SpillError(f"the spill ends at byte {pos}, not {final}")
            final = until()
            items.seek(pos)            # a half-written item is read again, whole


def _items_by_group(db_path: Path) -> Iterator[tuple[int, int, bytes]]:
    """The same items ordered by group (then by when they were stored): seal()'s index."""
    head, unpack = _HEAD.size, _HEAD.unpack
    with closing(sqlite3.connect(Path(db_path).as_uri() + "?mode=ro", uri=True)) as db, \
            open(items_path(db_path), "rb") as items:
        for ordinal, pos in db.execute("SELECT ord, pos FROM items ORDER BY ord, seq"):
            items.seek(pos)
            size, _ = unpack(items.read(head))
            yield ordinal, pos, items.read(size)


def read_groups(db_path: Path, in_order: bool, until: Callable[[], int | None] | None = None,
                wanted: Callable[[int], bool] | None = None) -> Iterator[list[Any]]:
    """The records of a sealed spill (seal() gives db_path and in_order) grouped by key,
    groups in first-seen order. `until`: the spill is still being written in order; see
    _items. `wanted(n)`: whether to read the n-th group (from 0); the others are skipped
    undecoded (a pass-2 worker takes every other batch)."""
    current: int | None = None
    group: list[Any] = []
    index, keep = -1, True
    with closing(_items(items_path(db_path), until) if in_order
                 else _items_by_group(db_path)) as items:
        for ordinal, _pos, data in items:
            if ordinal != current:
                if group:
                    yield group
                    group = []
                current, index = ordinal, index + 1
                keep = wanted is None or wanted(index)
            if keep:
                group.extend(_decode(data))
    if group:
        yield group


def two_pass(pass_1: Callable[[Spill], T],
             pass_2: Callable[[T, Iterator[list[Any]]], Iterator[Y]]) -> Iterator[Y]:
    """Every reader's skeleton. Pass 1, `pass_1(spill)`, reads the whole file into a new spill
    (a file that cannot be read raises there, before anything is yielded) and returns what
    pass 2 needs; pass 2, `pass_2(that, groups)`, yields one item per group, groups in
    first-seen order. The groups and the spill are closed however the caller stops."""
    spill = Spill()
    try:
        found = pass_1(spill)
        with closing(spill.groups()) as groups:
            yield from pass_2(found, groups)
    finally:
        spill.close()
