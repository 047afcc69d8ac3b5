"""Reconciliation at close: what Stampli approved (the ledger's parsed exports), what the
ledger says happened, and what IFS holds now, compared invoice by invoice.

The ledger side is one pass over the notification log keeping only the period's invoices
(their latest content), joined with the status view for state and outcome. The IFS side is
given as plain documents (read by adapters/ifs/reconcile.py); `compare` is pure."""
from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timezone, tzinfo
from decimal import Decimal, InvalidOperation
from typing import Any

from ledger import invoice as _topics  # noqa: F401  (registers the explicit topics)
from ledger.app import Ledger
from ledger.codec import decode_state, upcast
from ledger.model import normalize_invoice_number
from ledger.money import MoneyError, quantize
from ledger.status import BY_HAND as BY_HAND_STATES
from ledger.status import COLUMNS as STATUS_COLUMNS
from ledger.status import State
from projections.base import select_in
from projections.status import TABLE as STATUS_TABLE
from projections.store import ViewStore

MATCHED = "matched"
NOT_IN_IFS = "approved_not_in_ifs"
MISSING_OR_CHANGED = "posted_missing_or_changed_in_ifs"
UNKNOWN = "in_ifs_unknown_to_ledger"
VOUCHER = "voucher_missing_or_not_approved"
BY_HAND = "resolved_by_hand"
DISMISSED = "dismissed"
CATEGORIES = (MATCHED, NOT_IN_IFS, MISSING_OR_CHANGED, UNKNOWN, VOUCHER, BY_HAND, DISMISSED)
TITLES = {MATCHED: "Matched", NOT_IN_IFS: "Approved but not in IFS",
          MISSING_OR_CHANGED: "Posted in the ledger but missing or changed in IFS",
          UNKNOWN: "In IFS with our ExternalRef but unknown to the ledger",
          VOUCHER: "GL voucher missing or not approved", BY_HAND: "Resolved by hand",
          DISMISSED: "Dismissed (never to go to IFS)"}
DISCREPANCIES = frozenset({NOT_IN_IFS, MISSING_OR_CHANGED, UNKNOWN, VOUCHER})
_CONTENT_TOPICS = {"ml_connector.invoice.Parsed", "ml_connector.invoice.Amended"}
# What a person did instead of the connector: shown with the invoice while it is so.
_OPERATOR_TOPICS = {"ml_connector.invoice.ResolvedManually": State.RESOLVED,
                    "ml_connector.invoice.Dismissed": State.DISMISSED}


@dataclass(slots=True)
class Period:
    company: str
    first: date
    last: date                       # inclusive
    by: str                          # "approved" or "invoice"
    tz: tzinfo = timezone.utc

    def date_of(self, invoice: dict[str, Any]) -> str:
        """The invoice's date for this selection, as an ISO date in the report's time zone."""
        if self.by == "invoice":
            return str(invoice.get("invoice_date") or "")[:10]
        stamp = invoice.get("approved_at") or invoice.get("exported_at") or ""
        try:
            moment = datetime.fromisoformat(str(stamp).replace("Z", "+00:00"))
        except ValueError:
            return str(stamp)[:10]
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=timezone.utc)
        return moment.astimezone(self.tz).date().isoformat()

    def holds(self, iso_date: str) -> bool:
        return self.first.isoformat() <= iso_date <= self.last.isoformat()


@dataclass(slots=True)
class Item:
    """One line of the report: an invoice (or an IFS document) and where it landed."""
    category: str
    ledger_id: str
    company: str
    vendor_id: str
    invoice_number: str
    document_type: str
    currency: str
    total: str
    state: str = ""
    reason: str = ""
    ifs_invoice_id: str = ""
    voucher: str = ""
    differences: list[dict[str, str]] = field(default_factory=list)


def period_invoices(ledger: Ledger, store: ViewStore, period: Period,
                    approved: Callable[[str], bool], page_size: int = 5000
                    ) -> dict[str, dict[str, Any]]:
    """The period's approved invoices of the company: latest content plus status row, by
    ledger id. Memory holds the period's invoices only."""
    content: dict[str, dict[str, Any]] = {}
    handled: dict[str, dict[str, Any]] = {}     # ledger id -> its last operator event's data
    start = 1
    while True:
        page = ledger.notification_rows(start, page_size)
        if not page:
            break
        for _, stream_id, _, topic, state in page:
            if topic in _OPERATOR_TOPICS and stream_id in content:
                handled[stream_id] = {**upcast(topic, decode_state(state)),
                                      "state": _OPERATOR_TOPICS[topic]}
            if topic not in _CONTENT_TOPICS:
                continue
            invoice = upcast(topic, decode_state(state))["invoice"]
            if (invoice.get("company") == period.company and period.holds(period.date_of(invoice))
                    and approved(invoice.get("approval_status", ""))):
                content[stream_id] = {k: invoice.get(k) for k in (
                    "company", "vendor_id", "vendor_name", "invoice_number", "document_type",
                    "invoice_date", "currency", "net", "tax", "total", "approved_at")}
            else:
                content.pop(stream_id, None)       # amended out of the period
        start = page[-1][0] + 1
    with store.transaction() as cur:
        rows = select_in(cur, f"SELECT {', '.join(STATUS_COLUMNS)} FROM {STATUS_TABLE}"
                         " WHERE id IN", list(content))
    for row in rows:
        status = dict(zip(STATUS_COLUMNS, row))
        content[status["id"]]["status"] = status
    for ledger_id, data in handled.items():
        if ledger_id in content:
            content[ledger_id]["handled"] = data
    return content


def _amount(value: Any) -> Decimal | None:
    try:
        return Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None


def _shown(amount: Decimal, currency: str) -> str:
    """An amount written to the currency's minor unit (as it is when it does not fit)."""
    try:
        return str(quantize(amount, currency))
    except (MoneyError, InvalidOperation):
        return str(amount)


def _differences(inv: dict[str, Any], doc: dict[str, Any]) -> list[dict[str, str]]:
    """Fields IFS holds otherwise than posted; amounts compared to the currency's minor unit."""
    status, currency = inv["status"], inv.get("currency") or ""
    expected = {"InvoiceNo": inv.get("invoice_number"), "Identity": status.get("supplier_id"),
                "InvoiceType": "CREDIT" if inv.get("document_type") == "CreditNote"
                else "INVOICE", "InvoiceDate": inv.get("invoice_date"), "Currency": currency,
                "InvoiceId": status.get("ifs_invoice_id")}
    out = [{"field": name, "ledger": str(value), "ifs": str(doc.get(name, ""))}
           for name, value in expected.items()
           if value and str(doc.get(name, "")) != str(value)]
    for name, key in (("NetCurrAmount", "net"), ("VatCurrAmount", "tax"),
                      ("GrossCurrAmount", "total")):
        ours, theirs = _amount(inv.get(key)), _amount(doc.get(name))
        if ours is not None and ours != theirs:        # numerically: 1350.0 == 1350.00
            out.append({"field": name, "ledger": _shown(ours, currency),
                        "ifs": str(doc.get(name, "")),
                        "difference": _shown(theirs - ours, currency)
                        if theirs is not None else ""})
    if doc.get("Objstate") not in (None, "", "Posted"):
        out.append({"field": "Objstate", "ledger": "Posted", "ifs": str(doc["Objstate"])})
    return out


def _voucher_text(v: dict[str, Any] | None) -> str:
    if not v:
        return ""
    return f"{v.get('AccountingYear')}/{v.get('VoucherType')}/{v.get('VoucherNo')}"


class Documents:
    """IFS documents indexed for matching: by ExternalRef, and invoices by (supplier, number)."""

    def __init__(self, invoices: Iterable[dict[str, Any]],
                 vouchers: Iterable[dict[str, Any]]) -> None:
        self.invoices: dict[str, dict[str, Any]] = {}
        self.by_number: dict[tuple[str, str], dict[str, Any]] = {}
        self.vouchers: dict[str, dict[str, Any]] = {}
        self.add(invoices, vouchers)

    def add(self, invoices: Iterable[dict[str, Any]], vouchers: Iterable[dict[str, Any]]) -> None:
        for doc in invoices:
            if doc.get("ExternalRef"):
                self.invoices.setdefault(doc["ExternalRef"], doc)
            key = (str(doc.get("Identity", "")), normalize_invoice_number(
                str(doc.get("InvoiceNo", ""))))
            self.by_number.setdefault(key, doc)
        for v in vouchers:
            if v.get("ExternalRef"):
                self.vouchers.setdefault(v["ExternalRef"], v)

    def find(self, ledger_id: str, inv: dict[str, Any]) -> tuple[dict[str, Any] | None, str]:
        doc = self.invoices.get(ledger_id)
        if doc is not None:
            return doc, "ExternalRef"
        supplier = inv["status"].get("supplier_id") or inv.get("vendor_id") or ""
        doc = self.by_number.get((supplier, normalize_invoice_number(
            str(inv.get("invoice_number", "")))))
        return (doc, "supplier and invoice number") if doc is not None else (None, "")


def compare(invoices: dict[str, dict[str, Any]], docs: Documents,
            known: Callable[[list[str]], set[str]], expect_voucher: bool) -> list[Item]:
    """Every period invoice in its category, then IFS documents carrying an ExternalRef the
    ledger has never recorded. `known(ids)`: which of these ids the ledger holds at all."""
    items: list[Item] = []
    used: set[str] = set()
    for ledger_id, inv in invoices.items():
        status = inv.get("status") or {"state": "", "supplier_id": ""}
        inv["status"] = status
        item = Item("", ledger_id, inv.get("company") or "", inv.get("vendor_id") or "",
                    inv.get("invoice_number") or "", inv.get("document_type") or "",
                    inv.get("currency") or "", str(inv.get("total") or ""),
                    state=status["state"], ifs_invoice_id=status.get("ifs_invoice_id") or "")
        doc, how = docs.find(ledger_id, inv)
        item.voucher = _voucher_text(docs.vouchers.get(ledger_id))
        if doc is not None and doc.get("ExternalRef"):
            used.add(doc["ExternalRef"])
        handled = inv.get("handled") or {}
        if status["state"] in BY_HAND_STATES and handled.get("state") == status["state"]:
            _by_a_person(item, handled, doc, how)
        elif status["state"] != State.POSTED:
            item.category = NOT_IN_IFS
            reason = status.get("failure_message") or f"ledger state {status['state']}"
            if status.get("failure_kind"):
                reason = f"{status['failure_kind']}: {reason}"
            if doc is not None:
                reason += (f"; IFS holds InvoiceId {doc.get('InvoiceId')} ({doc.get('Objstate')},"
                           f" found by {how}) that the ledger has not recorded")
            item.reason = reason
        elif doc is None:
            item.category, item.reason = MISSING_OR_CHANGED, (
                f"IFS holds no supplier invoice with ExternalRef {ledger_id} nor invoice"
                f" {item.invoice_number} of supplier {status.get('supplier_id')}: deleted in IFS?")
        else:
            diffs = _differences(inv, doc)
            voucher = docs.vouchers.get(ledger_id)
            if how != "ExternalRef":
                diffs.insert(0, {"field": "ExternalRef", "ledger": ledger_id,
                                 "ifs": str(doc.get("ExternalRef") or "")})
            if diffs:
                item.category, item.differences = MISSING_OR_CHANGED, diffs
                item.reason = "changed in IFS: " + ", ".join(d["field"] for d in diffs)
            elif expect_voucher and (voucher is None or voucher.get("Objstate") != "Approved"):
                item.category = VOUCHER
                item.reason = ("no GL voucher with this ExternalRef" if voucher is None else
                               f"GL voucher {item.voucher} is {voucher.get('Objstate')}")
            else:
                item.category = MATCHED
        items.append(item)
    strangers = [ref for ref in docs.invoices if ref not in invoices and ref not in used]
    if strangers:
        recorded = known(strangers)
        for ref in strangers:
            if ref in recorded:
                continue                    # another period's invoice, or another company's
            doc = docs.invoices[ref]
            items.append(Item(UNKNOWN, ref, str(doc.get("Company", "")),
                              str(doc.get("Identity", "")), str(doc.get("InvoiceNo", "")),
                              str(doc.get("InvoiceType", "")), str(doc.get("Currency", "")),
                              str(doc.get("GrossCurrAmount", "")),
                              ifs_invoice_id=str(doc.get("InvoiceId", "")),
                              voucher=_voucher_text(docs.vouchers.get(ref)),
                              reason="IFS holds this document with an ExternalRef the ledger"
                                     " never recorded (another connector or a restored ledger?)"))
    return items


def _by_a_person(item: Item, handled: dict[str, Any], doc: dict[str, Any] | None,
                 how: str) -> None:
    """An invoice a person resolved in IFS by hand, or dismissed: who, why, and for a
    resolution the matching recorded when it was made (not a discrepancy: a person decided)."""
    who = f"by {handled.get('operator', '')}: {handled.get('reason', '')}"
    if handled["state"] == State.DISMISSED:
        item.category, item.reason = DISMISSED, f"dismissed {who}"
        if doc is not None:
            item.reason += (f"; IFS holds InvoiceId {doc.get('InvoiceId')} for it (found by"
                            f" {how}): resolve it instead?")
        return
    item.category = BY_HAND
    item.ifs_invoice_id = str(handled.get("ifs_invoice_id", ""))
    item.differences = [{"field": d.get("field", ""), "ledger": d.get("invoice", ""),
                         "ifs": d.get("ifs", "")} for d in handled.get("differences") or ()]
    if handled.get("matches"):
        item.reason = f"IFS InvoiceId {item.ifs_invoice_id} matches the invoice; resolved {who}"
    else:
        item.reason = (f"IFS InvoiceId {item.ifs_invoice_id} differs from the invoice"
                       f" ({', '.join(d['field'] for d in item.differences)}); "
                       f"{'forced' if handled.get('forced') else 'resolved'} {who}")


def summarize(items: list[Item]) -> tuple[dict[str, int], list[dict[str, Any]]]:
    """(count per category, [{category, company, currency, count, total}])."""
    counts = dict.fromkeys(CATEGORIES, 0)
    totals: dict[tuple[str, str, str], list[Any]] = {}
    for item in items:
        counts[item.category] += 1
        slot = totals.setdefault((item.category, item.company, item.currency), [0, Decimal(0)])
        slot[0] += 1
        try:
            slot[1] += Decimal(item.total or "0")
        except InvalidOperation:
            pass
    rows = [{"category": c, "company": co, "currency": cu, "count": n, "total": str(t)}
            for (c, co, cu), (n, t) in sorted(totals.items(),
                                              key=lambda kv: (CATEGORIES.index(kv[0][0]),
                                                              kv[0][1], kv[0][2]))]
    return counts, rows


def invoice_date_window(invoices: dict[str, dict[str, Any]], period: Period) -> tuple[str, str]:
    """The IFS invoice dates to read: the period, widened to every period invoice's date."""
    dates = [period.first.isoformat(), period.last.isoformat()]
    for inv in invoices.values():
        value = str(inv.get("invoice_date") or "")
        try:
            dates.append(date.fromisoformat(value[:10]).isoformat())
        except ValueError:
            continue
    return min(dates), max(dates)


def period_from_options(company: str, first: str | None, last: str | None, by: str,
                        tz_name: str = "UTC", today: date | None = None) -> Period:
    """--from/--to as given, else last calendar month in the connector's time zone."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        tz = ZoneInfo(tz_name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {tz_name!r}") from None
    today = today or datetime.now(tz).date()
    month_start = today.replace(day=1)
    previous_end = month_start.fromordinal(month_start.toordinal() - 1)
    try:
        start = date.fromisoformat(first) if first else previous_end.replace(day=1)
        end = date.fromisoformat(last) if last else (previous_end if not first else today)
    except ValueError as exc:
        raise ValueError(f"--from/--to: {exc}; give dates as YYYY-MM-DD") from None
    if end < start:
        raise ValueError(f"--to {end} is before --from {start}")
    return Period(company, start, end, by, tz)
