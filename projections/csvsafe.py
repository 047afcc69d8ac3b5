"""CSV the connector writes, safe to open in a spreadsheet (OWASP "CSV injection").

A text cell that begins with = + - @ tab or carriage return would be read by Excel, LibreOffice
or Google Sheets as a formula (`=HYPERLINK(...)` in a vendor name from an export). Such a
cell is written with a leading single quote, which the spreadsheet shows as text. Numbers
(int, Decimal) are written as they are, so a negative amount stays a number; only text taken
from outside (vendor names, descriptions, file names, messages) passes through `safe_text`.
Every CSV writer of the connector goes through `csv_line`/`CsvWriter` here."""
from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from decimal import Decimal
from typing import Any, TextIO

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def safe_text(value: str) -> str:
    return "'" + value if value.startswith(FORMULA_STARTS) else value


def safe_cell(value: Any) -> Any:
    """Numbers stay numbers; None is empty; any text that could start a formula is quoted."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, Decimal, float)):
        return value
    return safe_text(str(value))


def csv_line(values: Iterable[Any]) -> str:
    buffer = io.StringIO()
    CsvWriter(buffer).row(values)
    return buffer.getvalue()


class CsvWriter:
    """Rows to a text stream, every cell through `safe_cell`."""

    def __init__(self, handle: TextIO) -> None:
        self._writer = csv.writer(handle, lineterminator="\n")
        # With "\n" line ends Python's csv leaves a lone "\r" unquoted, and readers then
        # split the row there: such a row has its text cells quoted.
        self._quoting = csv.writer(handle, lineterminator="\n", quoting=csv.QUOTE_NONNUMERIC)

    def row(self, values: Iterable[Any]) -> None:
        cells = [safe_cell(v) for v in values]
        carriage = any(isinstance(c, str) and "\r" in c for c in cells)
        (self._quoting if carriage else self._writer).writerow(cells)
