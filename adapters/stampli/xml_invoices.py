"""Invoice XML (stampli-exports.md §3): one <Invoice> element per invoice.

Pass 1 parses incrementally and safely (see xmlfile: no DTD, no entities, elements cleared as
they are read) and spills each invoice's raw text to a temporary spill file, so a malformed or
truncated file raises ExportFileError before anything is yielded and memory stays bounded.
Pass 2 applies the rules one invoice at a time. Every location is the 1-based index of the
<Invoice> element. Amounts and dates in XML are xs:decimal ('.' separator, no thousands) and
xs:date (YYYY-MM-DD) whatever the CSV settings say: the XML layout is fixed.
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from xml.etree.ElementTree import Element

from adapters.settings import InvoiceFileSettings
from adapters.stampli.csv_invoices import IDENTITY
from adapters.stampli.invoice_groups import company_of
from adapters.stampli.csvfile import FIELD_LIMIT
from adapters.stampli.rules import Context, Row, build_invoice
from adapters.stampli.spill import Spill, two_pass
from adapters.stampli.templates import INVOICES
from adapters.stampli.values import XML_FORMATS
from adapters.stampli.xmlfile import children, iter_records, local, text_of
from ledger.model import ParsedInvoice, RejectedRow

LABELS = {
    "company_id": "StampliExport@companyId", "stampli_invoice_id": "Invoice@stampliId",
    "document_type": "Invoice@documentType", "invoice_number": "InvoiceNumber",
    "vendor_id": "Vendor@id", "vendor_name": "Vendor", "invoice_date": "InvoiceDate",
    "due_date": "DueDate", "currency": "Currency", "invoice_net": "NetAmount",
    "invoice_tax": "TaxAmount", "invoice_total": "TotalAmount",
    "approval_status": "Approval@status", "approved_at": "Approval@approvedAt",
    "approved_by": "Approval@approvedBy", "po_number": "PONumber",
    "exported_at": "StampliExport@exportedAt", "line_number": "Line@number",
    "line_description": "Line/Description", "gl_account": "Line/GLAccount",
    "cost_center": "Line/CostCenter", "line_net": "Line/NetAmount", "tax_code": "Tax@code",
    "line_tax": "Tax@amount",
}


def read_xml_invoices(path: Path, settings: InvoiceFileSettings, *, default_company: str,
                      companies: dict[str, str]) -> Iterator[ParsedInvoice | RejectedRow]:
    path = Path(path)

    def pass_1(spill: Spill) -> None:
        for index, element, root in iter_records(path, settings.encoding, "Invoice", "Invoice",
                                                 INVOICES.config_key):
            header, lines, problems = _invoice(element, root)
            missing = next((f for f in IDENTITY if not header.get(f)), None)
            if missing:
                spill.add(None, (
                    "rejected", index, missing,
                    f"<Invoice> #{index} has no {LABELS[missing]}, so it cannot be "
                    f"attributed to an invoice; fix it in Stampli and export again"))
            else:
                spill.add(None, ("invoice", index, header, lines, problems))

    def pass_2(_: None, groups: Iterator[list[Any]]) -> Iterator[ParsedInvoice | RejectedRow]:
        for group in groups:
            record = group[0]
            if record[0] == "rejected":
                _kind, index, name, message = record
                yield RejectedRow(line=index, field=name, message=message)
                continue
            _kind, index, header, lines, problems = record
            company = company_of(header.get("company_id", ""), default_company, companies)
            context = Context(company=company, formats=XML_FORMATS, labels=LABELS)
            head = Row(index, header, [tuple(p) for p in problems])
            line_rows = [Row(index, values) for values in lines]
            yield build_invoice([head], line_rows, context, [index])

    yield from two_pass(pass_1, pass_2)


def _invoice(element: Element, root: dict[str, str]
             ) -> tuple[dict[str, str], list[dict[str, str]], list[tuple[str, str, str]]]:
    kids = children(element)
    vendor = kids.get("Vendor")
    approval = kids.get("Approval")
    header = {
        "company_id": root.get("companyId", "").strip(),
        "stampli_invoice_id": element.get("stampliId", "").strip(),
        "document_type": element.get("documentType", "").strip(),
        "invoice_number": text_of(kids.get("InvoiceNumber")),
        "vendor_id": vendor.get("id", "").strip() if vendor is not None else "",
        "vendor_name": text_of(vendor),
        "invoice_date": text_of(kids.get("InvoiceDate")),
        "due_date": text_of(kids.get("DueDate")),
        "currency": text_of(kids.get("Currency")),
        "invoice_net": text_of(kids.get("NetAmount")),
        "invoice_tax": text_of(kids.get("TaxAmount")),
        "invoice_total": text_of(kids.get("TotalAmount")),
        "approval_status": approval.get("status", "").strip() if approval is not None else "",
        "approved_at": approval.get("approvedAt", "").strip() if approval is not None else "",
        "approved_by": approval.get("approvedBy", "").strip() if approval is not None else "",
        "po_number": text_of(kids.get("PONumber")),
        "exported_at": (element.get("exportedAt") or root.get("exportedAt") or "").strip(),
    }
    lines: list[dict[str, str]] = []
    problems: list[tuple[str, str, str]] = []
    container = kids.get("Lines")
    for line in (container if container is not None else ()):
        if local(line.tag) != "Line":
            continue
        parts = children(line)
        taxes = [c for c in line if local(c.tag) == "Tax"]
        tax = taxes[0] if taxes else None
        values = {
            "line_number": line.get("number", "").strip(),
            "line_description": text_of(parts.get("Description")),
            "gl_account": text_of(parts.get("GLAccount")),
            "cost_center": text_of(parts.get("CostCenter")),
            "line_net": text_of(parts.get("NetAmount")),
            "tax_code": tax.get("code", "").strip() if tax is not None else "",
            "line_tax": tax.get("amount", "").strip() if tax is not None else "",
        }
        if len(taxes) > 1:
            problems.append(("tax_multiple", "line_tax",
                             f"<Line number={values['line_number']!r}> has {len(taxes)} <Tax> "
                             f"elements; one tax code and amount per line is supported"))
        lines.append(values)
    for values in (header, *lines):
        _cap(values, problems)
    return header, lines, problems


def _cap(values: dict[str, str], problems: list[tuple[str, str, str]]) -> None:
    """The CSV reader's limit on one value holds here too: a longer value is cut (so it
    never reaches the ledger whole) and the invoice breaks a rule, so it does not post."""
    for name, text in values.items():
        if len(text) > FIELD_LIMIT:
            values[name] = text[:FIELD_LIMIT]
            problems.append(("field_too_long", name,
                             f"{LABELS[name]} holds {len(text):,} characters; the limit for "
                             f"one value is {FIELD_LIMIT // 1024} KiB, so it was cut and the "
                             f"invoice is not posted: shorten the value in Stampli and export "
                             f"again"))
