"""Invoice CSV (stampli-exports.md §2): one row per invoice line, header fields repeated.

Two passes keep memory bounded on a 1 GB export whose invoices' rows need not be adjacent:

1. Stream the file (strict decoding, csv module), map columns through the template, and spill
   every row to a temporary SQLite file keyed by invoice identity (IFS company, vendor, document
   type, normalized number). Anything that makes the whole file unreadable (encoding, missing
   column, broken CSV) raises ExportFileError here, before anything is yielded.
2. Read the spill back grouped by identity, in first-seen order, and apply the rules to one
   invoice at a time.

A row without invoice number, vendor or document type cannot be attributed: it becomes a
RejectedRow. Every other problem is a RuleViolation on its invoice.
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import msgspec

from adapters.settings import InvoiceFileSettings
from adapters.stampli.csvfile import CsvExport
from adapters.stampli.rules import Context, Row, build_invoice
from adapters.stampli.spill import Spill
from adapters.stampli.templates import INVOICES
from adapters.stampli.values import Formats
from ledger.model import ParsedInvoice, RejectedRow, invoice_identity

IDENTITY = ("invoice_number", "vendor_id", "document_type")


def company_of(stampli_company: str, default_company: str, companies: dict[str, str]) -> str:
    """The IFS company: the configured mapping of Stampli's CompanyID, else the default."""
    return companies.get(stampli_company.strip(), default_company) if stampli_company \
        else default_company


def read_csv_invoices(path: Path, settings: InvoiceFileSettings, *, default_company: str,
                      companies: dict[str, str]) -> Iterator[ParsedInvoice | RejectedRow]:
    path = Path(path)
    formats = Formats.of(settings, INVOICES.config_key, path.name)
    spill = Spill()
    try:
        # ---- pass 1: validate the whole file, spill rows by identity
        with CsvExport(path, settings, INVOICES) as export:
            template = export.template
            assert template is not None
            fields = tuple(template.index)
            for line, cells in export.records():
                values = template.pick(cells)
                missing = next((f for f in IDENTITY if not values.get(f)), None)
                if missing:
                    spill.add(None, msgspec.msgpack.encode(
                        ("rejected", line, missing,
                         f"{template.labels[missing]} is empty, so the row cannot be "
                         f"attributed to an invoice; fix it in Stampli and export again")))
                    continue
                shape = ""
                extra = cells[template.width:]
                if len(cells) < template.width or any(c.strip() for c in extra):
                    shape = (f"the row has {len(cells)} columns but the header has "
                             f"{template.width}; a value probably holds an unquoted "
                             f"{settings.delimiter!r} or a line break, so the columns shifted")
                company = company_of(values.get("company_id", ""), default_company, companies)
                key = invoice_identity(company, values["vendor_id"], values["document_type"],
                                       values["invoice_number"])
                spill.add(key, msgspec.msgpack.encode(
                    ("row", line, [values[f] for f in fields], shape)))
        # ---- pass 2: one invoice at a time, first-seen order
        groups = spill.groups()
        try:
            for group in groups:
                records = [msgspec.msgpack.decode(data) for data in group]
                if records[0][0] == "rejected":
                    _kind, line, name, message = records[0]
                    yield RejectedRow(line=line, field=name, message=message)
                    continue
                rows = [Row(line, dict(zip(fields, vals)),
                            [("row_shape", "", shape)] if shape else [])
                        for _kind, line, vals, shape in records]
                company = company_of(rows[0].get("company_id"), default_company, companies)
                context = Context(company=company, formats=formats, labels=template.labels)
                yield build_invoice(rows, rows, context, [row.line for row in rows])
        finally:
            groups.close()
    finally:
        spill.close()
