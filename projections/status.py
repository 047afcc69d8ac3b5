"""Current status: one row per invoice (operations.md §3), folded by the same `transition`
the Invoice aggregate uses."""
from __future__ import annotations

from typing import Any

from ledger.status import COLUMNS, empty_row, transition
from projections.base import LedgerEvent, Projection, select_in
from projections.store import Cursor

TABLE = "mlc_invoice_status"
_INT_COLUMNS = {"attempts", "version"}


class StatusProjection(Projection):
    name = "status"
    topic_prefix = "ml_connector.invoice."
    tables = (TABLE,)
    ddl = (
        f"CREATE TABLE IF NOT EXISTS {TABLE} ("
        + ", ".join(f"{c} {'INTEGER' if c in _INT_COLUMNS else 'TEXT'}"
                    + (" PRIMARY KEY" if c == "id" else "") for c in COLUMNS) + ")",
        f"CREATE INDEX IF NOT EXISTS {TABLE}_state ON {TABLE} (state, next_retry_at)",
    )

    def apply(self, cur: Cursor, events: list[LedgerEvent]) -> None:
        ids = list(dict.fromkeys(e.stream_id for e in events))
        rows = {r[0]: dict(zip(COLUMNS, r)) for r in select_in(
            cur, f"SELECT {', '.join(COLUMNS)} FROM {TABLE} WHERE id IN", ids)}
        for event in events:
            row = rows.get(event.stream_id) or empty_row(event.stream_id)
            rows[event.stream_id] = transition(row, event.type, event.data, event.version,
                                               event.recorded_at)
        updates = ", ".join(f"{c} = excluded.{c}" for c in COLUMNS if c != "id")
        cur.executemany(
            f"INSERT INTO {TABLE} ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"
            f" ON CONFLICT (id) DO UPDATE SET {updates}",
            [tuple(row[c] for c in COLUMNS) for row in rows.values()
             if row["id"] in ids])


def read_status(cur: Cursor, state: str | None = None) -> list[dict[str, Any]]:
    sql = f"SELECT {', '.join(COLUMNS)} FROM {TABLE}"
    params: list[Any] = []
    if state:
        sql += " WHERE state = ?"
        params.append(state)
    sql += " ORDER BY updated_at, id"
    return [dict(zip(COLUMNS, r)) for r in cur.execute(sql, params).fetchall()]
