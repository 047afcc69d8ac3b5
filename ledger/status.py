"""An invoice's current status as a pure function of its events.

The Invoice aggregate and the status projection both fold events through `transition`, so the
state a worker acts on and the state a person sees cannot drift apart, and a projection rebuilt
from the ledger equals the one kept live.
"""
from __future__ import annotations

from typing import Any

STATES = ("discovered", "parsed", "awaiting_approval", "validated", "vendor_resolved",
          "posting", "posted", "retry_scheduled", "failed", "needs_attention", "resolved",
          "dismissed")

# Operator actions (retry, resolve, dismiss, reopen) and the states that allow each. No stage
# acts on `resolved` (a person entered it in IFS) or `dismissed` (it must never go to IFS).
# `posting` is excluded from resolve and dismiss: an attempt may be writing to IFS right now.
ACTION_STATES = {
    "retry": ("parsed", "awaiting_approval", "validated", "vendor_resolved", "posting",
              "posted", "retry_scheduled", "failed", "needs_attention"),
    "resolve": ("parsed", "awaiting_approval", "validated", "vendor_resolved",
                "retry_scheduled", "failed", "needs_attention"),
    "dismiss": ("parsed", "awaiting_approval", "validated", "vendor_resolved",
                "retry_scheduled", "failed"),
    "reopen": ("dismissed",),
}


# What a reopen puts back: the columns a dismissal changed.
RESTORED_ON_REOPEN = ("state", "stage", "failure_kind", "failure_message", "next_retry_at")


def allowed_actions(state: str) -> list[str]:
    """The operator actions an invoice in this state allows, in ACTION_STATES order."""
    return [action for action, states in ACTION_STATES.items() if state in states]

# Which stage acts on an invoice in each state (retry_scheduled/failed: the failed stage).
STAGE_OF_STATE = {"parsed": "validate", "validated": "resolve_vendor",
                  "vendor_resolved": "post", "posting": "post"}

# States from which a new export's content may replace the old one (an amendment).
AMENDABLE = frozenset({"discovered", "parsed", "awaiting_approval", "validated",
                       "vendor_resolved", "retry_scheduled", "failed"})

# ---- go-live cutover (issue 14): an invoice from before `connector.ignore_approved_before` is
# recorded as skipped and never posted; new content from Stampli (an amendment) re-judges it.
SKIPPED = "skipped"
STATES = (*STATES, SKIPPED)
AMENDABLE = AMENDABLE | {SKIPPED}
# a person may still record it as entered by hand (resolve) or never to be sent (dismiss)
ACTION_STATES = {**ACTION_STATES, "resolve": (*ACTION_STATES["resolve"], SKIPPED),
                 "dismiss": (*ACTION_STATES["dismiss"], SKIPPED)}

COLUMNS = ("id", "company", "vendor_id", "document_type", "invoice_number", "currency", "total",
           "state", "stage", "failure_kind", "failure_message", "ifs_invoice_id",
           "ifs_voucher_no", "supplier_id", "attempts", "next_retry_at", "approval_status",
           "content_hash", "file_name", "version", "updated_at")


def empty_row(invoice_id: str) -> dict[str, Any]:
    row: dict[str, Any] = dict.fromkeys(COLUMNS, "")
    row.update(id=invoice_id, attempts=0, version=0, next_retry_at=None)
    return row


def _content(row: dict[str, Any], data: dict[str, Any]) -> None:
    invoice = data["invoice"]
    row.update(currency=invoice.get("currency", ""), total=invoice.get("total") or "",
               approval_status=invoice.get("approval_status", ""),
               content_hash=data["content_hash"], file_name=data.get("file_name", ""),
               invoice_number=invoice.get("invoice_number", row["invoice_number"]),
               # content recorded while dismissed keeps it dismissed: only reopen moves it
               state="dismissed" if row["state"] == "dismissed" else "parsed", stage="",
               failure_kind="", failure_message="", attempts=0, next_retry_at=None)


def _clear_failure(row: dict[str, Any]) -> None:
    row.update(failure_kind="", failure_message="", next_retry_at=None)


def transition(row: dict[str, Any], event: str, data: dict[str, Any], version: int,
               recorded_at: str) -> dict[str, Any]:
    """The row after one more event. Unknown event types leave the state as it was (a newer
    connector's events can be read by an older projection without breaking it)."""
    row = dict(row)
    if event == "Discovered":
        row.update(company=data["company"], vendor_id=data["vendor_id"],
                   document_type=data["document_type"], invoice_number=data["invoice_number"],
                   file_name=data.get("file_name", ""), state="discovered")
    elif event in ("Parsed", "Amended"):
        _content(row, data)
    elif event == "AwaitingApproval":
        row.update(state="awaiting_approval", stage="")
        _clear_failure(row)     # a hold from a retried stage: no retry is due any more
    elif event == "Validated":
        row.update(state="validated", stage="")
        _clear_failure(row)
    elif event == "VendorResolved":
        row.update(state="vendor_resolved", stage="", supplier_id=data["supplier_id"])
        _clear_failure(row)
    elif event == "PostingIntended":
        row.update(state="posting", stage="post")
    elif event == "Posted":
        voucher = data.get("voucher") or {}
        row.update(state="posted", stage="", ifs_invoice_id=str(data["ifs_invoice_id"]),
                   ifs_voucher_no=str(voucher.get("VoucherNo", "")))
        _clear_failure(row)
    elif event == "Failed":
        retry_at = data.get("next_retry_at")
        row.update(state="retry_scheduled" if retry_at else "failed", stage=data["stage"],
                   failure_kind=data["kind"], failure_message=data["message"],
                   attempts=data.get("attempt", row["attempts"]), next_retry_at=retry_at)
    elif event == "ChangedAfterPosting":
        row.update(state="needs_attention", failure_kind="conflict",
                   failure_message=data["message"])
    elif event in ("ReplayRequested", "Retried"):
        row.update(state=data["restored_state"], stage="", attempts=0)
        _clear_failure(row)
    elif event == "ResolvedManually":
        row.update(state="resolved", stage="", ifs_invoice_id=str(data["ifs_invoice_id"]))
        _clear_failure(row)
    elif event == "Dismissed":
        row.update(state="dismissed", stage="")
        _clear_failure(row)
    elif event == "ReopenedAfterDismissal":
        # back to the row as it was before the dismissal (the event carries it)
        row.update({k: data["restored"][k] for k in RESTORED_ON_REOPEN})
    elif event == "Skipped":
        row.update(state=SKIPPED, stage="", failure_message=data["reason"])
    row["version"] = version
    row["updated_at"] = recorded_at
    return row
