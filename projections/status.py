"""Current status: one row per invoice (operations.md §3), folded by the same `transition`
the Invoice aggregate uses (in place: `ledger.status.fold`)."""
from __future__ import annotations

import operator
from collections.abc import Callable
from functools import lru_cache
from typing import Any

import msgspec

from ledger.codec import event_type
from ledger.status import COLUMNS, empty_row, fold, fold_reads
from projections.base import LedgerEvent, Projection, select_in
from projections.store import Cursor

TABLE = "mlc_invoice_status"
_TYPES = tuple("INTEGER" if c in ("attempts", "version") else "TEXT" for c in COLUMNS)


class StatusProjection(Projection):
    name = "status"
    schema_version = 2                 # 2: the Skipped event (go-live cutover) sets a state
    topic_prefix = "ml_connector.invoice."
    tables = (TABLE,)
    ddl = (
        f"CREATE TABLE IF NOT EXISTS {TABLE} ("
        + ", ".join(f"{c} {t}" + (" PRIMARY KEY" if c == "id" else "")
                    for c, t in zip(COLUMNS, _TYPES)) + ")",
        f"CREATE INDEX IF NOT EXISTS {TABLE}_state ON {TABLE} (state, next_retry_at)",
        # the workspace: exceptions oldest first per state, and a file's invoices
        f"CREATE INDEX IF NOT EXISTS {TABLE}_state_age ON {TABLE} (state, updated_at)",
        f"CREATE INDEX IF NOT EXISTS {TABLE}_file ON {TABLE} (file_name)",
    )

    # Rows recently written, so that the next pages need not read them back (an invoice's
    # events sit close together in the log). Valid only while this process is the one writing
    # the view: the runner calls forget() whenever the position moved under it.
    CACHE_ROWS = 100_000

    def __init__(self) -> None:
        self._rows: dict[str, dict[str, Any]] = {}
        self._dirty: set[str] = set()      # applied, not yet written: flush() writes them

    def forget(self) -> None:
        self._rows, self._dirty = {}, set()

    def decoder(self, topic: str) -> Callable[[bytes], dict[str, Any]] | None:
        """Only what the fold reads (ledger.status.FOLD_READS): decoding every state in
        whole (a Parsed event's invoice lines and all) was a fifth of a rebuild."""
        return _decoder(event_type(topic))

    def apply(self, cur: Cursor, events: list[LedgerEvent]) -> None:
        rows = self._rows
        ids = dict.fromkeys(e.stream_id for e in events)
        # A stream's first event (version 1) starts its row: nothing to read back. Were the
        # row there (a rebuild re-applying from a position), folding the whole stream again
        # from that first event gives the same row.
        fresh = {e.stream_id for e in events if e.version == 1}
        missing = [i for i in ids if i not in rows and i not in fresh]
        rows.update((r[0], dict(zip(COLUMNS, r))) for r in select_in(
            cur, f"SELECT {', '.join(COLUMNS)} FROM {TABLE} WHERE id IN", missing))
        get = rows.get
        for _, stream_id, version, _, kind, data, recorded_at, _ in events:
            row = get(stream_id)
            if row is None:
                row = rows[stream_id] = empty_row(stream_id)
            fold(row, kind, data, version, recorded_at)     # the rows are this cache's own
        self._dirty.update(ids)

    def flush(self, cur: Cursor) -> None:
        """Each row touched since the last flush, written once."""
        rows = self._rows
        cur.upsert(TABLE, COLUMNS, _TYPES, [_as_tuple(rows[i]) for i in sorted(self._dirty)])
        self._dirty = set()
        if len(rows) > self.CACHE_ROWS:
            rows.clear()


@lru_cache(maxsize=256)             # one per event type
def _decoder(kind: str) -> Callable[[bytes], dict[str, Any]]:
    return msgspec.json.Decoder(fold_reads(kind)).decode


_as_tuple = operator.itemgetter(*COLUMNS)


def read_status(cur: Cursor, state: str | None = None) -> list[dict[str, Any]]:
    sql = f"SELECT {', '.join(COLUMNS)} FROM {TABLE}"
    params: list[Any] = []
    if state:
        sql += " WHERE state = ?"
        params.append(state)
    sql += " ORDER BY updated_at, id"
    return [dict(zip(COLUMNS, r)) for r in cur.execute(sql, params).fetchall()]


def count_states(cur: Cursor) -> dict[str, int]:
    return {state: int(n) for state, n in
            cur.execute(f"SELECT state, COUNT(*) FROM {TABLE} GROUP BY state").fetchall()}
