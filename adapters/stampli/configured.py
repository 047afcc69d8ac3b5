"""The ExportReaders port: the readers bound to the configured templates, with file names
mapped to kinds by the configured patterns and reader errors translated for the ledger.

Every reader is a generator that reads the whole file once (pass 1) before yielding anything:
a file that cannot be read at all raises ExportFileError on the first `next()`, so the caller
records nothing from it. Pass 1 spills rows to a temporary spill file, so memory stays bounded
however large the export. OSError (file missing, permission) is not an export problem and
propagates unchanged. CSV or XML is chosen by the file extension.
"""
from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable, Iterator
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import msgspec

from adapters.settings import (InvoiceFileSettings, PurchaseOrderFileSettings, StampliSettings,
                               VendorFileSettings)
from adapters.stampli.csv_invoices import read_csv_invoices
from adapters.stampli.errors import ExportFileError
from adapters.stampli.purchase_orders import read_csv_purchase_orders
from adapters.stampli.vendors import read_csv_vendors, read_xml_vendors
from adapters.stampli.xml_invoices import read_xml_invoices
from ledger.model import ParsedInvoice, PurchaseOrderLine, RejectedRow, VendorRecord
from ledger.new_invoice import ExportFileRef, PreparedInvoice
from ledger.ports import UnreadableFile


def read_invoices(path: Path, settings: InvoiceFileSettings, *, default_company: str,
                  companies: dict[str, str], prepare_for: ExportFileRef | None = None
                  ) -> Iterator[ParsedInvoice | PreparedInvoice | RejectedRow]:
    """`prepare_for`: the file intake records the invoices into; a large CSV's invoices may
    then come as PreparedInvoice (ledger/new_invoice.py)."""
    if _kind(Path(path), ("csv", "xml")) == "xml":
        return read_xml_invoices(Path(path), settings, default_company=default_company,
                                 companies=companies)
    return read_csv_invoices(Path(path), settings, default_company=default_company,
                             companies=companies, prepare_for=prepare_for)


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


def _read(reader: Callable[..., Iterator[Any]], path: Path, name: str,
          *args: Any, **kwargs: Any) -> Iterator[Any]:
    """Run a reader on the content-addressed copy under the file's own name (the readers pick
    CSV or XML by extension, and people need the Stampli file name in every message)."""
    with tempfile.TemporaryDirectory(prefix="mlc-read-") as tmp:
        named = Path(tmp) / name
        try:
            os.link(path, named)
        except OSError:
            os.symlink(Path(path).resolve(), named)
        try:
            yield from reader(named, *args, **kwargs)
        except ExportFileError as exc:
            raise UnreadableFile(str(exc), line=exc.line, field=exc.field) from None


READING_SETTINGS = ("encoding", "delimiter", "decimal_separator", "thousands_separator",
                    "date_format", "columns")


class ConfiguredReaders:
    def __init__(self, settings: StampliSettings, default_company: str) -> None:
        self.settings = settings
        self.default_company = default_company
        self._kinds = (("vendors", settings.vendors.patterns),
                       ("purchase_orders", settings.purchase_orders.patterns),
                       ("invoices", settings.invoices.patterns))

    def kind_of(self, name: str) -> str | None:
        for kind, patterns in self._kinds:
            if any(fnmatchcase(name, p) for p in patterns):
                return kind
        return None

    def patterns(self) -> list[str]:
        return [p for _, patterns in self._kinds for p in patterns]

    def fingerprint(self, kind: str) -> str:
        """What decides whether a file of this kind can be read at all: encoding, delimiter,
        number and date formats, column mapping (not which files are taken, nor what is
        done with the invoices read)."""
        section = getattr(self.settings, kind)
        reading = {name: getattr(section, name) for name in READING_SETTINGS}
        return hashlib.sha256(msgspec.json.encode(reading, order="sorted")).hexdigest()[:16]

    def invoices(self, path: Path, name: str, prepare_for: ExportFileRef | None = None
                 ) -> Iterator[Any]:
        return _read(read_invoices, path, name, self.settings.invoices,
                     default_company=self.default_company, companies=self.settings.companies,
                     prepare_for=prepare_for)

    def vendors(self, path: Path, name: str) -> Iterator[Any]:
        return _read(read_vendors, path, name, self.settings.vendors)

    def purchase_orders(self, path: Path, name: str) -> Iterator[Any]:
        return _read(read_purchase_orders, path, name, self.settings.purchase_orders)
