"""Keeps projections current by following the ledger's notification log from a tracked
position (the SQLite recorder cannot subscribe, so this polls; it works the same on
PostgreSQL). Each page of events and the new position are written in one transaction, so a
view never runs ahead of or behind its position, and several processes can share it."""
from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import ledger.files  # noqa: F401  (registers the explicit topics)
import ledger.invoice  # noqa: F401
import ledger.notices  # noqa: F401
import ledger.vendor  # noqa: F401
from ledger.app import Ledger
from ledger.codec import current_version, decode_state, event_type, upcast
from ledger.gcpause import gc_paused
from ledger.persistence import SCHEMA_LOCK_KEY
from projections.audit import AuditChainProjection
from projections.base import POSITIONS, LedgerEvent, Projection
from projections.files import (FileDetailsProjection, FilesProjection, PollRunsProjection,
                               VendorsProjection)
from projections.notices import PendingNoticesProjection
from projections.status import StatusProjection
from projections.store import Cursor, ViewStore, open_view_store

SCHEMA_VERSIONS = "mlc_projection_schema"       # name -> the schema_version its tables hold
log = logging.getLogger("ml_connector.projections")
# Replaying the whole log: pages of the catch-up's size, several per transaction. A view row
# keyed by a random UUID sits on a random page: the fewer commits, the fewer times each page
# is written (10 pages measured ~5% more CPU than 25; 50 no better within the noise, and it
# holds the file's write lock, which the ledger's writers share, twice as long).
REBUILD_PAGE = 2000
REBUILD_PAGES_PER_TRANSACTION = 25
DECODE_CHUNK = 250
Progress = Callable[[int, int], None]


def default_projections() -> list[Projection]:
    return [StatusProjection(), FilesProjection(), VendorsProjection(), PollRunsProjection(),
            FileDetailsProjection(), AuditChainProjection(), PendingNoticesProjection()]


Decode = Callable[[bytes], dict[str, Any]]
Reading = tuple[Decode, str, int]         # a topic's decoder, event type, current class version


class Decoders(dict[str, Reading]):
    """topic -> how its states are read for these projections: decoded with the one
    reader's own decoder (Projection.decoder: only the fields it reads) when a single
    projection reads the topic, else in whole, as each of several readers may read any of
    it; with the topic's event type and class version, looked up once."""

    def __init__(self, projections: Sequence[Projection]) -> None:
        super().__init__()
        self.projections = projections

    def __missing__(self, topic: str) -> Reading:
        readers = [p for p in self.projections if _may_read(p, topic)]
        own = readers[0].decoder(topic) if len(readers) == 1 else None
        version = current_version(topic)
        if own is None or version > 1:    # an upcaster may read any field
            own = decode_state
        reading = (own, event_type(topic), version)
        if len(self) < 1000:              # a few dozen topics; a tampered table cannot grow it
            self[topic] = reading
        return reading


def _may_read(projection: Projection, topic: str) -> bool:
    if type(projection).wants is Projection.wants:
        return topic.startswith(projection.topic_prefix)
    return True                           # its own `wants` looks at more than the topic


_IN_WHOLE = Decoders(())


def decode_notifications(notifications: Sequence,
                         decoders: Decoders = _IN_WHOLE) -> list[LedgerEvent]:
    """Notifications (the library's objects, or Ledger.notification_rows tuples) as events,
    each state decoded once for all the projections (see Decoders; by default in whole).
    The hot loop of a rebuild: the per-topic facts are looked up once, an event whose stored
    class version is current is not handed to the upcaster, the tuple is built directly."""
    events: list[LedgerEvent] = []
    append, make = events.append, tuple.__new__
    for n in notifications:
        position, stream_id, version, topic, state = (
            n if isinstance(n, tuple) else
            (n.id, str(n.originator_id), n.originator_version, n.topic, n.state))
        decode, kind, current = decoders[topic]
        try:
            data = decode(state)
        except ValueError:                # not the shape a decoder declared: in whole, as before
            data = decode_state(state)
        if current > 1 or "class_version" in data:
            data = upcast(topic, data)
        append(make(LedgerEvent, (position, stream_id, version, topic, kind, data,
                                  data.get("timestamp", ""), state)))
    return events


def decoded_chunks(rows: Sequence, decoders: Decoders = _IN_WHOLE
                   ) -> Iterator[list[LedgerEvent]]:
    """Ledger.notification_rows decoded a few hundred at a time, each folded before the next
    is decoded: the decoded dicts of a whole 2000-row page no longer fit the CPU's caches
    (decode + status fold measured 4.9 us per event in pages of 2000, 2.6 in chunks of 250)."""
    for start in range(0, len(rows), DECODE_CHUNK):
        yield decode_notifications(rows[start:start + DECODE_CHUNK], decoders)


def _wanted(projection: Projection, events: list[LedgerEvent], after: int) -> list[LedgerEvent]:
    """The events past the projection's position that it reads (a million times over in a
    rebuild: the usual case, a prefix and a page wholly past the position, goes quickly)."""
    if events[0].position > after and type(projection).wants is Projection.wants:
        prefix = projection.topic_prefix
        return [e for e in events if e.topic.startswith(prefix)] if prefix else events
    wants = projection.wants
    return [e for e in events if e.position > after and wants(e)]


class Projector:
    def __init__(self, ledger: Ledger, store: ViewStore | None = None,
                 projections: list[Projection] | None = None, page_size: int = 2000) -> None:
        self.ledger = ledger
        self.store = store or open_view_store(ledger.url)
        self.projections = projections if projections is not None else default_projections()
        self.page_size = page_size
        self._tables_ready = False
        self._written: dict[str, int] = {}   # the position this process last committed
        self._decoders: dict[tuple[str, ...], Decoders] = {}   # by the projections reading

    def ensure_tables(self) -> None:
        if self._tables_ready:
            return
        with self.store.transaction() as cur:
            if self.store.dialect == "postgres":   # see ledger.persistence.schema_lock
                cur.execute("SELECT pg_advisory_xact_lock(?)", (SCHEMA_LOCK_KEY,))
            cur.execute(f"CREATE TABLE IF NOT EXISTS {POSITIONS} (name TEXT PRIMARY KEY,"
                        " position BIGINT NOT NULL)")
            stale = self._stale_schemas(cur)
            for projection in self.projections:
                if projection.name in stale:
                    projection.drop(cur)
                projection.create(cur)
                cur.execute(f"INSERT INTO {POSITIONS} (name, position) VALUES (?, 0)"
                            " ON CONFLICT (name) DO NOTHING", (projection.name,))
                if projection.name in stale:
                    cur.execute(f"UPDATE {POSITIONS} SET position = 0 WHERE name = ?",
                                (projection.name,))
                cur.execute(f"INSERT INTO {SCHEMA_VERSIONS} (name, version) VALUES (?, ?)"
                            " ON CONFLICT (name) DO UPDATE SET version = excluded.version",
                            (projection.name, projection.schema_version))
        self._tables_ready = True

    def _stale_schemas(self, cur: Cursor) -> set[str]:
        """Read models whose tables a different projection version wrote: dropped here and
        refilled from the ledger by the next catch_up. Tables from before versions were kept
        are version 1. The audit chain is evidence and never re-derived; it is reported."""
        cur.execute(f"CREATE TABLE IF NOT EXISTS {SCHEMA_VERSIONS} (name TEXT PRIMARY KEY,"
                    " version INTEGER NOT NULL)")
        held = dict(cur.execute(f"SELECT name, version FROM {SCHEMA_VERSIONS}").fetchall())
        existing = {name for (name,) in cur.execute(f"SELECT name FROM {POSITIONS}").fetchall()}
        stale = set()
        for projection in self.projections:
            if projection.name not in existing:
                continue                      # new: created below at the current version
            was = int(held.get(projection.name, 1))
            if was == projection.schema_version:
                continue
            if not projection.rebuildable:
                log.warning("read model %s has schema version %d, this connector expects %d;"
                            " it is evidence and is not rebuilt automatically",
                            projection.name, was, projection.schema_version,
                            extra={"event": "projection_schema_mismatch"})
                continue
            stale.add(projection.name)
            log.warning("read model %s: schema version %d -> %d; rebuilding it from the ledger",
                        projection.name, was, projection.schema_version,
                        extra={"event": "projection_rebuilt", "projection": projection.name,
                               "from_version": was, "to_version": projection.schema_version})
        return stale

    def _lock_positions(self, cur: Cursor) -> dict[str, int]:
        lock = " FOR UPDATE" if self.store.dialect == "postgres" else ""
        names = [p.name for p in self.projections]
        rows = cur.execute(f"SELECT name, position FROM {POSITIONS} WHERE name IN"
                           f" ({','.join('?' * len(names))}){lock}", names).fetchall()
        return {name: int(position) for name, position in rows}

    def positions(self) -> dict[str, int]:
        self.ensure_tables()
        with self.store.transaction() as cur:
            return self._lock_positions(cur)

    @gc_paused()
    def catch_up(self, progress: Progress | None = None, page_size: int | None = None,
                 pages_per_transaction: int = 1) -> int:
        """Apply every event not yet applied. Returns how many notifications were read."""
        self.ensure_tables()
        page_size = page_size or self.page_size
        total = self.ledger.recorder.max_notification_id() or 0
        applied = 0
        while True:
            try:
                done = self._catch_up_pages(total, progress, page_size, pages_per_transaction)
            except BaseException:
                self._forget_all()
                raise
            if not done:
                return applied
            applied += done
            if min(self._written.values(), default=0) >= total:
                return applied        # no need to ask for an empty page (a transaction more)

    def _forget_all(self) -> None:
        self._written = {}
        for projection in self.projections:
            projection.forget()

    def _catch_up_pages(self, total: int, progress: Progress | None, page_size: int,
                        pages: int) -> int:
        """Up to `pages` pages of events applied and the new position recorded, in one
        transaction. Pages are decoded and applied a chunk at a time (decoded_chunks): the
        decoded events are dropped before the next chunk (a small working set is what keeps
        the decode fast), while the projections write what they hold once, before the commit."""
        read, last = 0, 0
        with self.store.transaction() as cur:
            positions = self._lock_positions(cur)
            for projection in self.projections:
                if self._written.get(projection.name) != positions[projection.name]:
                    projection.forget()       # another process wrote the view meanwhile
            start = min(positions.values(), default=0)
            for _ in range(pages):
                page = self.ledger.notification_rows(start + 1, page_size)
                if not page:
                    break
                decoders = self._decoders_for(positions, page[-1][0])
                for events in decoded_chunks(page, decoders):
                    for projection in self.projections:
                        mine = _wanted(projection, events, positions[projection.name])
                        if mine:
                            projection.apply(cur, mine)
                start = last = page[-1][0]
                read += len(page)
                del page
            if not read:
                return 0
            names = [projection.name for projection in self.projections]
            for projection in self.projections:
                projection.flush(cur)
            cur.execute(f"UPDATE {POSITIONS} SET position = ? WHERE name IN"
                        f" ({','.join('?' * len(names))})", (last, *names))
        self._written = {projection.name: last for projection in self.projections}
        if progress:
            progress(last, max(total, last))
        return read

    def _decoders_for(self, positions: dict[str, int], last: int) -> Decoders:
        """Decoders for the projections that read some of a page ending at `last`: one at
        or past it reads none of the page, so it does not make a topic shared."""
        reading = [p for p in self.projections if positions[p.name] < last]
        key = tuple(p.name for p in reading)
        decoders = self._decoders.get(key)
        if decoders is None:
            decoders = self._decoders[key] = Decoders(reading)
        return decoders

    def rebuild(self, from_position: int | None = None, progress: Progress | None = None,
                include_evidence: bool = False) -> int:
        """Drop and rebuild every read model from the start, or re-apply from a position
        onto the current views (the fold is per-field overwrite, so the result is the same).
        The audit chain is evidence: a full rebuild leaves it alone (re-deriving it would
        accept earlier tampering) unless `include_evidence`, for a chain whose tables were
        lost; from a position it skips what it already chained."""
        self.ensure_tables()
        self._forget_all()
        with self.store.transaction() as cur:
            positions = self._lock_positions(cur)
            for projection in self.projections:
                if from_position is None and not (projection.rebuildable or include_evidence):
                    continue
                if from_position is None:
                    projection.drop(cur)
                    projection.create(cur, indexes=False)     # built once, below
                    new = 0
                else:
                    new = min(positions[projection.name], max(0, from_position - 1))
                cur.execute(f"UPDATE {POSITIONS} SET position = ? WHERE name = ?",
                            (new, projection.name))
        applied = self.catch_up(progress, page_size=REBUILD_PAGE,
                                pages_per_transaction=REBUILD_PAGES_PER_TRANSACTION)
        # An interrupted rebuild leaves them to the next start's ensure_tables.
        with self.store.transaction() as cur:
            for projection in self.projections:
                projection.create(cur)
        return applied
