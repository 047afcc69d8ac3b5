"""The one error that rejects a whole export file.

Raised before a reader yields anything, so the caller records the file as rejected and nothing
from it as half-read. The message says where (file, line, column), what was expected and what to
do next, e.g. ``invoices_x.csv line 7, column InvoiceNet: expected ...; fix the template or set
stampli.invoices.decimal_separator``.
"""
from __future__ import annotations


class ExportFileError(Exception):
    """The export file cannot be read at all; no record from it may be used."""

    def __init__(self, file: str, line: int, field: str, message: str) -> None:
        self.file = file          # the file's name (no folder: it is what people see in Stampli)
        self.line = line          # 1-based file line; 0 when the whole file is concerned
        self.field = field        # the column (header text) or XML element concerned, or ""
        self.message = message
        super().__init__(str(self))

    def __str__(self) -> str:
        where = self.file
        if self.line:
            where += f" line {self.line}"
        if self.field:
            where += f", column {self.field}" if self.line else f" column {self.field}"
        return f"{where}: {self.message}"

    def __reduce__(self):  # keep it picklable across processes/threads
        return (type(self), (self.file, self.line, self.field, self.message))
