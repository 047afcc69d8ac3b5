"""Small builders for test data: canonical invoices and the export files they came from."""
from __future__ import annotations

import hashlib
from decimal import Decimal

from ledger.files import ExportFile
from ledger.model import CanonicalInvoice, InvoiceLine, ParsedInvoice, RuleViolation, export_file_id


def invoice(number: str = "INV-1", vendor: str = "V00231", *, company: str = "10",
            document_type: str = "Invoice", currency: str = "USD",
            lines: tuple[tuple[str, str, str, str], ...] = (("6100", "CC210", "100.00", "8.00"),),
            approval: str = "Approved", invoice_date: str = "2026-11-04") -> CanonicalInvoice:
    """lines: (gl_account, cost_center, net, tax) per line."""
    built = tuple(InvoiceLine(line_number=i, gl_account=a, cost_center=c, net=Decimal(n),
                              tax_code="TX8", tax=Decimal(t), description=f"line {i}")
                  for i, (a, c, n, t) in enumerate(lines, start=1))
    net = sum((line.net for line in built), Decimal(0))
    tax = sum((line.tax for line in built), Decimal(0))
    return CanonicalInvoice(company=company, document_type=document_type,
                            invoice_number=number, vendor_id=vendor, vendor_name="Acme",
                            invoice_date=invoice_date, due_date=invoice_date, currency=currency,
                            net=net, tax=tax, total=net + tax, approval_status=approval,
                            lines=built)


def parsed(inv: CanonicalInvoice, *violations: RuleViolation, line: int = 2) -> ParsedInvoice:
    return ParsedInvoice(invoice=inv, violations=tuple(violations), locations=(line,))


def export_file(name: str = "invoices_C1042_1.csv", content: str = "x") -> ExportFile:
    sha = hashlib.sha256(content.encode()).hexdigest()
    return ExportFile.download(export_file_id(name, sha), name=name, kind="invoices", size=1,
                               mtime=0.0, sha256=sha, local_path=f"/data/files/{sha}")
