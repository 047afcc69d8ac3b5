"""What a person should do next about an invoice, in one line: the exceptions list shows it
per row, the invoice page above the failure."""
from __future__ import annotations

from typing import Any

KIND_LABELS = {
    "data": "bad data from Stampli",
    "reference": "missing in IFS",
    "transient": "system unreachable",
    "rejected": "refused by IFS",
    "conflict": "conflict with IFS",
    "approval": "waiting for approval",
}

STATE_LABELS = {
    "discovered": "Discovered", "parsed": "Read", "awaiting_approval": "Awaiting approval",
    "validated": "Validated", "vendor_resolved": "Supplier found", "posting": "Posting",
    "posted": "Posted", "retry_scheduled": "Retry scheduled", "failed": "Failed",
    "needs_attention": "Needs attention", "resolved": "Resolved by hand",
    "dismissed": "Dismissed",
}


def kind_of(row: dict[str, Any]) -> str:
    if row["state"] == "awaiting_approval":
        return "approval"
    return row.get("failure_kind") or ""


def next_step(row: dict[str, Any]) -> str:
    state, kind = row["state"], row.get("failure_kind") or ""
    if state == "awaiting_approval":
        status = row.get("approval_status") or "not approved"
        return (f"Stampli status is “{status}”: ask the approver; it posts by itself once"
                " Stampli exports it approved.")
    if state == "retry_scheduled":
        return (f"Nothing to do yet: the connector tries again by itself at"
                f" {short_time(row.get('next_retry_at'))}.")
    if state == "needs_attention":
        return ("Changed in Stampli after it was posted: correct the document in IFS by hand,"
                " then Resolve with its IFS InvoiceId.")
    if kind == "data":
        return ("Correct the invoice in Stampli and export it again; it moves on by itself"
                " (Dismiss it if it must never go to IFS).")
    if kind == "reference":
        what = problem_excerpt(row, 120)
        if what:
            return f"{what}: add it in IFS (or correct the coding in Stampli), then press Retry."
        return ("Add what the problem names in IFS (account, cost center, supplier, tax"
                " code), then press Retry.")
    if kind == "transient":
        return "IFS or SFTP did not answer: press Retry once it is reachable again."
    if kind == "rejected":
        return ("IFS refused the document: fix the cause named below in IFS or Stampli, then"
                " Retry; or enter it in IFS by hand and Resolve.")
    if kind == "conflict":
        return ("IFS already holds a different document under this number: check it in IFS,"
                " then Resolve with its InvoiceId or Dismiss.")
    if state == "resolved":
        return "Done: entered in IFS by hand."
    if state == "dismissed":
        return "Done: dismissed; it will never go to IFS (Reopen undoes this)."
    if state == "posted":
        return "Done: posted to IFS."
    return "Nothing to do: the connector moves it on by itself."


def short_time(value: Any) -> str:
    """2026-11-06T15:25:00.123+00:00 -> 2026-11-06 15:25 UTC."""
    text = str(value or "")
    if len(text) < 16 or text[10] != "T":
        return text or "—"
    return f"{text[:10]} {text[11:16]} UTC"


def problem_excerpt(row: dict[str, Any], limit: int = 160) -> str:
    """The failure's first clause (what is wrong, without the how-to that follows), short."""
    text = str(row.get("failure_message") or "")
    first = text.split("; ")[0]
    return first if len(first) <= limit else first[:limit - 1] + "…"


def short_time_s(value: Any) -> str:
    """With seconds, for runs that come every few seconds."""
    text = str(value or "")
    if len(text) < 19 or text[10] != "T":
        return text or "—"
    return f"{text[:10]} {text[11:19]}"
