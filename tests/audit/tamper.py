"""Raw SQL on the eventsourcing events table, behind the ledger's back: what an attacker (or
a careless administrator) with database access can do. SQLite keeps the notification id in
`stored_events.rowid`; PostgreSQL in `ml_connector_events.notification_id`."""
from __future__ import annotations

import sqlite3
from typing import Any
from urllib.parse import urlparse


class Tamper:
    def __init__(self, url: str) -> None:
        if url.startswith("sqlite:///"):
            self.conn: Any = sqlite3.connect(url[len("sqlite:///"):], isolation_level=None)
            self.table, self.id, self.mark = "stored_events", "rowid", "?"
        else:
            import psycopg

            parts = urlparse(url)
            self.conn = psycopg.connect(host=parts.hostname, port=parts.port,
                                        user=parts.username, dbname=parts.path.lstrip("/"),
                                        autocommit=True)
            self.table, self.id, self.mark = "ml_connector_events", "notification_id", "%s"

    def sql(self, statement: str, *params: Any) -> list[tuple]:
        cur = self.conn.execute(statement.format(t=self.table, id=self.id, m=self.mark), params)
        return list(cur.fetchall()) if cur.description else []

    def rows(self) -> list[tuple]:
        """(position, originator_id, originator_version, topic, state) in position order."""
        return [(int(p), o, int(v), t, bytes(s)) for p, o, v, t, s in self.sql(
            "SELECT {id}, originator_id, originator_version, topic, state FROM {t}"
            " ORDER BY {id}")]

    def state(self, position: int) -> bytes:
        return bytes(self.sql("SELECT state FROM {t} WHERE {id} = {m}", position)[0][0])

    def set_state(self, position: int, state: bytes) -> None:
        self.sql("UPDATE {t} SET state = {m} WHERE {id} = {m}", state, position)

    def flip_byte(self, position: int) -> None:
        state = bytearray(self.state(position))
        state[len(state) // 2] ^= 0x01
        self.set_state(position, bytes(state))

    def delete(self, position: int) -> None:
        self.sql("DELETE FROM {t} WHERE {id} = {m}", position)

    def raw_row(self, position: int) -> tuple:
        return tuple(self.sql("SELECT {id}, originator_id, originator_version, topic, state"
                              " FROM {t} WHERE {id} = {m}", position)[0])

    def insert(self, row: tuple) -> None:
        """Put back a row as `raw_row` returned it (with its notification id)."""
        self.sql("INSERT INTO {t} ({id}, originator_id, originator_version, topic, state)"
                 " VALUES ({m}, {m}, {m}, {m}, {m})", *row)

    def append(self, stream_of: int, version: int, topic: str, state: bytes) -> int:
        """A new row at the end of the log (the next notification id), in the stream of the
        event at position `stream_of`; returns its position."""
        stream = self.sql("SELECT originator_id FROM {t} WHERE {id} = {m}", stream_of)[0][0]
        self.sql("INSERT INTO {t} (originator_id, originator_version, topic, state)"
                 " VALUES ({m}, {m}, {m}, {m})", stream, version, topic, state)
        return int(self.sql("SELECT MAX({id}) FROM {t}")[0][0])

    def find(self, topic_suffix: str, version: int | None = None) -> list[tuple]:
        """Rows whose topic ends with `topic_suffix` (and at `version`), in position order."""
        return [row for row in self.rows() if row[3].endswith(topic_suffix)
                and (version is None or row[2] == version)]

    def truncate_after(self, position: int) -> None:
        self.sql("DELETE FROM {t} WHERE {id} > {m}", position)

    def swap_states(self, a: int, b: int) -> None:
        state_a, state_b = self.state(a), self.state(b)
        self.set_state(a, state_b)
        self.set_state(b, state_a)

    def swap_ids(self, a: int, b: int) -> None:
        # Through a free id: both columns are unique.
        self.sql("UPDATE {t} SET {id} = -1 WHERE {id} = {m}", a)
        self.sql("UPDATE {t} SET {id} = {m} WHERE {id} = {m}", a, b)
        self.sql("UPDATE {t} SET {id} = {m} WHERE {id} = -1", b)

    def close(self) -> None:
        self.conn.close()
