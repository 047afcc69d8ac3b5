"""A tamper-evident ledger: a SHA-256 hash chain over every stored event, kept as a projection.

The chain ("mlc-audit-v1")
--------------------------
Events are taken in notification order (the global position: SQLite `stored_events.rowid`,
PostgreSQL `ml_connector_events.notification_id`), every topic included. With

    header_n = position        as 8 bytes, unsigned big-endian
             + originator_id   as the 16 raw bytes of the UUID (uuid.UUID(x).bytes)
             + originator_version as 8 bytes, unsigned big-endian
             + len(topic)      as 4 bytes, unsigned big-endian, then the topic in UTF-8

    link_0 = 32 zero bytes
    link_n = SHA-256(link_{n-1} + header_n + state_n)      (state_n: the stored bytes as is)

the chain's value at position P is the link after the last event whose position is <= P.
An auditor can recompute it with nothing but the database and these lines:

    link = bytes(32)
    for pos, oid, ver, topic, state in rows:      # ORDER BY position
        t = topic.encode()
        head = pos.to_bytes(8, "big") + uuid.UUID(str(oid)).bytes + ver.to_bytes(8, "big")
        link = hashlib.sha256(link + head + len(t).to_bytes(4, "big") + t + state).digest()

A digest (`current_digest`, projections/audit_digest.py) is {"chain", "position", "hash",
"events", "time"}: the link at `position` in hex, and how many events the chain had covered.
Kept outside the system, it proves later that nothing at or before `position` changed; appending events never breaks it.

The projection's tables only help to localise a break and to make a digest cheap; they are
never trusted by `verify` (projections/audit_verify.py), which recomputes from the events:
- mlc_audit_checkpoint: every `checkpoint_every` events, the link, the cumulative count, the
  positions covered (ranges "1-17,19-40": PostgreSQL sequences can legitimately skip values)
  and a fingerprint per event: SHA-256(header without position)[:4] + SHA-256(state)[:4], in
  hex. Fingerprints leave out the position so a moved event can be recognised elsewhere.
- mlc_audit_head: one row, the running link and the same for the still-open segment, so the
  chain continues page by page across catch-ups and processes.
Rebuilding the projection from scratch adopts whatever the events now say: a digest kept
elsewhere, and the events' MACs (ledger/signing.py, checked by `audit verify`), protect against
an attacker who rewrites events and then rebuilds; `projections rebuild --include-audit-chain`
is refused while verify fails unless forced, and then recorded (evidence.py).
"""
from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any, NamedTuple

from ledger.codec import topic_bytes
from ledger.errors import LedgerError
from projections.base import POSITIONS, LedgerEvent, Projection
from projections.store import Cursor, ViewStore

CHAIN_ID = "mlc-audit-v1"
CHECKPOINTS = "mlc_audit_checkpoint"
HEAD = "mlc_audit_head"
ZERO_LINK = bytes(32)
DEFAULT_CHECKPOINT_EVERY = 1000
FINGERPRINT_HEX = 16                   # hex characters per event in `leaves`

_SEGMENT_COLUMNS = "position, link_hex, events, recorded_at, positions, leaves"


class AuditChainError(LedgerError):
    """The projection cannot continue its chain; the message says what to do (a LedgerError:
    `sync` and the daemon report it as such, without a traceback)."""


# ---------------------------------------------------------------------- encoding


def header(position: int, originator_id: uuid.UUID | str, version: int, topic: str) -> bytes:
    """The canonical bytes of (position, originator_id, originator_version, topic)."""
    oid = (originator_id if isinstance(originator_id, uuid.UUID)
           else uuid.UUID(originator_id)).bytes
    return b"".join((position.to_bytes(8, "big"), oid, version.to_bytes(8, "big"),
                     topic_bytes(topic)))


def next_link(link: bytes, head: bytes, state: bytes) -> bytes:
    h = hashlib.sha256(link)
    h.update(head)
    h.update(state)
    return h.digest()


def fingerprint(head: bytes, state: bytes) -> str:
    """Per-event fingerprint for localisation only; head[8:] drops the position."""
    return (hashlib.sha256(head[8:]).digest()[:4] + hashlib.sha256(state).digest()[:4]).hex()


def encode_ranges(positions: list[int]) -> str:
    """Ascending positions as "1-17,19,21-40" (a segment is nearly always one range)."""
    parts: list[str] = []
    i = 0
    while i < len(positions):
        j = i
        while j + 1 < len(positions) and positions[j + 1] == positions[j] + 1:
            j += 1
        parts.append(str(positions[i]) if i == j else f"{positions[i]}-{positions[j]}")
        i = j + 1
    return ",".join(parts)


def decode_ranges(text: str) -> list[int]:
    out: list[int] = []
    for part in filter(None, text.split(",")):
        first, _, last = part.partition("-")
        out.extend(range(int(first), int(last or first) + 1))
    return out


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


# ---------------------------------------------------------------------- stored segments

class Segment(NamedTuple):
    """A checkpoint (or the head): the link at `position`, the cumulative event count, and
    the positions and fingerprints of the events since the previous checkpoint."""
    position: int
    link_hex: str
    events: int
    recorded_at: str
    positions: list[int]
    leaves: list[str]
    is_head: bool = False


def _segment(row: tuple, is_head: bool = False) -> Segment:
    position, link_hex, events, recorded_at, positions, leaves = row
    cut = [leaves[i:i + FINGERPRINT_HEX] for i in range(0, len(leaves), FINGERPRINT_HEX)]
    return Segment(int(position), link_hex, int(events), recorded_at,
                   decode_ranges(positions), cut, is_head)


def table_exists(store: ViewStore, cur: Cursor, table: str) -> bool:
    if store.dialect == "postgres":
        return cur.execute("SELECT to_regclass(?)", (table,)).fetchone()[0] is not None
    return cur.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
                       (table,)).fetchone() is not None


def read_head(cur: Cursor) -> Segment | None:
    row = cur.execute(f"SELECT {_SEGMENT_COLUMNS} FROM {HEAD} WHERE id = 1").fetchone()
    return _segment(row, is_head=True) if row else None


def load_head(store: ViewStore) -> Segment | None:
    """The head, or None when the projection has never run here."""
    with store.transaction() as cur:
        if not table_exists(store, cur, HEAD):
            return None
        return read_head(cur)


def iter_segments(store: ViewStore, batch: int = 50) -> Iterator[Segment]:
    """Sealed checkpoints in order, then the head (its open part only), read a few at a time
    in short transactions (the SQLite store's transactions take the write lock). The head is
    read first, so checkpoints sealed by a concurrent catch-up meanwhile still line up."""
    head = load_head(store)
    if head is None:
        return
    last = 0
    while True:
        with store.transaction() as cur:
            rows = cur.execute(f"SELECT {_SEGMENT_COLUMNS} FROM {CHECKPOINTS} WHERE position > ?"
                               f" AND position <= ? ORDER BY position LIMIT {int(batch)}",
                               (last, head.position)).fetchall()
        for row in rows:
            segment = _segment(row)
            last = segment.position
            yield segment
        if len(rows) < batch:
            break
    keep = [i for i, p in enumerate(head.positions) if p > last]
    yield head._replace(positions=[head.positions[i] for i in keep],
                        leaves=[head.leaves[i] for i in keep])


# ---------------------------------------------------------------------- the projection

class AuditChainProjection(Projection):
    rebuildable = False
    name = "audit_chain"
    topic_prefix = ""                                   # every event is chained
    tables = (CHECKPOINTS, HEAD)
    ddl = (
        f"CREATE TABLE IF NOT EXISTS {CHECKPOINTS} (position BIGINT PRIMARY KEY,"
        " link_hex TEXT NOT NULL, events BIGINT NOT NULL, recorded_at TEXT NOT NULL,"
        " positions TEXT NOT NULL, leaves TEXT NOT NULL)",
        f"CREATE TABLE IF NOT EXISTS {HEAD} (id INTEGER PRIMARY KEY, position BIGINT NOT NULL,"
        " link_hex TEXT NOT NULL, events BIGINT NOT NULL, recorded_at TEXT NOT NULL,"
        " positions TEXT NOT NULL, leaves TEXT NOT NULL)",
    )

    def __init__(self, checkpoint_every: int = DEFAULT_CHECKPOINT_EVERY) -> None:
        if checkpoint_every < 1:
            raise ValueError("checkpoint_every must be at least 1")
        self.checkpoint_every = checkpoint_every

    def apply(self, cur: Cursor, events: list[LedgerEvent]) -> None:
        head = read_head(cur)
        if head is None:
            self._refuse_lost_head(cur)
        link = bytes.fromhex(head.link_hex) if head else ZERO_LINK
        position, count = (head.position, head.events) if head else (0, 0)
        positions = head.positions if head else []
        leaves = head.leaves if head else []
        stamp = now_iso()
        sealed: list[tuple[Any, ...]] = []
        for event in events:
            # Rebuild-from-a-position re-applies events this chain already holds: folding
            # them in twice would fork the chain, so anything at or before the head is skipped.
            if event.position <= position:
                continue
            head_bytes = header(event.position, event.stream_id, event.version, event.topic)
            link = next_link(link, head_bytes, event.raw)
            position, count = event.position, count + 1
            positions.append(position)
            leaves.append(fingerprint(head_bytes, event.raw))
            if len(positions) >= self.checkpoint_every:
                sealed.append((position, link.hex(), count, stamp, encode_ranges(positions),
                               "".join(leaves)))
                positions, leaves = [], []
        cur.executemany(f"INSERT INTO {CHECKPOINTS} ({_SEGMENT_COLUMNS})"
                        " VALUES (?, ?, ?, ?, ?, ?)", sealed)
        cur.execute(f"INSERT INTO {HEAD} (id, {_SEGMENT_COLUMNS}) VALUES (1, ?, ?, ?, ?, ?, ?)"
                    " ON CONFLICT (id) DO UPDATE SET position = excluded.position,"
                    " link_hex = excluded.link_hex, events = excluded.events,"
                    " recorded_at = excluded.recorded_at, positions = excluded.positions,"
                    " leaves = excluded.leaves",
                    (position, link.hex(), count, stamp, encode_ranges(positions),
                     "".join(leaves)))


    def _refuse_lost_head(self, cur: Cursor) -> None:
        """Without its head the chain would restart from link_0 part-way through the ledger
        and every digest would fail: if the projector has been here before, stop instead."""
        row = cur.execute(f"SELECT position FROM {POSITIONS} WHERE name = ?",
                          (self.name,)).fetchone()
        if row and int(row[0]) > 0:
            raise AuditChainError(
                f"the audit chain's tables were emptied but the projector had chained up to"
                f" position {row[0]}: check the ledger (`ml-connector audit verify --digest"
                f" KEPT_DIGEST`), then rebuild the audit_chain projection from the start"
                f" (`ml-connector projections rebuild --include-audit-chain --force --reason"
                f" TEXT`)")


# ---------------------------------------------------------------------- digests

def recompute(ledger: Any, upto: int | None = None,
              page_size: int = 5000) -> tuple[int, bytes, int]:
    """(position, link, events) straight from the stored events, up to `upto` if given."""
    link, position, count = ZERO_LINK, 0, 0
    start = 1
    while True:
        page = ledger.recorder.select_notifications(start, page_size, stop=upto)
        if not page:
            return position, link, count
        for n in page:
            link = next_link(link, header(n.id, n.originator_id, n.originator_version,
                                          n.topic), n.state)
        position, count, start = page[-1].id, count + len(page), page[-1].id + 1
