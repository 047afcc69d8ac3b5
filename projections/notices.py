"""Notifications whose last send failed somewhere: what the next cycle of any process tries
again (a one-off `sync` after a failed send included), read from the ledger's Notice events."""
from __future__ import annotations

import orjson

from projections.base import LedgerEvent, Projection
from projections.store import Cursor

TABLE = "mlc_notices_pending"
_TEST = "test"


class PendingNoticesProjection(Projection):
    name = "notices"
    topic_prefix = "ml_connector.notice."
    tables = (TABLE,)
    ddl = (f"CREATE TABLE IF NOT EXISTS {TABLE} (id TEXT PRIMARY KEY, destinations TEXT,"
           " updated_at TEXT)",)

    def apply(self, cur: Cursor, events: list[LedgerEvent]) -> None:
        for e in events:
            if e.type == "Composed" and e.data.get("kind") == "test":
                # `notify test` reports its own result and is never retried: a marker row
                cur.execute(f"INSERT INTO {TABLE} (id, destinations, updated_at) VALUES"
                            f" (?, '{_TEST}', ?) ON CONFLICT (id) DO NOTHING",
                            (e.stream_id, e.recorded_at))
            elif e.type == "SendFailed":
                failed = [f["destination"] for f in e.data["failed"]]
                cur.execute(f"INSERT INTO {TABLE} (id, destinations, updated_at)"
                            " VALUES (?, ?, ?) ON CONFLICT (id) DO UPDATE SET"
                            " destinations = excluded.destinations,"
                            f" updated_at = excluded.updated_at WHERE {TABLE}.destinations"
                            f" <> '{_TEST}'",
                            (e.stream_id, orjson.dumps(failed).decode(), e.recorded_at))
            elif e.type == "Sent":
                cur.execute(f"DELETE FROM {TABLE} WHERE id = ?", (e.stream_id,))


def read_pending(cur: Cursor, limit: int = 100) -> list[tuple[str, list[str]]]:
    """(notice id, destinations that failed), oldest first."""
    rows = cur.execute(f"SELECT id, destinations FROM {TABLE} WHERE destinations <> '{_TEST}'"
                       f" ORDER BY updated_at LIMIT {int(limit)}").fetchall()
    return [(row[0], orjson.loads(row[1])) for row in rows]
