"""The ExportReaders port: the readers bound to the configured templates, with file names
mapped to kinds by the configured patterns and reader errors translated for the ledger."""
from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable, Iterator
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import msgspec

from adapters.settings import StampliSettings
from adapters.stampli.reader import (ExportFileError, read_invoices, read_purchase_orders,
                                     read_vendors)
from ledger.ports import UnreadableFile


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

    def invoices(self, path: Path, name: str) -> Iterator[Any]:
        return _read(read_invoices, path, name, self.settings.invoices,
                     default_company=self.default_company, companies=self.settings.companies)

    def vendors(self, path: Path, name: str) -> Iterator[Any]:
        return _read(read_vendors, path, name, self.settings.vendors)

    def purchase_orders(self, path: Path, name: str) -> Iterator[Any]:
        return _read(read_purchase_orders, path, name, self.settings.purchase_orders)
