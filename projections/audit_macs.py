"""The MAC half of `audit verify`: every event after the point where a ledger got its audit
key must carry a valid MAC (ledger/signing.py); the events before that point must still hash
to the chain link kept with the key in the secrets store. Each bad event is named by
position, type, stream and version, with what is wrong."""
from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from ledger.codec import decode_state, event_type
from ledger.signing import EventKeys, split

Report = Callable[[int, str, str], None]          # position, kind, message
MAX_TRACED = 20                                   # forged events whose origin is searched


@dataclass(frozen=True)
class MacPolicy:
    """What verify needs from the secrets store: the keys, and where this ledger's MACs begin
    (`unsigned_upto`, with the chain link there; None for a ledger never bound to a key)."""
    keys: EventKeys
    unsigned_upto: int = 0
    link: str | None = None


def describe(n: Any) -> str:
    return (f"{event_type(n.topic)} event at position {n.id} (stream {n.originator_id},"
            f" version {n.originator_version})")


WHAT_IS_WRONG = {
    "unsigned": "carries no MAC: the connector did not write it (added or rewritten by"
                " someone with database access)",
    "forged": "fails its MAC: its stream, version, type, content or time is not what the"
              " connector wrote (changed, copied from another event, or re-dated)",
}


class MacCheck:
    def __init__(self, policy: MacPolicy, report: Report) -> None:
        self.policy, self.report = policy, report
        self.sealed = policy.link is None or policy.unsigned_upto == 0
        self.forged: dict[str, int] = {}            # MAC hex -> position, to trace copies
        self.checked = 0

    def feed(self, n: Any, link_before: bytes) -> None:
        """One event, before its link is folded into the chain (`link_before`)."""
        policy = self.policy
        if not self.sealed and n.id > policy.unsigned_upto:
            self.check_seal(n.id, link_before)
        kind = policy.keys.check(n.originator_id, n.originator_version, n.topic, n.state)
        if kind == "unsigned" and n.id <= policy.unsigned_upto:
            return                                  # recorded before the key existed
        self.checked += 1
        if not kind:
            return
        if kind == "unknown_key":
            key_id = split(n.state).key_id          # type: ignore[union-attr]
            self.report(n.id, "unknown_key", f"{describe(n)} is MACed with audit key"
                        f" {key_id[:8]!r}, which this secrets store does not hold: copy the"
                        " secrets store from the host that made that key (or the event is"
                        " forged)")
            return
        if kind == "forged" and len(self.forged) < MAX_TRACED:
            self.forged[split(n.state).mac] = n.id  # type: ignore[union-attr]
        self.report(n.id, kind, f"{describe(n)} {WHAT_IS_WRONG[kind]}")

    def check_seal(self, position: int, link: bytes) -> None:
        self.sealed = True
        if link.hex() != self.policy.link:
            upto = self.policy.unsigned_upto
            self.report(upto, "sealed", f"the events up to position {upto}, recorded before"
                        " the audit key existed, changed since the key was made: their chain"
                        " link differs from the one kept with the key")

    def finish(self, last: int, link: bytes) -> None:
        if not self.sealed:
            if last < self.policy.unsigned_upto:
                self.sealed = True
                self.report(last + 1, "sealed", f"ledger ends at {last} but the audit key was"
                            f" made when it held events up to {self.policy.unsigned_upto}"
                            " (truncated)")
            else:
                self.check_seal(last, link)

    def trace(self, events: Iterable[Any]) -> dict[int, str]:
        """Where each forged event's MAC really belongs: position -> "a copy of ..." (one more
        pass over the ledger, only when something failed its MAC)."""
        found: dict[int, str] = {}
        if not self.forged:
            return found
        for n in events:
            seal = split(n.state)
            forged_at = self.forged.get(seal.mac) if seal else None
            if forged_at is not None and forged_at != n.id and forged_at not in found:
                found[forged_at] = f"it is a copy of the {describe(n)}"
        return found


def chain_started(n: Any) -> int | None:
    """The position an audit trail ChainStarted event records (ledger/audit_trail.py)."""
    try:
        return int(decode_state(n.state)["position"])
    except (ValueError, KeyError, TypeError):
        return None
