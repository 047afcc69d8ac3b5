"""Notifications to people: what is worth telling (new exceptions after a cycle, system
trouble K cycles in a row and its recovery, a stalled connector, the daily digest), and a
record of every message sent or not.

Each message is its own stream (uuid5 of its key), so a restart can see that today's digest
went out. A send that fails is recorded and tried again, to the destinations that failed, at
the next cycle; it never fails the cycle. Destinations are named by number and scheme only
("#2 json"): their URLs hold tokens and never reach the ledger."""
from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta, tzinfo
from typing import Any, Protocol

from eventsourcing.domain import Aggregate

from ledger.aggregate import VersionStamped
from ledger.errors import ConcurrentChange
from ledger.status import NEEDS_A_PERSON

NOTICE_NAMESPACE = uuid.UUID("5d0c3f7e-9a21-5b64-8c1e-7f2a4b6d8e90")


def notice_id(key: str) -> uuid.UUID:
    return uuid.uuid5(NOTICE_NAMESPACE, key)


class Notice(VersionStamped, Aggregate):
    TOPIC = "ml_connector.Notice"

    class Event(Aggregate.Event):
        connector_version: str

    class Created(Event, Aggregate.Created):
        TOPIC = "ml_connector.notice.Created"

    class Composed(Created):
        TOPIC = "ml_connector.notice.Composed"
        kind: str
        key: str
        subject: str
        body: str

    class Sent(Event):
        TOPIC = "ml_connector.notice.Sent"
        destinations: list[str]
        attempt: int

        def apply(self, aggregate: Notice) -> None:
            aggregate.attempts = self.attempt

    class SendFailed(Event):
        TOPIC = "ml_connector.notice.SendFailed"
        failed: list[dict[str, str]]        # {destination, error}
        sent: list[str]
        attempt: int

        def apply(self, aggregate: Notice) -> None:
            aggregate.attempts = self.attempt

    def __init__(self, kind: str, key: str, subject: str, body: str,
                 connector_version: str) -> None:
        self.kind, self.key, self.subject, self.body = kind, key, subject, body
        self.attempts = 0


def compose(kind: str, key: str, subject: str, body: str) -> Notice:
    return Notice._create(Notice.Composed, id=notice_id(key), kind=kind, key=key,
                          subject=subject, body=body)


class Sender(Protocol):
    def destinations(self) -> list[str]: ...

    def send(self, subject: str, body: str, only: list[str] | None = None
             ) -> dict[str, str | None]:
        """{destination: None if delivered, else why not}."""


@dataclass
class Policy:
    new_exceptions: bool = True
    max_listed: int = 10
    trouble: bool = True
    trouble_cycles: int = 3
    stalled: bool = True
    stalled_after: float = 7200.0
    digest: bool = True
    digest_at: time = time(8, 0)
    tz: tzinfo | None = None
    workspace_url: str = ""


@dataclass
class Watch:
    """What the daemon remembers between cycles."""
    troubled_cycles: int = 0
    trouble_told: bool = False
    last_success: datetime | None = None
    stall_told: bool = False
    pending: list[tuple[Notice, list[str]]] = field(default_factory=list)


def cycle_trouble(report: Any) -> list[str]:
    """System trouble in a cycle report: unreachable SFTP or IFS, rejected export files."""
    problems = list(getattr(report, "errors", []) or [])
    for taken in (getattr(report, "poll", {}) or {}).get("taken", []):
        if taken.get("rejected"):
            problems.append(f"export file {taken['file']} rejected: {taken['rejected']}")
    return problems


def split_failures(failed: list[dict[str, str]], lookup: Callable[[str], tuple[str, str]]
                   ) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """(new exceptions, transient failures) of a cycle, one entry per invoice (its last).
    An exception is an invoice the cycle left for a person (failed, needs attention); one
    that will be retried by itself is not, but a transient failure (IFS could not be
    reached) is a sign of system trouble."""
    latest = {f["invoice"]: f for f in failed}
    exceptions = [dict(f, details=lookup(ref)[0]) for ref, f in latest.items()
                  if lookup(ref)[1] in (*NEEDS_A_PERSON, "")]
    transient = [f for f in latest.values() if f.get("kind") == "transient"]
    return exceptions, transient


def exceptions_message(failed: list[dict[str, str]], policy: Policy) -> tuple[str, str]:
    listed = failed[:policy.max_listed]
    lines = [f"- {f['invoice']}{f.get('details', '')}: {f.get('kind', '')} at"
             f" {f.get('stage', '')}: {f.get('message', '')}" for f in listed]
    if len(failed) > len(listed):
        lines.append(f"and {len(failed) - len(listed)} more (`ml-connector status --state"
                     " failed` lists them)")
    subject = f"ml-connector: {len(failed)} new invoice exception{'s' * (len(failed) != 1)}"
    return subject, "\n".join(lines)


class Notifications:
    """Decides, sends through a Sender, records. Never raises for a failed send."""

    def __init__(self, ledger: Any, sender: Sender, policy: Policy,
                 clock: Callable[[], datetime]) -> None:
        self.ledger, self.sender, self.policy, self.clock = ledger, sender, policy, clock
        self.watch = Watch(last_success=clock())

    def restore_pending(self, pending: list[tuple[str, list[str]]]) -> None:
        """Failed sends left on record by an earlier process, to be retried next cycle."""
        held = {notice.id for notice, _ in self.watch.pending}
        for notice_ref, destinations in pending:
            notice = self.ledger.repository.get(uuid.UUID(notice_ref))
            if notice.id not in held and notice.kind != "test":
                self.watch.pending.append((notice, destinations))

    # ------------------------------------------------------------------ triggers

    def after_cycle(self, report: Any | None, error: str = "",
                    lookup: Callable[[str], tuple[str, str]] = lambda ref: ("", "")
                    ) -> list[Notice]:
        """Called after every cycle (report None when the cycle itself failed). `lookup(ref)`
        gives (" (USD 1350.00)", current state) of an invoice. Returns the notices handled
        this time, retries included."""
        now, p, w = self.clock(), self.policy, self.watch
        done = self._retry_pending()
        trouble = ([error] if error else []) + (cycle_trouble(report) if report else [])
        exceptions, transient = split_failures(report.failed if report else [], lookup)
        if transient:
            trouble.append(f"{len(transient)} invoice(s) could not be moved on, to be retried:"
                           f" {transient[-1].get('message', '')}")
        if p.new_exceptions and exceptions:
            subject, body = exceptions_message(exceptions, p)
            done.append(self._send("exceptions", f"exceptions:{now.isoformat()}", subject,
                                   body))
        if trouble:
            w.troubled_cycles += 1
            if p.trouble and w.troubled_cycles >= p.trouble_cycles and not w.trouble_told:
                w.trouble_told = True
                done.append(self._send(
                    "trouble", f"trouble:{now.isoformat()}",
                    f"ml-connector: system trouble for {w.troubled_cycles} cycles in a row",
                    "\n".join(f"- {t}" for t in trouble[:p.max_listed])
                    + "\n`ml-connector check` tests each connection."))
        else:
            if w.trouble_told and p.trouble:
                done.append(self._send("recovered", f"recovered:{now.isoformat()}",
                                       "ml-connector: recovered",
                                       f"A cycle ran cleanly again after {w.troubled_cycles}"
                                       " troubled cycles."))
            w.troubled_cycles, w.trouble_told = 0, False
            w.last_success, w.stall_told = now, False
        return done

    def check_stalled(self) -> Notice | None:
        now, p, w = self.clock(), self.policy, self.watch
        if not p.stalled or w.stall_told or w.last_success is None:
            return None
        if (now - w.last_success).total_seconds() < p.stalled_after:
            return None
        w.stall_told = True
        return self._send("stalled", f"stalled:{w.last_success.isoformat()}",
                          "ml-connector: stalled",
                          f"No successful cycle since {w.last_success.isoformat()}"
                          f" ({int((now - w.last_success).total_seconds() // 60)} minutes).")

    def digest_key(self) -> str | None:
        """The key of today's digest when it is due and not yet sent, else None."""
        if not self.policy.digest:
            return None
        local = self.clock().astimezone(self.policy.tz)
        if local.time() < self.policy.digest_at:
            return None
        key = f"digest:{local.date().isoformat()}"
        return None if self.ledger.recorded([notice_id(key)]) else key

    def send_digest(self, key: str, subject: str, body: str) -> Notice:
        return self._send("digest", key, subject, body)

    def next_check(self) -> datetime:
        """When the daemon should wake next for a stall or the digest, at the latest."""
        now, p = self.clock(), self.policy
        times = [now + timedelta(hours=1)]
        if p.stalled and not self.watch.stall_told and self.watch.last_success is not None:
            times.append(self.watch.last_success + timedelta(seconds=p.stalled_after))
        if p.digest:
            local = now.astimezone(p.tz)
            at = datetime.combine(local.date(), p.digest_at, tzinfo=p.tz)
            times.append(at if at > local else at + timedelta(days=1))
        return min(times)

    def test(self) -> dict[str, str | None]:
        notice = compose("test", f"test:{self.clock().isoformat()}", "ml-connector: test",
                         "A test message from `ml-connector notify test`.")
        return self._deliver(notice, None)

    # ------------------------------------------------------------------ sending

    def _send(self, kind: str, key: str, subject: str, body: str) -> Notice:
        notice = compose(kind, key, subject, body)
        self._deliver(notice, None)
        return notice

    def _deliver(self, notice: Notice, only: list[str] | None) -> dict[str, str | None]:
        notice.attempts += 1
        try:
            results = self.sender.send(notice.subject, notice.body, only)
        except Exception as exc:          # a broken destination never fails the cycle
            results = {d: f"{type(exc).__name__}" for d in (only or self.sender.destinations())}
        failed = [{"destination": d, "error": e} for d, e in results.items() if e]
        sent = [d for d, e in results.items() if not e]
        if failed:
            notice.trigger_event(Notice.SendFailed, failed=failed, sent=sent,
                                 attempt=notice.attempts)
            if notice.kind != "test":     # `notify test` reports its result; no retry
                self.watch.pending.append((notice, [f["destination"] for f in failed]))
        else:
            notice.trigger_event(Notice.Sent, destinations=sent, attempt=notice.attempts)
        try:
            self.ledger.record(notice)
        except ConcurrentChange:          # another process retried this notice meanwhile
            self.watch.pending = [(n, d) for n, d in self.watch.pending if n is not notice]
        return results

    def _retry_pending(self) -> list[Notice]:
        pending, self.watch.pending = self.watch.pending, []
        for notice, destinations in pending:
            self._deliver(notice, destinations)
        return [notice for notice, _ in pending]
