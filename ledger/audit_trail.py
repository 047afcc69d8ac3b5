"""The ledger's record of its own evidence: which audit keys MAC its events (ledger/signing.py),
when the audit chain began covering it, and every rebuild of that chain (forced or not), each
with who and why. One stream; a handful of events over an install's life."""
from __future__ import annotations

import getpass
import socket
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate

from ledger.aggregate import VersionStamped
from ledger.app import Ledger
from ledger.errors import ConcurrentChange

AUDIT_TRAIL_ID: UUID = uuid5(NAMESPACE_URL, "ml-connector:audit-trail")
CHAIN_STARTED_TOPIC = "ml_connector.audit.ChainStarted"


def operator() -> str:
    """Who is acting: the OS user and host (a person behind a CLI, or the daemon's account)."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):            # no passwd entry (a container's random uid)
        user = "unknown-user"
    return f"{user}@{socket.gethostname()}"


class AuditTrail(VersionStamped, Aggregate):
    TOPIC = "ml_connector.AuditTrail"

    class Event(Aggregate.Event):
        connector_version: str

    class Created(Event, Aggregate.Created):
        TOPIC = "ml_connector.audit.Created"

    class KeyInstalled(Event):
        """Events from here on are MACed with `key_id` (until the next rotation). The first
        one says up to which position the events predate any key (`unsigned_upto`)."""
        TOPIC = "ml_connector.audit.KeyInstalled"
        key_id: str
        previous_key_id: str
        origin: str                    # init | first use | rotation
        unsigned_upto: int
        who: str
        reason: str

        def apply(self, aggregate: AuditTrail) -> None:
            aggregate.key_ids.append(self.key_id)

    class ChainStarted(Event):
        """The audit chain covered the ledger up to `position` (it never goes back: a head
        below it means the chain's tables were dropped or emptied)."""
        TOPIC = CHAIN_STARTED_TOPIC
        position: int

        def apply(self, aggregate: AuditTrail) -> None:
            aggregate.chain_started = self.position

    class ChainRebuilt(Event):
        TOPIC = "ml_connector.audit.ChainRebuilt"
        forced: bool
        who: str
        reason: str
        verify_failure: str            # what `audit verify` said at the time ("" if it held)

    def __init__(self, connector_version: str) -> None:
        self.key_ids: list[str] = []
        self.chain_started: int | None = None


def load(ledger: Ledger) -> AuditTrail | None:
    return ledger._find(AUDIT_TRAIL_ID)


def _record(ledger: Ledger, change: Any) -> None:
    """Apply `change` to the trail (created if need be) and save; once more on a concurrent
    change, with the other process's events loaded."""
    for attempt in (1, 2):
        trail = load(ledger) or AuditTrail._create(AuditTrail.Created, id=AUDIT_TRAIL_ID)
        if change(trail) is False:
            return
        try:
            ledger.save_all([trail])
            return
        except ConcurrentChange:
            if attempt == 2:
                raise


def record_key(ledger: Ledger, key_id: str, *, previous_key_id: str = "", origin: str,
               unsigned_upto: int = 0, reason: str = "") -> None:
    """Recorded once per key: a second call for a key already on record does nothing."""
    def change(trail: AuditTrail) -> bool:
        if key_id in trail.key_ids:
            return False
        trail.trigger_event(AuditTrail.KeyInstalled, key_id=key_id,
                            previous_key_id=previous_key_id, origin=origin,
                            unsigned_upto=unsigned_upto, who=operator(), reason=reason)
        return True
    _record(ledger, change)


def record_chain_started(ledger: Ledger, position: int) -> None:
    def change(trail: AuditTrail) -> bool:
        if trail.chain_started is not None and trail.chain_started >= position:
            return False
        trail.trigger_event(AuditTrail.ChainStarted, position=position)
        return True
    _record(ledger, change)


def record_chain_rebuilt(ledger: Ledger, *, forced: bool, reason: str,
                         verify_failure: str) -> None:
    def change(trail: AuditTrail) -> bool:
        trail.trigger_event(AuditTrail.ChainRebuilt, forced=forced, who=operator(),
                            reason=reason, verify_failure=verify_failure)
        return True
    _record(ledger, change)
