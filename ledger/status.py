"""An invoice's current status as a pure function of its events.

The Invoice aggregate and the status projection both fold events through `transition`, so the
state a worker acts on and the state a person sees cannot drift apart, and a projection rebuilt
from the ledger equals the one kept live.
"""
from __future__ import annotations

from typing import Any, Optional, TypedDict

class State:
    """An invoice's states, as stored in events and the status view (the values never change)."""
    DISCOVERED = "discovered"
    PARSED = "parsed"
    AWAITING_APPROVAL = "awaiting_approval"
    VALIDATED = "validated"
    VENDOR_RESOLVED = "vendor_resolved"
    POSTING = "posting"
    POSTED = "posted"
    RETRY_SCHEDULED = "retry_scheduled"
    FAILED = "failed"
    NEEDS_ATTENTION = "needs_attention"
    RESOLVED = "resolved"
    DISMISSED = "dismissed"
    # Approved before `connector.ignore_approved_before` (the go-live cutover): recorded, never
    # posted; new content from Stampli (an amendment) judges it again.
    SKIPPED = "skipped"


class Stage:
    """The stages that act on an invoice (PARSE only ever fails: intake records its outcome)."""
    PARSE = "parse"
    VALIDATE = "validate"
    RESOLVE_VENDOR = "resolve_vendor"
    POST = "post"


S = State                 # short, for the tables below
STATES = (S.DISCOVERED, S.PARSED, S.AWAITING_APPROVAL, S.VALIDATED, S.VENDOR_RESOLVED,
          S.POSTING, S.POSTED, S.RETRY_SCHEDULED, S.FAILED, S.NEEDS_ATTENTION, S.RESOLVED,
          S.DISMISSED, S.SKIPPED)

# States whose row carries the stage that failed (the one that acts on it again).
PARKED = (S.RETRY_SCHEDULED, S.FAILED)
# States no stage acts on and a replay may still put a posted invoice back to.
AT_REST = (S.POSTED, S.NEEDS_ATTENTION)
# States only a person's action enters (resolve, dismiss); no replay goes back to them.
BY_HAND = (S.RESOLVED, S.DISMISSED)
# States in which IFS may hold the invoice: new content is a change after posting.
SENT_TO_IFS = (S.POSTING, S.POSTED, S.NEEDS_ATTENTION, S.RESOLVED)
# States the connector left for a person (an exception); OPEN_STATES adds the ones it retries.
NEEDS_A_PERSON = (S.FAILED, S.NEEDS_ATTENTION)
OPEN_STATES = (*NEEDS_A_PERSON, S.RETRY_SCHEDULED)

# Operator actions (retry, resolve, dismiss, reopen) and the states that allow each. No stage
# acts on `resolved` (a person entered it in IFS) or `dismissed` (it must never go to IFS).
# `posting` is excluded from resolve and dismiss: an attempt may be writing to IFS right now.
_BEFORE_IFS = (S.PARSED, S.AWAITING_APPROVAL, S.VALIDATED, S.VENDOR_RESOLVED)
ACTION_STATES = {
    "retry": (*_BEFORE_IFS, S.POSTING, S.POSTED, *PARKED, S.NEEDS_ATTENTION),
    # a skipped invoice may still be recorded as entered by hand, or as never to be sent
    "resolve": (*_BEFORE_IFS, *PARKED, S.NEEDS_ATTENTION, S.SKIPPED),
    "dismiss": (*_BEFORE_IFS, *PARKED, S.SKIPPED),
    "reopen": (S.DISMISSED,),
}


# What a reopen puts back: the columns a dismissal changed.
RESTORED_ON_REOPEN = ("state", "stage", "failure_kind", "failure_message", "next_retry_at")


def allowed_actions(state: str) -> list[str]:
    """The operator actions an invoice in this state allows, in ACTION_STATES order."""
    return [action for action, states in ACTION_STATES.items() if state in states]

# Which stage acts on an invoice in each state (PARKED states: the failed stage).
STAGE_OF_STATE = {S.PARSED: Stage.VALIDATE, S.VALIDATED: Stage.RESOLVE_VENDOR,
                  S.VENDOR_RESOLVED: Stage.POST, S.POSTING: Stage.POST}

# The stages the pipeline runs, in order, and the fresh states each takes on (STAGE_OF_STATE
# read the other way round).
STAGES = (Stage.VALIDATE, Stage.RESOLVE_VENDOR, Stage.POST)
FRESH_STATES = {stage: tuple(s for s, st in STAGE_OF_STATE.items() if st == stage)
                for stage in STAGES}

# States from which a new export's content may replace the old one (an amendment).
AMENDABLE = frozenset({S.DISCOVERED, *_BEFORE_IFS, *PARKED, S.SKIPPED})

COLUMNS = ("id", "company", "vendor_id", "document_type", "invoice_number", "currency", "total",
           "state", "stage", "failure_kind", "failure_message", "ifs_invoice_id",
           "ifs_voucher_no", "supplier_id", "attempts", "next_retry_at", "approval_status",
           "content_hash", "file_name", "version", "updated_at")


def empty_row(invoice_id: str) -> dict[str, Any]:
    row: dict[str, Any] = dict.fromkeys(COLUMNS, "")
    row.update(id=invoice_id, attempts=0, version=0, next_retry_at=None)
    return row


def _clear_failure(row: dict[str, Any]) -> None:
    row["failure_kind"] = row["failure_message"] = ""
    row["next_retry_at"] = None


def _discovered(row: dict[str, Any], data: dict[str, Any]) -> None:
    row.update(company=data["company"], vendor_id=data["vendor_id"],
               document_type=data["document_type"], invoice_number=data["invoice_number"],
               file_name=data.get("file_name", ""), state=S.DISCOVERED)


def _content(row: dict[str, Any], data: dict[str, Any]) -> None:
    invoice = data["invoice"]
    row.update(currency=invoice.get("currency", ""), total=invoice.get("total") or "",
               approval_status=invoice.get("approval_status", ""),
               content_hash=data["content_hash"], file_name=data.get("file_name", ""),
               invoice_number=invoice.get("invoice_number", row["invoice_number"]),
               # content recorded while dismissed keeps it dismissed: only reopen moves it
               state=S.DISMISSED if row["state"] == S.DISMISSED else S.PARSED, stage="",
               failure_kind="", failure_message="", attempts=0, next_retry_at=None)


def _settled(state: str) -> Any:
    """A stage done (or a person's action): the state, no stage, no failure pending."""
    def fold(row: dict[str, Any], data: dict[str, Any]) -> None:
        row["state"], row["stage"] = state, ""
        _clear_failure(row)       # e.g. a hold from a retried stage: no retry is due any more
    return fold


def _vendor_resolved(row: dict[str, Any], data: dict[str, Any]) -> None:
    row["state"], row["stage"], row["supplier_id"] = S.VENDOR_RESOLVED, "", data["supplier_id"]
    _clear_failure(row)


def _posting_intended(row: dict[str, Any], data: dict[str, Any]) -> None:
    row["state"], row["stage"] = S.POSTING, Stage.POST


def _posted(row: dict[str, Any], data: dict[str, Any]) -> None:
    voucher = data.get("voucher") or {}
    row["ifs_invoice_id"] = str(data["ifs_invoice_id"])
    row["ifs_voucher_no"] = str(voucher.get("VoucherNo", ""))
    row["state"], row["stage"] = S.POSTED, ""
    _clear_failure(row)


def _failed(row: dict[str, Any], data: dict[str, Any]) -> None:
    retry_at = data.get("next_retry_at")
    row.update(state=S.RETRY_SCHEDULED if retry_at else S.FAILED, stage=data["stage"],
               failure_kind=data["kind"], failure_message=data["message"],
               attempts=data.get("attempt", row["attempts"]), next_retry_at=retry_at)


def _changed_after_posting(row: dict[str, Any], data: dict[str, Any]) -> None:
    row.update(state=S.NEEDS_ATTENTION, failure_kind="conflict",
               failure_message=data["message"])


def _replayed(row: dict[str, Any], data: dict[str, Any]) -> None:
    row.update(state=data["restored_state"], stage="", attempts=0)
    _clear_failure(row)


def _resolved_manually(row: dict[str, Any], data: dict[str, Any]) -> None:
    row.update(state=S.RESOLVED, stage="", ifs_invoice_id=str(data["ifs_invoice_id"]))
    _clear_failure(row)


def _reopened(row: dict[str, Any], data: dict[str, Any]) -> None:
    # back to the row as it was before the dismissal (the event carries it)
    row.update({k: data["restored"][k] for k in RESTORED_ON_REOPEN})


def _skipped(row: dict[str, Any], data: dict[str, Any]) -> None:
    row.update(state=S.SKIPPED, stage="", failure_message=data["reason"])


# What each event type does to the row; a type not here leaves the state as it was (a newer
# connector's events can be read by an older projection without breaking it).
_FOLDS = {
    "Discovered": _discovered, "Parsed": _content, "Amended": _content,
    "AwaitingApproval": _settled(S.AWAITING_APPROVAL), "Validated": _settled(S.VALIDATED),
    "VendorResolved": _vendor_resolved, "PostingIntended": _posting_intended,
    "Posted": _posted, "Failed": _failed, "ChangedAfterPosting": _changed_after_posting,
    "ReplayRequested": _replayed, "Retried": _replayed,
    "ResolvedManually": _resolved_manually, "Dismissed": _settled(S.DISMISSED),
    "ReopenedAfterDismissal": _reopened, "Skipped": _skipped,
}


def _fields(name: str, *fields: str, **nested: Any) -> Any:
    """The part of an event's data a fold reads, as a TypedDict (every field optional, values
    as stored: amounts stay the strings they were written as)."""
    return TypedDict(name, {**dict.fromkeys(fields, Any), **nested}, total=False)  # type: ignore


_INVOICE = _fields("InvoiceRead", "currency", "total", "approval_status", "invoice_number")
_CONTENT = _fields("ContentRead", "timestamp", "content_hash", "file_name", invoice=_INVOICE)
_UNREAD = _fields("TimestampRead", "timestamp")
# What `fold` reads of each event type's data (plus `timestamp`, the row's updated_at): a
# rebuild may decode only these (projections.status). A type not here is read for its
# timestamp alone. Change a fold, change its line here: tests/ledger/test_status_decode.py
# folds every event type both ways.
FOLD_READS: dict[str, Any] = {
    "Discovered": _fields("DiscoveredRead", "timestamp", "company", "vendor_id",
                          "document_type", "invoice_number", "file_name"),
    "Parsed": _CONTENT, "Amended": _CONTENT,
    "VendorResolved": _fields("VendorResolvedRead", "timestamp", "supplier_id"),
    "Posted": _fields("PostedRead", "timestamp", "ifs_invoice_id",
                      voucher=Optional[_fields("VoucherRead", "VoucherNo")]),
    "Failed": _fields("FailedRead", "timestamp", "next_retry_at", "stage", "kind", "message",
                      "attempt"),
    "ChangedAfterPosting": _fields("ChangedRead", "timestamp", "message"),
    "ReplayRequested": _fields("ReplayRead", "timestamp", "restored_state"),
    "Retried": _fields("RetriedRead", "timestamp", "restored_state"),
    "ResolvedManually": _fields("ResolvedRead", "timestamp", "ifs_invoice_id"),
    "ReopenedAfterDismissal": _fields("ReopenedRead", "timestamp",
                                      restored=_fields("RestoredRead", *RESTORED_ON_REOPEN)),
    "Skipped": _fields("SkippedRead", "timestamp", "reason"),
}


def fold_reads(event: str) -> Any:
    return FOLD_READS.get(event, _UNREAD)


def fold(row: dict[str, Any], event: str, data: dict[str, Any], version: int,
         recorded_at: str) -> None:
    """`transition` in place, for a row its caller owns (the status projection's rebuild
    folds a million events: copying each row per event was a fifth of its fold)."""
    step = _FOLDS.get(event)
    if step is not None:
        step(row, data)
    row["version"] = version
    row["updated_at"] = recorded_at


def transition(row: dict[str, Any], event: str, data: dict[str, Any], version: int,
               recorded_at: str) -> dict[str, Any]:
    """The row after one more event (a new dict: `row` is left as it was)."""
    row = dict(row)
    fold(row, event, data, version, recorded_at)
    return row
