"""The reconciliation report in four forms: a table for the terminal, JSON for scripts, CSV
(one row per invoice, spreadsheet-safe) and a self-contained HTML page a controller can open
and print (summary first, then each discrepancy and each invoice a person resolved or
dismissed; no script, no outside resource)."""
from __future__ import annotations

import html
import io
from dataclasses import fields
from decimal import Decimal, InvalidOperation
from typing import Any

import orjson

from projections.csvsafe import CsvWriter
from projections.reconcile import CATEGORIES, DISCREPANCIES, MATCHED, TITLES, Item

CSV_COLUMNS = ("category", "ledger_id", "company", "vendor_id", "invoice_number",
               "document_type", "currency", "total", "state", "ifs_invoice_id", "voucher",
               "reason", "differences")


def build(meta: dict[str, Any], counts: dict[str, int], totals: list[dict[str, Any]],
          items: list[Item]) -> dict[str, Any]:
    ordered = sorted(items, key=lambda i: (CATEGORIES.index(i.category), i.company,
                                           i.vendor_id, i.invoice_number))
    return {**meta, "ok": not any(counts[c] for c in DISCREPANCIES), "counts": counts,
            "totals": totals, "items": [_as_dict(i) for i in ordered]}


_ITEM_FIELDS = tuple(f.name for f in fields(Item))


def _as_dict(item: Item) -> dict[str, Any]:
    # dataclasses.asdict deep-copies every value: a third of the run on 100,000 invoices
    return {name: getattr(item, name) for name in _ITEM_FIELDS}


def _differences_text(item: dict[str, Any]) -> str:
    return "; ".join(f"{d['field']}: ledger {d['ledger']}, IFS {d['ifs']}"
                     + (f" (difference {d['difference']})" if d.get("difference") else "")
                     for d in item["differences"])


def render(report: dict[str, Any], fmt: str) -> str:
    return {"json": _json, "csv": _csv, "html": _html, "table": _table}[fmt](report)


def _json(report: dict[str, Any]) -> str:
    return orjson.dumps(report, option=orjson.OPT_INDENT_2).decode() + "\n"


def _csv(report: dict[str, Any]) -> str:
    buffer = io.StringIO()
    writer = CsvWriter(buffer)
    writer.row(CSV_COLUMNS)
    for item in report["items"]:
        values = dict(item, differences=_differences_text(item))
        try:
            values["total"] = Decimal(values["total"]) if values["total"] else ""
        except InvalidOperation:
            pass                                       # stays text, neutralised
        writer.row(values[c] for c in CSV_COLUMNS)
    return buffer.getvalue()


def _period_line(report: dict[str, Any]) -> str:
    return (f"company {report['company']}, {report['period_from']} to {report['period_to']}"
            f" by {report['by']} date ({report['timezone']})")


def _table(report: dict[str, Any]) -> str:
    lines = [f"Reconciliation: {_period_line(report)}",
             f"IFS read: {report['ifs_documents']} supplier invoices, {report['ifs_vouchers']}"
             f" vouchers in {report['ifs_requests']} requests", ""]
    lines.append(f"{'CATEGORY':<52} {'COMPANY':<8} {'CURRENCY':<8} {'COUNT':>7} {'TOTAL':>16}")
    for row in report["totals"]:
        lines.append(f"{TITLES[row['category']]:<52} {row['company']:<8} {row['currency']:<8}"
                     f" {row['count']:>7} {row['total']:>16}")
    if not report["totals"]:
        lines.append("no approved invoices in the period")
    for category in CATEGORIES:
        if category == MATCHED or not report["counts"][category]:    # listed: who, why
            continue
        lines += ["", f"{TITLES[category]} ({report['counts'][category]}):"]
        for item in report["items"]:
            if item["category"] == category:
                lines.append(f"  {item['vendor_id']}/{item['invoice_number']} {item['currency']}"
                             f" {item['total']}  [{item['state'] or 'IFS ' + item['ifs_invoice_id']}]"
                             f"  {item['reason']}")
                if item["differences"]:
                    lines.append(f"      {_differences_text(item)}")
    lines += ["", "everything matches" if report["ok"] else
              f"{sum(report['counts'][c] for c in DISCREPANCIES)} discrepancies"]
    return "\n".join(lines) + "\n"


_STYLE = """body{font:13px/1.4 system-ui,sans-serif;margin:2em;color:#111}
h1{font-size:20px}h2{font-size:16px;margin-top:1.6em;page-break-after:avoid}
table{border-collapse:collapse;width:100%;margin:.5em 0}
th,td{border:1px solid #bbb;padding:3px 6px;text-align:left;vertical-align:top}
td.n{text-align:right;font-variant-numeric:tabular-nums}th{background:#eee}
.ok{color:#065f16}.bad{color:#9b1c1c}tr{page-break-inside:avoid}
@media print{body{margin:0}}"""


def _html(report: dict[str, Any]) -> str:
    e = html.escape
    out = ["<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">",
           f"<title>Reconciliation {e(report['company'])} {e(report['period_from'])}"
           f" to {e(report['period_to'])}</title><style>{_STYLE}</style></head><body>",
           f"<h1>Reconciliation with IFS: {e(_period_line(report))}</h1>",
           f"<p>Generated {e(report['generated_at'])} by ml-connector"
           f" {e(report['connector_version'])}; IFS read: {report['ifs_documents']} supplier"
           f" invoices and {report['ifs_vouchers']} GL vouchers in {report['ifs_requests']}"
           " requests (read-only).</p>",
           f"<p class=\"{'ok' if report['ok'] else 'bad'}\"><strong>"
           + ("Everything matches." if report["ok"] else
              f"{sum(report['counts'][c] for c in DISCREPANCIES)} discrepancies.")
           + "</strong></p>", "<h2>Summary</h2><table><tr><th>Category</th><th>Company</th>"
           "<th>Currency</th><th>Count</th><th>Total</th></tr>"]
    for row in report["totals"]:
        out.append(f"<tr><td>{e(TITLES[row['category']])}</td><td>{e(row['company'])}</td>"
                   f"<td>{e(row['currency'])}</td><td class=\"n\">{row['count']}</td>"
                   f"<td class=\"n\">{e(row['total'])}</td></tr>")
    out.append("</table>")
    for category in CATEGORIES:
        if category == MATCHED or not report["counts"][category]:    # listed: who, why
            continue
        out.append(f"<h2>{e(TITLES[category])} ({report['counts'][category]})</h2><table><tr>"
                   "<th>Vendor</th><th>Invoice</th><th>Type</th><th>Currency</th><th>Total</th>"
                   "<th>Ledger state</th><th>IFS InvoiceId</th><th>Voucher</th><th>Why</th>"
                   "<th>Fields that differ</th></tr>")
        for item in report["items"]:
            if item["category"] != category:
                continue
            out.append("<tr>" + "".join(f"<td>{e(str(item[k]))}</td>" for k in (
                "vendor_id", "invoice_number", "document_type", "currency"))
                + f"<td class=\"n\">{e(item['total'])}</td>"
                + "".join(f"<td>{e(str(item[k]))}</td>" for k in (
                    "state", "ifs_invoice_id", "voucher", "reason"))
                + f"<td>{e(_differences_text(item))}</td></tr>")
        out.append("</table>")
    out.append("<p>Ledger ids (IFS ExternalRef) of every invoice are in the JSON and CSV forms"
               " of this report.</p></body></html>\n")
    return "".join(out)
