"""The work queue the pipeline reads: which invoices wait for which stage, which files were
already taken, which vendors changed. Every read catches the views up first."""
from __future__ import annotations

from typing import Any

from ledger.status import COLUMNS, FRESH_STATES, State
from projections.base import select_in
from projections.files import FILES, VENDORS
from projections.runner import Projector
from projections.status import TABLE



class ProjectionQueue:
    def __init__(self, projector: Projector) -> None:
        self.projector = projector

    def _rows(self, where: str, params: list[Any], limit: int) -> list[dict[str, Any]]:
        self.projector.catch_up()
        with self.projector.store.transaction() as cur:
            rows = cur.execute(f"SELECT {', '.join(COLUMNS)} FROM {TABLE} WHERE {where}"
                               " ORDER BY updated_at, id LIMIT ?", [*params, limit]).fetchall()
        return [dict(zip(COLUMNS, r)) for r in rows]

    def ready(self, stage: str, now: str, limit: int) -> list[dict[str, Any]]:
        # fresh states per FRESH_STATES; retry_scheduled rows carry their failed stage
        states = FRESH_STATES[stage]
        marks = ",".join("?" * len(states))
        return self._rows(f"state IN ({marks}) OR (state = ? AND stage = ?"
                          " AND next_retry_at <= ?)",
                          [*states, State.RETRY_SCHEDULED, stage, now], limit)

    def parked(self, kind: str, limit: int,
               after: tuple[str, str] | None = None) -> list[dict[str, Any]]:
        """Parked invoices in (updated_at, id) order; `after` the last row of the page before
        (a parked invoice that is still stuck records nothing, so it never moves back)."""
        if after is None:
            return self._rows("state = ? AND failure_kind = ?", [State.FAILED, kind], limit)
        return self._rows("state = ? AND failure_kind = ? AND (updated_at > ? OR"
                          " (updated_at = ? AND id > ?))",
                          [State.FAILED, kind, after[0], after[0], after[1]], limit)

    def taken_files(self, files: list[tuple[str, int, float]]) -> set[str]:
        """Which of these (name, size, mtime) were already taken: one catch-up, one query."""
        self.projector.catch_up()
        wanted = set(files)
        names = list({name for name, _, _ in files})
        with self.projector.store.transaction() as cur:
            rows = select_in(cur, f"SELECT name, size, mtime FROM {FILES} WHERE outcome <> ''"
                             " AND name IN", names)
        return {name for name, size, mtime in rows if (name, size, mtime) in wanted}

    def rejected_files(self) -> list[str]:
        """Ledger ids of the export files last rejected, or reopened and not read to the end
        yet, oldest first."""
        return self._first_column(f"SELECT id FROM {FILES} WHERE outcome IN ('rejected',"
                                  " 'reopened') ORDER BY recorded_at, id")

    def vendors_to_sync(self) -> list[str]:
        return self._first_column(f"SELECT vendor_id FROM {VENDORS} WHERE needs_sync = 1"
                                  " ORDER BY vendor_id")

    def _first_column(self, sql: str) -> list[Any]:
        self.projector.catch_up()
        with self.projector.store.transaction() as cur:
            return [r[0] for r in cur.execute(sql).fetchall()]
