"""Entry points for reading Stampli export files; CSV or XML is chosen by the file extension.

Every reader is a generator that reads the whole file once (pass 1) before yielding anything:
a file that cannot be read at all raises ExportFileError on the first `next()`, so the caller
records nothing from it. Pass 1 spills rows to a temporary SQLite file, so memory stays bounded
however large the export. OSError (file missing, permission) is not an export problem and
propagates unchanged.
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from adapters.settings import InvoiceFileSettings, PurchaseOrderFileSettings, VendorFileSettings
from adapters.stampli.csv_invoices import read_csv_invoices
from adapters.stampli.errors import ExportFileError
from adapters.stampli.purchase_orders import read_csv_purchase_orders
from adapters.stampli.vendors import read_csv_vendors, read_xml_vendors
from adapters.stampli.xml_invoices import read_xml_invoices
from ledger.model import ParsedInvoice, PurchaseOrderLine, RejectedRow, VendorRecord

__all__ = ["ExportFileError", "read_invoices", "read_purchase_orders", "read_vendors"]


def read_invoices(path: Path, settings: InvoiceFileSettings, *, default_company: str,
                  companies: dict[str, str]) -> Iterator[ParsedInvoice | RejectedRow]:
    kind = _kind(Path(path), ("csv", "xml"))
    reader = read_csv_invoices if kind == "csv" else read_xml_invoices
    return reader(Path(path), settings, default_company=default_company, companies=companies)


def read_vendors(path: Path, settings: VendorFileSettings) -> Iterator[VendorRecord | RejectedRow]:
    kind = _kind(Path(path), ("csv", "xml"))
    return (read_csv_vendors if kind == "csv" else read_xml_vendors)(Path(path), settings)


def read_purchase_orders(path: Path, settings: PurchaseOrderFileSettings
                         ) -> Iterator[PurchaseOrderLine | RejectedRow]:
    _kind(Path(path), ("csv",))
    return read_csv_purchase_orders(Path(path), settings)


def _kind(path: Path, allowed: tuple[str, ...]) -> str:
    kind = path.suffix.lower().lstrip(".")
    if kind not in allowed:
        raise ExportFileError(path.name, 0, "", f"cannot read a {path.suffix or 'extensionless'}"
                              f" file here; expected {' or '.join('.' + a for a in allowed)}"
                              f" (check the file name patterns in the config)")
    return kind
