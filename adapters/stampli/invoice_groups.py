"""Pass 2 of the invoice readers: the spilled rows of one invoice become a ParsedInvoice (or
an unattributable row a RejectedRow). Used by csv_invoices.py in this process and by the
worker process (worker.py); xml_invoices.py shares the company mapping."""
from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from adapters.stampli.plain_invoice import PlainReader
from adapters.stampli.rules import Context, Row, build_invoice
from adapters.stampli.values import Formats
from ledger.model import ParsedInvoice, RejectedRow


def company_of(stampli_company: str, default_company: str, companies: dict[str, str]) -> str:
    """The IFS company: the configured mapping of Stampli's CompanyID, else the default."""
    return companies.get(stampli_company.strip(), default_company) if stampli_company \
        else default_company


def build_groups(groups: Iterable[list[Any]], fields: tuple[str, ...], labels: dict[str, str],
                 formats: Formats, default_company: str, companies: dict[str, str]
                 ) -> Iterator[ParsedInvoice | RejectedRow]:
    """Pass 2: each spilled group (the rows of one invoice, or one unattributable row)
    becomes a ParsedInvoice or a RejectedRow. A plain invoice is read straight from the
    rows (plain_invoice.py); any other goes through the rules."""
    contexts: dict[str, Context] = {}
    plain = PlainReader(fields, formats)
    company_at = fields.index("company_id") if "company_id" in fields else None
    for group in groups:
        if group[0][0] == "rejected":
            _kind, line, name, message = group[0]
            yield RejectedRow(line=line, field=name, message=message)
            continue
        company = company_of(group[0][2][company_at] if company_at is not None else "",
                             default_company, companies)
        item = plain.invoice(group, company)
        if item is not None:
            yield item
            continue
        rows = [Row(line, dict(zip(fields, vals)), [("row_shape", "", shape)] if shape else ())
                for _kind, line, vals, shape in group]
        context = contexts.get(company)
        if context is None:
            context = contexts[company] = Context(company=company, formats=formats,
                                                  labels=labels)
        yield build_invoice(rows, rows, context, [row.line for row in rows])
