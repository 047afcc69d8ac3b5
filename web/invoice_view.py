"""One invoice as the workspace shows it: the status row, the content as parsed (header and
lines), where it came from (file, sha256, lines), and every event with its IFS exchanges."""
from __future__ import annotations

import json
from typing import Any
from uuid import UUID

from ledger.errors import LedgerError
from projections import workspace as views
from projections.files import FILES
from web.guidance import kind_of, next_step

# Shown in the header table, in this order, when present.
HEADER_FIELDS = (("document_type", "Type"), ("invoice_number", "Invoice number"),
                 ("vendor_id", "Vendor"), ("vendor_name", "Vendor name"),
                 ("company", "IFS company"), ("invoice_date", "Invoice date"),
                 ("due_date", "Due date"), ("currency", "Currency"), ("net", "Net"),
                 ("tax", "Tax"), ("total", "Total"), ("po_number", "PO"),
                 ("approval_status", "Stampli approval"), ("approved_by", "Approved by"),
                 ("approved_at", "Approved at"), ("stampli_invoice_id", "Stampli id"),
                 ("exported_at", "Exported at"))
# Event fields the timeline shows elsewhere or that say nothing to a person.
HIDDEN = {"connector_version", "invoice", "exchanges", "originator_topic"}


def invoice_context(rt: Any, invoice_id: str) -> dict[str, Any] | None:
    rt.projector.catch_up()
    with rt.projector.store.transaction() as cur:
        row = views.status_row(cur, invoice_id)
    if row is None:
        return None
    try:
        aggregate = rt.ledger.invoice(UUID(invoice_id))
        history = rt.ledger.history(UUID(invoice_id))
    except LedgerError:
        return None
    content = aggregate.content or {}
    source = _source(rt, aggregate, history)
    return {
        "row": row, "kind": kind_of(row), "next_step": next_step(row),
        "header": [(label, content.get(key)) for key, label in HEADER_FIELDS
                   if content.get(key) not in (None, "")],
        "lines": content.get("lines") or [],
        "violations": aggregate.violations,
        "source": source,
        "timeline": [_event(e) for e in history],
        "ref": aggregate.ref,
    }


def _source(rt: Any, aggregate: Any, history: list[dict[str, Any]]) -> dict[str, Any] | None:
    if aggregate.content_file is None:
        return None
    name, sha256 = aggregate.content_file
    lines: list[int] = []
    for event in history:          # the locations of the latest sighting of this content
        data = event["data"]
        if data.get("file_sha256") == sha256 and data.get("locations"):
            lines = list(data["locations"])
    with rt.projector.store.transaction() as cur:
        found = cur.execute(f"SELECT id FROM {FILES} WHERE sha256 = ? ORDER BY recorded_at"
                            " LIMIT 1", (sha256,)).fetchone()
    return {"name": name, "sha256": sha256, "lines": lines,
            "file_id": found[0] if found else ""}


def _event(event: dict[str, Any]) -> dict[str, Any]:
    data = event["data"]
    fields = [(k, _brief(v)) for k, v in data.items() if k not in HIDDEN]
    exchanges = [_exchange(x) for x in data.get("exchanges") or []]
    return {"version": event["version"], "type": event["type"],
            "recorded_at": event["recorded_at"], "fields": fields, "exchanges": exchanges,
            "by": data.get("operator", ""), "reason": data.get("reason", "")}


def _exchange(x: dict[str, Any]) -> dict[str, Any]:
    def text(value: Any) -> str:
        if isinstance(value, (dict, list)):
            return json.dumps(value, indent=2, ensure_ascii=False, default=str)
        value = str(value or "")
        try:
            return json.dumps(json.loads(value), indent=2, ensure_ascii=False)
        except ValueError:
            return value
    return {"method": x.get("method", ""), "url": x.get("url", ""), "at": x.get("at", ""),
            "status": x.get("status", ""), "request": text(x.get("request_body", x.get("body"))),
            "response": text(x.get("response_body", x.get("response"))),
            "summary": f"{x.get('method', '')} {_short_url(x.get('url', ''))}"
                       f" → {x.get('status') or 'no answer'}"}


def _short_url(url: str) -> str:
    """The entity part of an OData URL: what a person recognises (the full URL is above)."""
    marker = "/projection/v1/"
    return url.split(marker, 1)[1] if marker in url else url


def _brief(value: Any) -> str:
    if isinstance(value, (dict, list)):
        text = json.dumps(value, ensure_ascii=False, default=str)
    else:
        text = str(value)
    return text if len(text) <= 300 else text[:297] + "…"
