"""The posting register: one flat row per document IFS received, for the auditor at close.

Rows come from the ledger's notification log in recorded order. Each kind of row is one small
function keyed by the event topic that makes it (`ROW_SOURCES`): a Posted event gives a
"posted" row, a ResolvedManually a "resolved_by_hand" row and a Dismissed a "dismissed" row
(operator, reason, when). A row needs the invoice's content as it was posted (or handled),
so its stream is read when that event is met: memory holds one page of the log and one
stream, whatever the size of the ledger (a million rows stream through in bounded
memory)."""
from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterator
from datetime import datetime, tzinfo
from decimal import Decimal
from typing import Any
from uuid import UUID

import orjson

from ledger import invoice as _topics  # noqa: F401  (registers the explicit topics)
from ledger.app import Ledger
from ledger.codec import decode_state, event_type, upcast
from projections.csvsafe import csv_line

COLUMNS = ("kind", "company", "vendor_id", "vendor_name", "ifs_supplier", "invoice_number",
           "document_type", "invoice_date", "due_date", "approved_at", "approved_by",
           "currency", "net", "tax", "total", "ifs_invoice_id", "voucher_year", "voucher_type",
           "voucher_no", "posted_at", "found_existing", "source_file", "source_sha256",
           "line_count", "operator", "reason", "matching", "handled_at", "ledger_id",
           "connector_version")
AMOUNTS = ("net", "tax", "total")
_INVOICE_TOPICS = "ml_connector.invoice."

StreamEvents = list[tuple[str, dict[str, Any]]]     # (event type, data), oldest first


def stream_events(ledger: Ledger, stream_id: str, upto: int | None = None) -> StreamEvents:
    """One invoice's events as plain data (no aggregate built), up to version `upto`."""
    out: StreamEvents = []
    for stored in ledger.recorder.select_events(UUID(stream_id), lte=upto):
        out.append((event_type(stored.topic), upcast(stored.topic, decode_state(stored.state))))
    return out


def _identity_and_content(events: StreamEvents) -> tuple[dict, dict, str]:
    """(Discovered data, the latest content event's data, the supplier id)."""
    discovered: dict[str, Any] = {}
    content: dict[str, Any] = {}
    supplier = ""
    for kind, data in events:
        if kind == "Discovered":
            discovered = data
        elif kind in ("Parsed", "Amended"):
            content = data
        elif kind == "VendorResolved":
            supplier = data.get("supplier_id", "")
    return discovered, content, supplier


class RecentStreams:
    """What the register needs of the invoices whose events were read last, so a Posted
    event whose invoice was discovered and parsed shortly before (the usual case: one sync)
    costs no query. Holds at most `size` invoices (bounded memory), oldest dropped first."""

    WANTED = {"Discovered", "Parsed", "Amended", "VendorResolved"}

    def __init__(self, size: int = 20_000) -> None:
        self.size = size
        self._known: OrderedDict[str, StreamEvents] = OrderedDict()

    def add(self, stream_id: str, kind: str, data: dict[str, Any]) -> None:
        events = self._known.pop(stream_id, None)
        if events is None:
            if kind != "Discovered":
                return                  # its start was dropped: read the stream when needed
            events = []
        if kind in ("Parsed", "Amended"):   # keep only the latest content, compactly
            invoice = data.get("invoice") or {}
            header = {k: v for k, v in invoice.items() if k != "lines"}
            header["line_count"] = len(invoice.get("lines") or ())
            data = {"invoice": header, "file_name": data.get("file_name"),
                    "file_sha256": data.get("file_sha256")}
            events = [e for e in events if e[0] not in ("Parsed", "Amended")]
        events.append((kind, data))
        self._known[stream_id] = events
        if len(self._known) > self.size:
            self._known.popitem(last=False)

    def get(self, stream_id: str) -> StreamEvents | None:
        return self._known.get(stream_id)


def _base_row(stream_id: str, events: StreamEvents) -> dict[str, Any]:
    discovered, content, supplier = _identity_and_content(events)
    invoice = content.get("invoice") or {}
    row = dict.fromkeys(COLUMNS, "")
    row.update(
        ledger_id=stream_id, company=discovered.get("company", invoice.get("company", "")),
        vendor_id=discovered.get("vendor_id", invoice.get("vendor_id", "")),
        vendor_name=invoice.get("vendor_name", ""), ifs_supplier=supplier,
        invoice_number=invoice.get("invoice_number", discovered.get("invoice_number", "")),
        document_type=discovered.get("document_type", invoice.get("document_type", "")),
        invoice_date=invoice.get("invoice_date", ""), due_date=invoice.get("due_date", ""),
        approved_at=invoice.get("approved_at", ""), approved_by=invoice.get("approved_by", ""),
        currency=invoice.get("currency", ""),
        net=invoice.get("net") or "", tax=invoice.get("tax") or "",
        total=invoice.get("total") or "",
        source_file=content.get("file_name", ""), source_sha256=content.get("file_sha256", ""),
        line_count=invoice.get("line_count", len(invoice.get("lines") or ())))
    return row


def posted_row(ledger: Ledger, event: dict[str, Any]) -> dict[str, Any]:
    data = event["data"]
    events = event.get("recent") or stream_events(ledger, event["stream_id"], event["version"])
    row = _base_row(event["stream_id"], events)
    voucher = data.get("voucher") or {}
    row.update(kind="posted", ifs_invoice_id=str(data.get("ifs_invoice_id", "")),
               voucher_year=str(voucher.get("AccountingYear", "")),
               voucher_type=str(voucher.get("VoucherType", "")),
               voucher_no=str(voucher.get("VoucherNo", "")),
               posted_at=event["recorded_at"], found_existing=bool(data.get("found_existing")),
               connector_version=data.get("connector_version", ""))
    return row


def _operator_row(ledger: Ledger, event: dict[str, Any], kind: str) -> dict[str, Any]:
    """The invoice as Stampli approved it, and who handled it instead of the connector."""
    data = event["data"]
    events = event.get("recent") or stream_events(ledger, event["stream_id"], event["version"])
    row = _base_row(event["stream_id"], events)
    row.update(kind=kind, operator=data.get("operator", ""), reason=data.get("reason", ""),
               handled_at=event["recorded_at"], connector_version=data.get("connector_version", ""))
    return row


def resolved_row(ledger: Ledger, event: dict[str, Any]) -> dict[str, Any]:
    """A person entered the invoice in IFS: its InvoiceId, and whether it matched the invoice
    or was resolved in spite of differences (`forced: field, ...`)."""
    data = event["data"]
    row = _operator_row(ledger, event, "resolved_by_hand")
    differing = ", ".join(d.get("field", "") for d in data.get("differences") or ())
    row.update(ifs_invoice_id=str(data.get("ifs_invoice_id", "")),
               matching="matches" if data.get("matches") else
               f"{'forced' if data.get('forced') else 'differs'}: {differing}")
    return row


def dismissed_row(ledger: Ledger, event: dict[str, Any]) -> dict[str, Any]:
    return _operator_row(ledger, event, "dismissed")


# Topic of the event that makes a row -> the function that builds it.
ROW_SOURCES: dict[str, Callable[[Ledger, dict[str, Any]], dict[str, Any]]] = {
    "ml_connector.invoice.Posted": posted_row,
    "ml_connector.invoice.ResolvedManually": resolved_row,
    "ml_connector.invoice.Dismissed": dismissed_row,
}


def iter_register(ledger: Ledger, since: str = "", until: str = "", tz: tzinfo | None = None,
                  page_size: int = 2000, recent: int = 20_000) -> Iterator[dict[str, Any]]:
    """Register rows whose event was recorded in [since, until) (normalised ISO strings),
    times shown in `tz` (connector.timezone) with their offset."""
    start = 1
    known = RecentStreams(recent)
    while True:
        page = ledger.notification_rows(start, page_size)
        if not page:
            return
        for position, stream_id, version, topic, state in page:
            kind = event_type(topic)
            if kind in RecentStreams.WANTED and topic.startswith(_INVOICE_TOPICS):
                known.add(stream_id, kind, upcast(topic, decode_state(state)))
                continue
            build = ROW_SOURCES.get(topic)
            if build is None:
                continue
            data = upcast(topic, decode_state(state))
            recorded_at = data.get("timestamp", "")
            if (since and recorded_at < since) or (until and recorded_at >= until):
                continue
            shown = (datetime.fromisoformat(recorded_at).astimezone(tz).isoformat()
                     if tz is not None and recorded_at else recorded_at)
            yield build(ledger, {"position": position, "stream_id": stream_id,
                                 "version": version, "recorded_at": shown, "data": data,
                                 "recent": known.get(stream_id)})
        start = page[-1][0] + 1


def csv_header() -> str:
    return csv_line(COLUMNS)


def to_csv(row: dict[str, Any]) -> str:
    """Amounts as numbers, every text cell neutralised against formulas."""
    return csv_line(Decimal(row[c]) if c in AMOUNTS and row[c] != "" else row[c]
                    for c in COLUMNS)


def to_jsonl(row: dict[str, Any]) -> str:
    """Amounts as decimal strings, exactly as recorded."""
    return orjson.dumps(row).decode() + "\n"
