"""Builders for Stampli export files in tests: valid rows by default, override what a test is
about, write with the encoding and delimiter under test, read back through the public API."""
from __future__ import annotations

import csv
import io
from pathlib import Path

from adapters.settings import InvoiceFileSettings, PurchaseOrderFileSettings, VendorFileSettings
from adapters.stampli.configured import read_invoices, read_purchase_orders, read_vendors
from ledger.model import ParsedInvoice, RejectedRow

SAMPLES = Path(__file__).resolve().parent / "samples"      # copies of shared/data/stampli
SHARED_SAMPLES = Path(__file__).resolve().parents[3] / "shared" / "data" / "stampli"
COMPANIES = {"C1042": "10", "C2000": "20"}

HEADER = ["CompanyID", "StampliInvoiceID", "DocumentType", "InvoiceNumber", "VendorID",
          "VendorName", "InvoiceDate", "DueDate", "Currency", "InvoiceNet", "InvoiceTax",
          "InvoiceTotal", "ApprovalStatus", "ApprovedAt", "ApprovedBy", "PONumber", "LineNumber",
          "LineDescription", "GLAccount", "CostCenter", "LineNet", "TaxCode", "LineTax",
          "ExportedAt"]

BASE = {
    "CompanyID": "C1042", "StampliInvoiceID": "1", "DocumentType": "Invoice",
    "InvoiceNumber": "INV-1", "VendorID": "V1", "VendorName": "Acme", "InvoiceDate": "2026-11-04",
    "DueDate": "2026-12-04", "Currency": "USD", "InvoiceNet": "100.00", "InvoiceTax": "8.00",
    "InvoiceTotal": "108.00", "ApprovalStatus": "Approved", "ApprovedAt": "2026-11-06T15:22:10Z",
    "ApprovedBy": "j.doe", "PONumber": "", "LineNumber": "1", "LineDescription": "Hoses",
    "GLAccount": "6100", "CostCenter": "CC210", "LineNet": "100.00", "TaxCode": "TX8",
    "LineTax": "8.00", "ExportedAt": "2026-11-06T15:25:00Z",
}


def row(**overrides: str) -> dict[str, str]:
    return {**BASE, **overrides}


def two_line_rows(**overrides: str) -> list[dict[str, str]]:
    """A balanced two-line invoice: 60 + 40 net, 4.80 + 3.20 tax."""
    head = {"InvoiceNet": "100.00", "InvoiceTax": "8.00", "InvoiceTotal": "108.00", **overrides}
    return [row(**head, LineNumber="1", LineNet="60.00", LineTax="4.80"),
            row(**head, LineNumber="2", LineNet="40.00", LineTax="3.20")]


def csv_text(rows: list[dict[str, str]], header: list[str] | None = None,
             delimiter: str = ",") -> str:
    header = header or HEADER
    out = io.StringIO()
    writer = csv.writer(out, delimiter=delimiter, lineterminator="\r\n")
    writer.writerow(header)
    for r in rows:
        writer.writerow([r.get(h, "") for h in header])
    return out.getvalue()


def write(tmp_path: Path, name: str, content: str | bytes, encoding: str = "utf-8") -> Path:
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode(encoding))
    return path


def read(path: Path, **settings: object) -> list[ParsedInvoice | RejectedRow]:
    return list(read_invoices(path, InvoiceFileSettings(**settings), default_company="10",
                              companies=COMPANIES))


def invoices(path: Path, **settings: object) -> list[ParsedInvoice]:
    items = read(path, **settings)
    assert all(isinstance(i, ParsedInvoice) for i in items), items
    return items  # type: ignore[return-value]


def only(path: Path, **settings: object) -> ParsedInvoice:
    items = invoices(path, **settings)
    assert len(items) == 1, items
    return items[0]


def rules(parsed: ParsedInvoice) -> set[str]:
    return {v.rule for v in parsed.violations}


def vendors(path: Path, **settings: object) -> list:
    return list(read_vendors(path, VendorFileSettings(**settings)))


def purchase_orders(path: Path, **settings: object) -> list:
    return list(read_purchase_orders(path, PurchaseOrderFileSettings(**settings)))
