"""Column templates: which header text holds which canonical field.

Stampli's CSV layout is customer-defined, so every kind of file has a default header per
canonical field (stampli-exports.md §2, §4) and `settings.columns` (canonical field -> the
customer's header text) overrides it. Column order is free and unknown columns are ignored; a
required column that is missing rejects the file, naming the column and the config key to set.
"""
from __future__ import annotations

from dataclasses import dataclass

from adapters.stampli.errors import ExportFileError


@dataclass(frozen=True)
class TemplateSpec:
    kind: str                          # "invoices", "vendors", "purchase_orders" (config section)
    defaults: dict[str, str]           # canonical field -> default header text, in file order
    required: frozenset[str]

    @property
    def config_key(self) -> str:
        return f"stampli.{self.kind}"


INVOICES = TemplateSpec(
    kind="invoices",
    defaults={
        "company_id": "CompanyID", "stampli_invoice_id": "StampliInvoiceID",
        "document_type": "DocumentType", "invoice_number": "InvoiceNumber",
        "vendor_id": "VendorID", "vendor_name": "VendorName",
        "invoice_date": "InvoiceDate", "due_date": "DueDate", "currency": "Currency",
        "invoice_net": "InvoiceNet", "invoice_tax": "InvoiceTax", "invoice_total": "InvoiceTotal",
        "approval_status": "ApprovalStatus", "approved_at": "ApprovedAt",
        "approved_by": "ApprovedBy", "po_number": "PONumber", "line_number": "LineNumber",
        "line_description": "LineDescription", "gl_account": "GLAccount",
        "cost_center": "CostCenter", "line_net": "LineNet", "tax_code": "TaxCode",
        "line_tax": "LineTax", "exported_at": "ExportedAt",
    },
    required=frozenset({
        "document_type", "invoice_number", "vendor_id", "vendor_name", "invoice_date",
        "currency", "invoice_net", "invoice_tax", "invoice_total", "approval_status",
        "line_number", "gl_account", "cost_center", "line_net",
    }),
)

VENDORS = TemplateSpec(
    kind="vendors",
    defaults={
        "vendor_id": "VendorID", "vendor_name": "VendorName", "tax_id": "TaxID",
        "address_line1": "AddressLine1", "city": "City", "postal_code": "PostalCode",
        "country": "Country", "currency": "Currency", "payment_terms": "PaymentTerms",
        "active": "Active",
    },
    required=frozenset({"vendor_id", "vendor_name"}),
)

PURCHASE_ORDERS = TemplateSpec(
    kind="purchase_orders",
    defaults={
        "po_number": "PONumber", "vendor_id": "VendorID", "line_number": "LineNumber",
        "description": "Description", "quantity": "Quantity", "unit_price": "UnitPrice",
        "amount": "Amount", "currency": "Currency", "status": "Status",
    },
    required=frozenset({"po_number", "vendor_id", "line_number"}),
)


@dataclass(frozen=True)
class Template:
    """A header row resolved against a TemplateSpec."""
    spec: TemplateSpec
    index: dict[str, int]              # canonical field -> column index (present columns only)
    labels: dict[str, str]             # canonical field -> header text (for messages)
    width: int                         # number of header columns

    def pick(self, row: list[str]) -> dict[str, str]:
        """canonical field -> stripped value; '' when the column is absent or the row short."""
        return {field: (row[i].strip() if i < len(row) else "")
                for field, i in self.index.items()}


def resolve(header: list[str], spec: TemplateSpec, columns: dict[str, str], file: str,
            line: int = 1) -> Template:
    unknown = sorted(set(columns) - set(spec.defaults))
    if unknown:
        raise ExportFileError(
            file, 0, "",
            f"{spec.config_key}.columns names unknown field(s) {', '.join(unknown)}; "
            f"the fields are: {', '.join(spec.defaults)}")
    wanted = {field: columns.get(field, default).strip() for field, default in spec.defaults.items()}
    cells = [cell.strip() for cell in header]
    exact: dict[str, list[int]] = {}
    folded: dict[str, list[int]] = {}
    for i, cell in enumerate(cells):
        exact.setdefault(cell, []).append(i)
        folded.setdefault(cell.casefold(), []).append(i)
    index: dict[str, int] = {}
    labels: dict[str, str] = {}
    missing: list[str] = []
    for field, text in wanted.items():
        # Exact header text first; a case-only difference is still the same column.
        hits = exact.get(text) or folded.get(text.casefold()) or []
        if len(hits) > 1:
            raise ExportFileError(
                file, line, text,
                f"the header has {len(hits)} columns named {text!r} (columns "
                f"{', '.join(str(h + 1) for h in hits)}), so {field} is ambiguous; "
                f"rename one in the export template or map {spec.config_key}.columns.{field}")
        if hits:
            index[field] = hits[0]
            labels[field] = cells[hits[0]]
        else:
            labels[field] = text
            if field in spec.required:
                missing.append(field)
    if missing:
        names = ", ".join(f"{wanted[f]!r} ({f})" for f in missing)
        raise ExportFileError(
            file, line, wanted[missing[0]],
            f"required column(s) {names} missing from the header row; add them to the export "
            f"template, or map the template's header text with "
            f"[{spec.config_key}.columns] {missing[0]} = \"<header text>\"")
    return Template(spec=spec, index=index, labels=labels, width=len(header))
