"""Which event an invoice may be replayed to (`replay REF --from N`).

A replay puts the invoice back in the state it had after event N, but the stages then act on
its current content (the latest Parsed or Amended). So a target is refused when going back to
it would act on something other than that content as the ledger last judged it:

- N outside the stream, or before the content was parsed (nothing to act on);
- an invoice IFS already holds put back before its posting (it could be posted twice);
- N before the latest Parsed/Amended: that state belonged to content Stampli has since replaced
  (its checks, its approval); likewise before a ChangedAfterPosting, unless the state is one
  no stage acts on (posted, needs attention);
- content that is not approved moved anywhere but `awaiting_approval`: only an approved export
  moves it on;
- N that recorded a failure (the invoice would stay parked; the step before it is the retry);
- N that left it resolved or dismissed (only a person's resolve or dismiss does that).
"""
from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import Any

from ledger.status import AT_REST, BY_HAND, PARKED, State, empty_row, transition


def replay_command(ref: str) -> str:
    """The replay a failure message tells a person to run, as it can be pasted: quoted, and
    with the --reason replay requires (the "..." is theirs to fill)."""
    return f'`ml-connector replay {shlex.quote(ref)} --reason "..."`'


CONTENT_EVENTS = ("Parsed", "Amended")


@dataclass(frozen=True)
class Step:
    version: int
    event: str
    state: str                                   # the invoice's state after this event


@dataclass(frozen=True)
class Standing:
    """What the invoice is now, as far as a replay cares."""
    ref: str
    ifs_invoice_id: str | None                   # set once IFS holds it
    approval_problem: str                        # why its content may not go to IFS, or ""


def steps_of(events: list[Any]) -> list[Step]:
    """The state after each event, folded as the status projection folds it."""
    row, steps = empty_row(""), []
    for event in events:
        name = type(event).__name__
        row = transition(row, name, vars(event), event.originator_version, "")
        steps.append(Step(event.originator_version, name, row["state"]))
    return steps


def why_not(steps: list[Step], target: int, standing: Standing) -> str:
    """Why the invoice may not go back to event `target` ("" when it may)."""
    last = len(steps)
    ref = standing.ref
    if not 1 <= target <= last:
        return f"invoice {ref} has events 1..{last}; there is no event {target} to go back to"
    step = steps[target - 1]
    if standing.ifs_invoice_id is not None and step.state not in AT_REST:
        return (f"invoice {ref} is already posted in IFS (InvoiceId {standing.ifs_invoice_id});"
                f" replaying it to '{step.state}' could post it twice, so it is refused")
    if step.state in BY_HAND:
        return (f"event {target} of {ref} left it {step.state}; only a person's"
                f" {'dismiss' if step.state == State.DISMISSED else 'resolve'} puts it there")
    if step.state == State.DISCOVERED:
        return (f"event {target} of {ref} is before its content was parsed; there is nothing"
                " to act on there")
    content = max((s.version for s in steps if s.event in CONTENT_EVENTS), default=0)
    superseding = [s for s in steps if s.version > target and (
        s.version == content
        or (s.event == "ChangedAfterPosting" and step.state not in AT_REST))]
    if superseding:
        later = superseding[0]
        return (f"event {target} of {ref} is before event {later.version} ({later.event}),"
                " where a Stampli export replaced its content; going back there would act on"
                " superseded content")
    if standing.approval_problem and step.state != State.AWAITING_APPROVAL:
        return (f"{standing.approval_problem}; replaying it to '{step.state}' would skip the"
                " approval, so it is refused")
    if step.state in PARKED:
        return (f"event {target} of {ref} recorded a failure; going back to it would leave"
                " the invoice parked: replay from the step before it, or without --from")
    return ""


def allowed(steps: list[Step], standing: Standing) -> list[int]:
    return [s.version for s in steps if not why_not(steps, s.version, standing)]


def describe(versions: list[int]) -> str:
    """`--from 4..7`, `--from 3, 6..7`, or that there is none."""
    if not versions:
        return "no event it can go back to"
    runs: list[list[int]] = []
    for v in versions:
        if runs and v == runs[-1][-1] + 1:
            runs[-1].append(v)
        else:
            runs.append([v])
    return "allowed: --from " + ", ".join(
        str(r[0]) if len(r) == 1 else f"{r[0]}..{r[-1]}" for r in runs)
