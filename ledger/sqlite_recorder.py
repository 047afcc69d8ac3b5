"""The library's SQLite application recorder, inserting a save's events with one executemany.

eventsourcing's SQLite recorder runs one INSERT per event to read each row's id back
(`lastrowid`). Intake saves thousands of events per transaction, where that loop measured
about a fifth of the recording time. The write lock is held from the first insert to the
commit and the table's rowid is `max + 1`, so the ids of rows inserted in one statement are
consecutive, ending at `last_insert_rowid()`: the same ids the loop would have read.
Same table, same statement, same errors (a duplicate version raises IntegrityError, nothing
of the save is kept).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

from eventsourcing.persistence import StoredEvent
from eventsourcing.sqlite import SQLiteApplicationRecorder, SQLiteCursor


class BulkSQLiteApplicationRecorder(SQLiteApplicationRecorder):
    def _insert_events(self, c: SQLiteCursor, stored_events: Sequence[StoredEvent],
                       **_: Any) -> Sequence[int] | None:
        if len(stored_events) < 2:
            return super()._insert_events(c, stored_events)
        c.executemany(self.insert_events_statement, [
            (s.originator_id.hex if isinstance(s.originator_id, UUID) else s.originator_id,
             s.originator_version, s.topic, s.state) for s in stored_events])
        c.execute("SELECT last_insert_rowid()")
        last = c.fetchone()[0]
        return list(range(last - len(stored_events) + 1, last + 1))


TOPIC = f"{__name__}:{BulkSQLiteApplicationRecorder.__name__}"
