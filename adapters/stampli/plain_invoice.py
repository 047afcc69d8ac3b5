"""The invoice that breaks no rule, read straight from its spilled CSV rows.

Nearly every invoice of an export is plain: ASCII text, every row repeating the same header
values, amounts and dates as configured, lines that add up. For such an invoice the rules
(rules.py) find nothing, and building a dict per row, a Row per row and a _Builder per
invoice to find nothing was a quarter of pass 2's CPU. `PlainReader.invoice` checks the same
rules on the row lists as the spill holds them and builds the same ParsedInvoice; at the
first thing it is not sure of, it returns None and the caller applies the full rules, which
then report it. It is only ever stricter than the rules: tests/stampli/test_plain_invoice.py
holds its output equal to theirs, and None wherever they find something.
"""
from __future__ import annotations

from collections.abc import Sequence
from operator import itemgetter
from typing import Any

from adapters.stampli.rules import (HEADER_FIELDS, LINE_FIELDS, LINE_ORDER, is_suspect,
                                    is_timestamp)
from adapters.stampli.values import LINE_NUMBERS, Formats
from ledger.model import DOCUMENT_TYPES, CanonicalInvoice, InvoiceLine, ParsedInvoice
from ledger.money import ISO_4217, minor_units


class PlainReader:
    """The plain path for one template: where each field is in a spilled row's values."""

    def __init__(self, fields: Sequence[str], formats: Formats) -> None:
        at = {name: i for i, name in enumerate(fields)}
        absent = len(fields)           # a field the template lacks reads as "" (rules.Row.get)
        pos = {name: at.get(name, absent) for name in (*HEADER_FIELDS, *LINE_FIELDS)}
        self.padded = absent in pos.values()   # then each row gets that "" at its end
        self.formats = formats
        self.header = itemgetter(*(pos[name] for name in HEADER_FIELDS))
        self.line = itemgetter(*(pos[name] for name in (
            "line_number", "line_description", "gl_account", "cost_center", "tax_code")))
        self.amounts = itemgetter(pos["line_net"], pos["line_tax"])

    def invoice(self, group: list[Any], company: str) -> ParsedInvoice | None:
        """The ParsedInvoice of a group of spilled rows ("row", line, values, shape) of the
        IFS company `company`, or None: the full rules must look at it."""
        rows = []
        for _kind, _line, values, shape in group:
            if shape:
                return None
            rows.append(values + [""] if self.padded else values)
        head = self.header(rows[0])
        for values in rows:
            if self.header(values) != head:        # exact text: the rules compare values
                return None
        if is_suspect("".join(["".join(values) for values in rows])):
            return None
        (company_id, stampli_invoice_id, doc_type, number, vendor_id, vendor_name,
         invoice_date, due_date, currency, net_text, tax_text, total_text, status,
         approved_at, approved_by, po_number, exported_at) = head
        if doc_type not in DOCUMENT_TYPES or not (vendor_name and currency and invoice_date) \
                or currency not in ISO_4217 or (approved_at and not is_timestamp(approved_at)) \
                or (exported_at and not is_timestamp(exported_at)):
            return None
        texts = [net_text, tax_text, total_text]
        for values in rows:
            texts += self.amounts(values)
        amounts = self.formats.plain_amounts(texts, minor_units(currency))
        invoice_iso = self.formats.iso_date(invoice_date)
        due_iso = self.formats.iso_date(due_date) if due_date else ""
        if amounts is None or invoice_iso is None or due_iso is None or \
                (due_iso and due_iso < invoice_iso):
            return None
        net, tax, total = amounts[:3]
        lines = []
        for (_kind, line, _values, _shape), values, line_net, line_tax in zip(
                group, rows, amounts[3::2], amounts[4::2]):
            number_text, description, gl_account, cost_center, tax_code = self.line(values)
            line_number = LINE_NUMBERS.get(number_text)
            if line_number is None or not (gl_account and cost_center):
                return None
            lines.append(InvoiceLine(line_number=line_number, description=description,
                                     gl_account=gl_account, cost_center=cost_center,
                                     net=line_net, tax_code=tax_code, tax=line_tax,
                                     source_line=line))
        if len({ln.line_number for ln in lines}) < len(lines) or \
                sum(amounts[3::2]) != net or sum(amounts[4::2]) != tax or net + tax != total \
                or (total <= 0 if doc_type == "Invoice" else total >= 0):
            return None
        lines.sort(key=LINE_ORDER)
        return ParsedInvoice(invoice=CanonicalInvoice(
            company=company, stampli_company_id=company_id,
            stampli_invoice_id=stampli_invoice_id, document_type=doc_type,
            invoice_number=number, vendor_id=vendor_id, vendor_name=vendor_name,
            invoice_date=invoice_iso, due_date=due_iso, currency=currency, net=net, tax=tax,
            total=total, approval_status=status, approved_at=approved_at,
            approved_by=approved_by, po_number=po_number, exported_at=exported_at,
            lines=tuple(lines)), locations=tuple([row[1] for row in group]))
