"""The exception workspace's reads: counts for the overview, the exception list (filtered,
searched, paginated, oldest first, on indexed columns), an export file's invoices, poll runs.
Plain SQL on the views; the caller catches the views up first."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ledger.status import COLUMNS
from projections.files import FILE_DETAILS, FILES, POLL_RUNS
from projections.store import Cursor
from projections.status import TABLE

# Always exceptions; awaiting_approval only once it has waited longer than the set age.
EXCEPTION_STATES = ("failed", "needs_attention", "retry_scheduled")
APPROVAL = "approval"          # the "kind" filter value for invoices waiting for approval


@dataclass
class ExceptionFilter:
    kind: str = ""             # a failure kind, or "approval"
    company: str = ""
    vendor: str = ""
    older_than: str = ""       # ISO time: only rows last changed before it
    search: str = ""           # invoice number or vendor id, part of it
    page: int = 1
    page_size: int = 50


def _where(f: ExceptionFilter, approval_before: str) -> tuple[str, list[Any]]:
    marks = ",".join("?" * len(EXCEPTION_STATES))
    if f.kind == APPROVAL:
        clauses, params = ["state = 'awaiting_approval' AND updated_at < ?"], [approval_before]
    elif f.kind:
        clauses, params = [f"state IN ({marks}) AND failure_kind = ?"], [*EXCEPTION_STATES,
                                                                          f.kind]
    else:
        clauses = [f"(state IN ({marks}) OR (state = 'awaiting_approval'"
                   " AND updated_at < ?))"]
        params = [*EXCEPTION_STATES, approval_before]
    if f.company:
        clauses.append("company = ?")
        params.append(f.company)
    if f.vendor:
        clauses.append("vendor_id = ?")
        params.append(f.vendor)
    if f.older_than:
        clauses.append("updated_at < ?")
        params.append(f.older_than)
    if f.search:
        like = "%" + f.search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        clauses.append("(LOWER(invoice_number) LIKE LOWER(?) ESCAPE '\\' OR"
                       " LOWER(vendor_id) LIKE LOWER(?) ESCAPE '\\')")
        params += [like, like]
    return " AND ".join(clauses), params


def exceptions(cur: Cursor, f: ExceptionFilter,
               approval_before: str) -> tuple[list[dict[str, Any]], int]:
    """One page of exceptions, oldest first, and how many match in all."""
    where, params = _where(f, approval_before)
    total = int(cur.execute(f"SELECT COUNT(*) FROM {TABLE} WHERE {where}", params)
                .fetchone()[0])
    offset = max(0, f.page - 1) * f.page_size
    rows = cur.execute(f"SELECT {', '.join(COLUMNS)} FROM {TABLE} WHERE {where}"
                       " ORDER BY updated_at, id LIMIT ? OFFSET ?",
                       [*params, f.page_size, offset]).fetchall()
    return [dict(zip(COLUMNS, r)) for r in rows], total


def overview(cur: Cursor, today: str, week_start: str, approval_before: str) -> dict[str, Any]:
    states = {s: int(n) for s, n in
              cur.execute(f"SELECT state, COUNT(*) FROM {TABLE} GROUP BY state").fetchall()}
    marks = ",".join("?" * len(EXCEPTION_STATES))
    kinds = {k or "?": int(n) for k, n in cur.execute(
        f"SELECT failure_kind, COUNT(*) FROM {TABLE} WHERE state IN ({marks})"
        " GROUP BY failure_kind", EXCEPTION_STATES).fetchall()}

    def posted_since(when: str) -> int:
        return int(cur.execute(f"SELECT COUNT(*) FROM {TABLE} WHERE state = 'posted' AND"
                               " updated_at >= ?", (when,)).fetchone()[0])

    where, params = _where(ExceptionFilter(), approval_before)
    oldest = cur.execute(f"SELECT {', '.join(COLUMNS)} FROM {TABLE} WHERE {where}"
                         " ORDER BY updated_at, id LIMIT 1", params).fetchone()
    return {"states": states, "kinds": kinds, "posted_today": posted_since(today),
            "posted_week": posted_since(week_start),
            "oldest": dict(zip(COLUMNS, oldest)) if oldest else None}


def failure_kinds(cur: Cursor) -> dict[str, int]:
    return {k: int(n) for k, n in cur.execute(
        f"SELECT failure_kind, COUNT(*) FROM {TABLE} WHERE failure_kind <> ''"
        " AND state IN ('failed', 'retry_scheduled', 'needs_attention') GROUP BY failure_kind")
        .fetchall()}


def status_row(cur: Cursor, invoice_id: str) -> dict[str, Any] | None:
    row = cur.execute(f"SELECT {', '.join(COLUMNS)} FROM {TABLE} WHERE id = ?",
                      (invoice_id,)).fetchone()
    return dict(zip(COLUMNS, row)) if row else None


_FILE_COLUMNS = ("id", "name", "kind", "size", "sha256", "outcome", "archived", "recorded_at")


def export_files(cur: Cursor, limit: int, offset: int = 0) -> list[dict[str, Any]]:
    """Export files, newest first, with the words on their outcome and how many invoices
    (by their current content) came from each."""
    rows = cur.execute(
        f"SELECT {', '.join('f.' + c for c in _FILE_COLUMNS)}, COALESCE(d.detail, ''),"
        f" (SELECT COUNT(*) FROM {TABLE} s WHERE s.file_name = f.name)"
        f" FROM {FILES} f LEFT JOIN {FILE_DETAILS} d ON d.id = f.id"
        " ORDER BY f.recorded_at DESC, f.id LIMIT ? OFFSET ?", (limit, offset)).fetchall()
    return [dict(zip((*_FILE_COLUMNS, "detail", "invoices"), r)) for r in rows]


def export_file(cur: Cursor, file_id: str) -> dict[str, Any] | None:
    row = cur.execute(f"SELECT {', '.join('f.' + c for c in _FILE_COLUMNS)},"
                      f" COALESCE(d.detail, '') FROM {FILES} f LEFT JOIN {FILE_DETAILS} d"
                      " ON d.id = f.id WHERE f.id = ?", (file_id,)).fetchone()
    return dict(zip((*_FILE_COLUMNS, "detail"), row)) if row else None


def invoices_of_file(cur: Cursor, name: str, limit: int = 1000) -> list[dict[str, Any]]:
    rows = cur.execute(f"SELECT {', '.join(COLUMNS)} FROM {TABLE} WHERE file_name = ?"
                       " ORDER BY vendor_id, invoice_number LIMIT ?", (name, limit)).fetchall()
    return [dict(zip(COLUMNS, r)) for r in rows]


def poll_runs(cur: Cursor, limit: int, eventful: bool = False) -> list[dict[str, Any]]:
    """The latest poll runs, newest first; `eventful`: only those that took a file or failed
    (a poll every minute that finds nothing new is not news)."""
    names = ("id", "source", "started_at", "ended_at", "listed", "taken", "skipped", "errors")
    where = " WHERE taken > 0 OR errors <> ''" if eventful else ""
    rows = cur.execute(f"SELECT {', '.join(names)} FROM {POLL_RUNS}{where}"
                       " ORDER BY started_at DESC LIMIT ?", (limit,)).fetchall()
    return [dict(zip(names, r)) for r in rows]
