"""Verifying the audit chain (encoding: projections/audit.py): recompute every link from the
stored events and compare with a digest kept outside the system and with the projection's
checkpoints, naming the first position where they part and why. Given the audit keys, it also
checks every event's MAC (projections/audit_macs.py) and that the chain's tables were not
dropped since the ledger recorded the chain covering it (ledger/audit_trail.py).

Nothing the projection stored is trusted for the verdict against a digest: the links are
recomputed from link_0. Checkpoints are used to localise: per-event fingerprints name the
event that changed, moved or vanished; after a checkpoint mismatch the per-segment link
continues from both the stored and the recomputed link, so a later, separate break is found
too instead of every following checkpoint failing in a cascade.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

from ledger.audit_trail import CHAIN_STARTED_TOPIC
from projections.audit import (CHAIN_ID, ZERO_LINK, Segment, fingerprint, header,
                               iter_segments, load_head, next_link)
from projections.audit_macs import MacCheck, MacPolicy, chain_started
from projections.store import ViewStore, open_view_store

MAX_PROBLEMS = 100
Progress = Callable[[int, int], None]


@dataclass
class Problem:
    position: int
    # changed | out_of_order | missing | inserted | truncated | checkpoint | digest
    # MACs: unsigned | forged | unknown_key | sealed; chain_lost (its tables dropped)
    kind: str
    message: str


@dataclass
class VerifyResult:
    ok: bool                       # digest holds (if given) and no checkpoint disagrees
    checked: int                   # events read and rehashed
    last_position: int             # the ledger's last position (0: empty)
    hash: str                      # recomputed link at last_position, hex
    reference: str                 # what it was compared with: digest, checkpoints, both, none
    digest_ok: bool | None         # None: no digest given
    checkpoints_checked: int
    first_break: int | None
    reason: str                    # the first break, in words ("" when ok)
    problems: list[Problem] = field(default_factory=list)    # at most MAX_PROBLEMS
    problem_count: int = 0
    seconds: float = 0.0
    macs_checked: int | None = None        # None: no audit keys given

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_digest(digest: dict[str, Any]) -> tuple[int, str, int | None]:
    """(position, hash, events) from a digest document, or ValueError saying what is wrong."""
    if not isinstance(digest, dict):
        raise ValueError("a digest is a JSON object with position and hash")
    if digest.get("chain", CHAIN_ID) != CHAIN_ID:
        raise ValueError(f"digest is for chain {digest.get('chain')!r}, this is {CHAIN_ID}")
    try:
        position, hash_hex = int(digest["position"]), str(digest["hash"]).lower()
        events = None if digest.get("events") is None else int(digest["events"])
        bytes.fromhex(hash_hex)
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"not a digest (needs position and a hex hash): {exc}") from None
    if position < 0 or len(hash_hex) != 64:
        raise ValueError("digest position must be >= 0 and hash 64 hex characters")
    return position, hash_hex, events


class _Run:
    """The state of one verification pass; `feed` takes events in position order."""

    def __init__(self, segments: Iterator[Segment],
                 digest: tuple[int, str, int | None] | None,
                 macs: MacPolicy | None = None, head_position: int | None = None) -> None:
        self.segments = segments
        # Neighbouring segments too: an event moved across a checkpoint is still recognised.
        self.previous: Segment | None = None
        self.segment = next(segments, None)
        self.upcoming = next(segments, None)
        self.has_checkpoints = self.segment is not None
        self.index = 0                          # next expected position in self.segment
        self.segment_problems = 0
        self.link = ZERO_LINK                   # pure recomputation from link_0
        # After a checkpoint mismatch, the segment's links restart from both candidates: the
        # stored link (if events before it changed) and the recomputed one (if the checkpoint
        # row itself was changed). None: the same as the pure link, nothing extra to hash.
        self.bases: list[bytes] | None = None
        self.last = 0
        self.count = 0
        self.checkpoints = 0
        self.truncated = False
        self.gaps: list[int] = []               # hints when no checkpoint covers a region
        self.problems: list[Problem] = []
        self.problem_count = 0
        self.digest = digest
        self.digest_ok: bool | None = None
        self.macs = MacCheck(macs, self.event_problem) if macs else None
        self.head_position = head_position
        self.chain_started: int | None = None

    def problem(self, position: int, kind: str, message: str) -> None:
        self.segment_problems += 1
        self.event_problem(position, kind, message)

    def event_problem(self, position: int, kind: str, message: str) -> None:
        """A problem that says nothing about the chain's segments (a MAC)."""
        self.problem_count += 1
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(Problem(position, kind, message))

    def feed(self, n: Any) -> None:
        p = n.id
        while self.segment is not None and p > self.segment.position:
            self.close_segment(end_of_ledger=False)
        if self.digest is not None and self.digest_ok is None and p > self.digest[0]:
            self.close_digest(end_of_ledger=False)
        if self.segment is None and p != self.last + 1 and len(self.gaps) < MAX_PROBLEMS:
            self.gaps.extend(range(self.last + 1, min(p, self.last + 1 + MAX_PROBLEMS)))
        if self.macs is not None:
            self.macs.feed(n, self.link)
        if n.topic == CHAIN_STARTED_TOPIC:
            self.chain_started = chain_started(n)
        head = header(p, n.originator_id, n.originator_version, n.topic)
        self.link = next_link(self.link, head, n.state)
        if self.bases is not None:
            self.bases = [next_link(base, head, n.state) for base in self.bases]
        if self.segment is not None:
            self.compare_event(p, fingerprint(head, n.state))
        self.last, self.count = p, self.count + 1

    def compare_event(self, p: int, actual: str) -> None:
        segment, i = self.segment, self.index
        assert segment is not None
        while i < len(segment.positions) and segment.positions[i] < p:
            self.missing(segment.positions[i])
            i += 1
        if i < len(segment.positions) and segment.positions[i] == p:
            if segment.leaves[i] != actual:
                self.changed(p, segment.leaves[i], actual)
            i += 1
        else:
            self.problem(p, "inserted", f"event at position {p} was not in the ledger when"
                         f" the chain recorded position {segment.position} (inserted)")
        self.index = i

    def missing(self, p: int) -> None:
        self.problem(p, "missing", f"position {p} is missing (gap): the chain recorded an"
                     " event there")

    def changed(self, p: int, expected: str, actual: str) -> None:
        segment = self.segment
        assert segment is not None
        if self.problem_count >= MAX_PROBLEMS:     # mass damage: count it, skip the searches
            self.problem(p, "changed", "")
            return
        half = len(actual) // 2
        nearby = [(q, leaf) for s in (self.previous, segment, self.upcoming) if s is not None
                  for q, leaf in zip(s.positions, s.leaves) if q != p]
        moved = next((q for q, leaf in nearby if leaf == actual), None)
        if moved is not None:
            self.problem(p, "out_of_order", f"event at position {p} is the one the chain"
                         f" recorded at position {moved} (events out of order)")
            return
        state_from = next((q for q, leaf in nearby if leaf[half:] == actual[half:]), None)
        if actual[:half] == expected[:half] and state_from is not None:
            self.problem(p, "out_of_order", f"event at position {p} holds the state the chain"
                         f" recorded at position {state_from} (events out of order)")
        elif actual[:half] == expected[:half]:
            self.problem(p, "changed", f"event at position {p} differs from checkpoint"
                         f" {segment.position}: its stored state changed")
        else:
            self.problem(p, "changed", f"event at position {p} differs from checkpoint"
                         f" {segment.position}: its stream, version or topic changed")

    def close_segment(self, end_of_ledger: bool) -> None:
        segment = self.segment
        assert segment is not None
        rest = segment.positions[self.index:]
        if rest and end_of_ledger:
            if not self.truncated:
                self.truncated = True
                recorded = max([rest[-1]] + [s.position for s in (self.upcoming, *self.segments)
                                             if s is not None])
                self.upcoming = None
                self.problem(rest[0], "truncated", f"ledger ends at {self.last} but the"
                             f" checkpoints record events up to {recorded} (truncated)")
        else:
            for p in rest:
                self.missing(p)
        links = [b.hex() for b in self.bases] if self.bases is not None else [self.link.hex()]
        if segment.link_hex in links:
            matched = bytes.fromhex(segment.link_hex)
            self.bases = None if matched == self.link else [matched]
        else:
            if not self.segment_problems:
                what = "head" if segment.is_head else "checkpoint"
                self.problem(segment.position, "checkpoint", f"chain at position"
                             f" {segment.position} differs from the {what} recorded at"
                             f" {segment.recorded_at} though every event matches its"
                             " fingerprint (the checkpoint table was changed)")
            # Two candidates at most: the chain so far trusted, and the stored link.
            self.bases = [bytes.fromhex(segment.link_hex), bytes.fromhex(links[0])]
        self.checkpoints += 1
        self.segment_problems = 0
        self.previous, self.segment, self.index = segment, self.upcoming, 0
        self.upcoming = next(self.segments, None) if self.segment is not None else None

    def close_digest(self, end_of_ledger: bool) -> None:
        assert self.digest is not None
        position, hash_hex, events = self.digest
        # Events after the digest's position mean the ledger was not cut short there, even
        # if the event at exactly that position is gone: that is a change, found below.
        if self.last < position and end_of_ledger:
            self.digest_ok = False
            self.problem(self.last + 1, "truncated", f"ledger ends at {self.last} but the"
                         f" digest says {position} (truncated)")
            return
        self.digest_ok = self.link.hex() == hash_hex
        if self.digest_ok:
            return
        if events is not None and events != self.count:
            what = "missing" if self.count < events else "more"
            detail = (f"{abs(events - self.count)} event(s) {what} at or before position"
                      f" {position} (the digest counted {events}, the ledger has {self.count})")
        else:
            detail = (f"the chain at position {position} differs from the digest: an event at"
                      " or before it changed, or the digest belongs to another ledger")
        self.problem(position, "digest", detail)
        for gap in self.gaps:               # no checkpoint localised it: the gaps are hints
            if gap <= position:
                self.missing(gap)

    def finish(self) -> None:
        # The digest first: on a tie (a truncation) its wording is the one reported.
        if self.digest is not None and self.digest_ok is None:
            self.close_digest(end_of_ledger=True)
        while self.segment is not None:
            self.close_segment(end_of_ledger=True)
        if self.macs is not None:
            self.macs.finish(self.last, self.link)
        started = self.chain_started
        if started is not None and (self.head_position is None or self.head_position < started):
            where = ("are gone" if self.head_position is None
                     else f"end at position {self.head_position}")
            self.event_problem(started, "chain_lost", f"the audit chain's tables {where}, but"
                               f" the ledger records the chain covering position {started}:"
                               " they were dropped or emptied")


def verify(ledger: Any, digest: dict[str, Any] | None = None, progress: Progress | None = None,
           *, store: ViewStore | None = None, page_size: int = 5000,
           macs: MacPolicy | None = None) -> VerifyResult:
    """Recompute the chain from the stored events and compare it with `digest` (if given) and
    the audit projection's checkpoints (if it exists); with `macs`, check every event's MAC.
    Read-only; pages of `page_size`."""
    started = time.monotonic()
    expected = check_digest(digest) if digest is not None else None
    own = store is None
    store = store or open_view_store(ledger.url)
    try:
        head = load_head(store)
        run = _Run(iter_segments(store), expected, macs,
                   head.position if head is not None else None)
        total = ledger.recorder.max_notification_id() or 0
        for page in _pages(ledger, page_size):
            for n in page:
                run.feed(n)
            if progress:
                progress(run.last, max(total, run.last))
        run.finish()
        if run.macs is not None and run.macs.forged:
            origins = run.macs.trace(n for page in _pages(ledger, page_size) for n in page)
            run.problems = [p if p.position not in origins or p.kind != "forged" else
                            Problem(p.position, p.kind, f"{p.message}; {origins[p.position]}")
                            for p in run.problems]
    finally:
        if own:
            store.close()
    result = _result(run, digest is not None, time.monotonic() - started)
    result.macs_checked = run.macs.checked if run.macs is not None else None
    return result


def _pages(ledger: Any, page_size: int) -> Iterator[list[Any]]:
    start = 1
    while True:
        page = ledger.recorder.select_notifications(start, page_size)
        if not page:
            return
        yield page
        start = page[-1].id + 1


def _result(run: _Run, with_digest: bool, seconds: float) -> VerifyResult:
    first = min(run.problems, key=lambda p: p.position, default=None)
    reference = {(True, True): "digest+checkpoints", (True, False): "digest",
                 (False, True): "checkpoints", (False, False): "none"}[
        (with_digest, run.has_checkpoints)]
    return VerifyResult(ok=run.problem_count == 0 and run.digest_ok is not False,
                        checked=run.count, last_position=run.last, hash=run.link.hex(),
                        reference=reference, digest_ok=run.digest_ok,
                        checkpoints_checked=run.checkpoints,
                        first_break=first.position if first else None,
                        reason=first.message if first else "", problems=run.problems,
                        problem_count=run.problem_count, seconds=round(seconds, 3))
