"""The daily digest an AP lead reads: what was posted yesterday, the open exceptions by age
and the oldest one, with a link to the web workspace when one is configured."""
from __future__ import annotations

from datetime import datetime, time, timedelta, timezone, tzinfo
from decimal import Decimal, InvalidOperation

from ledger.status import OPEN_STATES, State
from projections.status import TABLE
from projections.store import Cursor

AGES = ((1, "under 1 day"), (3, "1 to 3 days"), (7, "3 to 7 days"), (None, "over 7 days"))


def _utc(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat()


def compose_digest(cur: Cursor, now: datetime, tz: tzinfo,
                   workspace_url: str = "") -> tuple[str, str]:
    today = now.astimezone(tz).date()
    start = datetime.combine(today - timedelta(days=1), time(0), tzinfo=tz)
    end = datetime.combine(today, time(0), tzinfo=tz)
    posted: dict[str, list] = {}
    for currency, total in cur.execute(
            f"SELECT currency, total FROM {TABLE} WHERE state = ? AND updated_at >= ?"
            " AND updated_at < ?", (State.POSTED, _utc(start), _utc(end))).fetchall():
        slot = posted.setdefault(currency or "?", [0, Decimal(0)])
        slot[0] += 1
        try:
            slot[1] += Decimal(total or 0)
        except InvalidOperation:
            pass
    marks = ",".join("?" * len(OPEN_STATES))
    open_rows = cur.execute(
        f"SELECT vendor_id, invoice_number, currency, total, state, failure_kind,"
        f" failure_message, updated_at FROM {TABLE} WHERE state IN ({marks})"
        " ORDER BY updated_at", OPEN_STATES).fetchall()
    count = sum(n for n, _ in posted.values())
    lines = [f"Posted {today - timedelta(days=1)}: {count} invoice{'s' * (count != 1)}"
             + ("" if not posted else " (" + ", ".join(
                 f"{n} {c} {t}" for c, (n, t) in sorted(posted.items())) + ")")]
    lines.append(f"Open exceptions: {len(open_rows)}")
    buckets = dict.fromkeys((label for _, label in AGES), 0)
    for row in open_rows:
        try:
            age = (now - datetime.fromisoformat(row[7])).total_seconds() / 86400
        except ValueError:
            age = 0
        label = next(lbl for limit, lbl in AGES if limit is None or age < limit)
        buckets[label] += 1
    if open_rows:
        lines += [f"  {label}: {n}" for label, n in buckets.items() if n]
        vendor, number, currency, total, state, kind, message, since = open_rows[0]
        lines.append(f"Oldest: {vendor}/{number} {currency} {total}, {state}"
                     f"{f' ({kind})' if kind else ''} since {since[:16]}: {message}")
    if workspace_url:
        lines.append(f"Workspace: {workspace_url}")
    subject = (f"ml-connector digest {today}: {count} posted yesterday,"
               f" {len(open_rows)} open exception{'s' * (len(open_rows) != 1)}")
    return subject, "\n".join(lines)


def invoice_details(cur: Cursor, ref: str) -> tuple[str, str]:
    """(" (USD 1350.00)", current state) of a VENDOR/NUMBER ref; ("", "") if unknown."""
    vendor, _, number = ref.partition("/")
    row = cur.execute(f"SELECT currency, total, state FROM {TABLE} WHERE vendor_id = ? AND"
                      " invoice_number = ? ORDER BY updated_at DESC LIMIT 1",
                      (vendor, number)).fetchone()
    if not row:
        return "", ""
    return (f" ({row[0]} {row[1]})" if row[1] else ""), row[2]
