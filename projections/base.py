"""What a projection is: tables, and a function that folds a page of events into them.

Events reach projections as `LedgerEvent`s decoded straight from the stored bytes (no domain
objects built), upcast to the current class version, so rebuilding a million events is fast.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from projections.store import Cursor

POSITIONS = "mlc_projection_position"   # each projection's position, kept by the runner


class LedgerEvent(NamedTuple):
    position: int                      # notification id: the global order
    stream_id: str
    version: int
    topic: str
    type: str                          # the event class name: Posted, Failed, ...
    data: dict[str, Any]
    recorded_at: str
    raw: bytes                         # the stored state, byte for byte (for the audit chain)


class Projection:
    name = ""
    topic_prefix = ""                  # which events it reads; "" = all
    tables: Sequence[str] = ()         # table names it owns (dropped on rebuild)
    ddl: Sequence[str] = ()            # CREATE statements, dialect-neutral
    rebuildable = True                 # False for evidence (the audit chain): never re-derived
    # Bumped whenever the tables or the fold change: a read model written by another version
    # is dropped and rebuilt from the ledger when a projector starts (runner.ensure_tables).
    schema_version = 1

    def wants(self, event: LedgerEvent) -> bool:
        return event.topic.startswith(self.topic_prefix)

    def decoder(self, topic: str) -> Callable[[bytes], dict[str, Any]] | None:
        """How to decode a stored state of this topic into just the fields `apply` reads (a
        dict with fewer keys, e.g. a msgspec decoder of a TypedDict), or None for the whole
        state. The runner uses it only while this projection alone reads the topic, and
        only for a topic at class version 1 (an upcaster may read any field); it falls back
        to the whole state when the decoder raises ValueError."""
        return None

    def create(self, cur: Cursor, indexes: bool = True) -> None:
        """The tables; `indexes=False` leaves out the plain (non-unique) indexes, which a
        rebuild from nothing builds once at its end instead of keeping them up to date
        through every write (they are lookups only: no ON CONFLICT depends on them)."""
        for statement in self.ddl:
            if indexes or not statement.startswith("CREATE INDEX"):
                cur.execute(statement)

    def drop(self, cur: Cursor) -> None:
        for table in self.tables:
            cur.execute(f"DROP TABLE IF EXISTS {table}")

    def apply(self, cur: Cursor, events: list[LedgerEvent]) -> None:  # pragma: no cover
        raise NotImplementedError

    def flush(self, cur: Cursor) -> None:
        """Write what `apply` held back; the runner calls it once per transaction, before
        recording the position (several pages may be applied in between)."""

    def forget(self) -> None:
        """Drop anything held in memory: the tables changed under this process, or the
        transaction was rolled back."""


def select_in(cur: Cursor, sql_prefix: str, keys: Sequence[Any], chunk: int = 500) -> list[tuple]:
    """`SELECT ... WHERE key IN (...)` in chunks that stay under parameter limits."""
    rows: list[tuple] = []
    for start in range(0, len(keys), chunk):
        part = keys[start:start + chunk]
        marks = ",".join("?" * len(part))
        rows.extend(cur.execute(f"{sql_prefix} ({marks})", part).fetchall())
    return rows
