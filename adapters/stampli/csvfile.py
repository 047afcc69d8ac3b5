"""Streaming CSV access shared by the invoice, vendor and purchase-order readers.

The file is decoded strictly with the configured encoding (never guessed) through a text stream
and read record by record, so memory does not grow with the file: a line without a quote is
split on the delimiter, anything else is read by the csv module, with the same result. Quoted
newlines work; every record carries the file line where it starts.

Quoting is read strictly: a quote left open at the end of the file (or running on past the
field size limit over several lines) would swallow every row after it, so the file is rejected
whole, naming the line where the quote opened. Text after a closing quote, or one value over
the limit, breaks only its own record: `records()` yields it as a BrokenRecord with the reason.

When a byte does not decode, the file is scanned once more with `surrogateescape` (undecodable
bytes become lone surrogates, which no strict decode produces) to report the exact line and
column of the first bad byte.
"""
from __future__ import annotations

import codecs
import csv
import io
import itertools
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

from adapters.settings import FileKindSettings
from adapters.stampli.errors import ExportFileError
from adapters.stampli.spill import Spill
from adapters.stampli.templates import Template, TemplateSpec, resolve
from ledger.model import RejectedRow

T = TypeVar("T")

_ESCAPED = re.compile("[\udc80-\udcff]")
FIELD_LIMIT = csv.field_size_limit()       # 128 KiB: the cap on one value, CSV and XML alike
_QUOTED_RUN = 8       # quoted lines in a row after which the csv module reads the file itself
_STRETCH = 256        # ... for this many records, then lines are looked at one by one again


class BrokenRecord:
    """A record the csv module could not read; its neighbours are read as usual."""
    __slots__ = ("message",)

    def __init__(self, message: str) -> None:
        self.message = message


class CsvExport:
    """`with CsvExport(path, settings, spec) as export: for line, row in export.records(): ...`"""

    def __init__(self, path: Path, settings: FileKindSettings, spec: TemplateSpec) -> None:
        self.path = Path(path)
        self.name = self.path.name
        self.settings = settings
        self.spec = spec
        self.template: Template | None = None
        self._raw: BinaryIO | None = None
        self._records: Iterator[tuple[int, list[str] | BrokenRecord]] | None = None
        self._header: list[str] = []
        _check_settings(settings, spec, self.name)

    def __enter__(self) -> CsvExport:
        self._raw = open(self.path, "rb")  # noqa: SIM115 - closed in __exit__
        try:
            self._check_bom(self._raw.read(4))
            self._raw.seek(0)
            text = io.TextIOWrapper(self._raw, encoding=self.settings.encoding, errors="strict",
                                    newline="")
            # One iterator for the header and the rows: it carries the line count.
            self._records = self._read(text)
            for line, row in self._records:        # blank lines before the header: skipped
                if isinstance(row, BrokenRecord):
                    raise ExportFileError(self.name, line, "", f"the header row {row.message}")
                row[0] = row[0].lstrip("\ufeff")       # a BOM under plain "utf-8" is no header
                self.template = resolve(row, self.spec, self.settings.columns, self.name, line)
                self._header = [cell.strip() for cell in row]
                return self
            raise ExportFileError(self.name, 1, "", "the file is empty: a header row is "
                                  "required; check the export template in Stampli")
        except BaseException:
            self._raw.close()
            raise

    def _check_bom(self, head: bytes) -> None:
        """A byte-order mark that contradicts the configured encoding would otherwise decode
        silently into mojibake under single-byte encodings (cp1252 accepts almost anything)."""
        configured = codecs.lookup(self.settings.encoding).name
        for bom, family in ((codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF16_LE, "utf-16"),
                            (codecs.BOM_UTF16_BE, "utf-16")):
            if head.startswith(bom) and not configured.startswith((family, "utf-32")):
                raise ExportFileError(
                    self.name, 1, "", f"the file starts with a {family.upper()} byte-order mark "
                    f"but {self.spec.config_key}.encoding is {self.settings.encoding!r}; set it "
                    f"to {'utf-8-sig' if family == 'utf-8' else 'utf-16'} (the connector never "
                    f"guesses an encoding)")

    def __exit__(self, *exc: object) -> None:
        if self._raw is not None:
            self._raw.close()

    def records(self) -> Iterator[tuple[int, list[str] | BrokenRecord]]:
        """(file line where the record starts, cells) for every non-blank record after the
        header, or (line, BrokenRecord) for one the csv module could not read. Rows whose
        cells are all blank are skipped."""
        assert self._records is not None
        return self._records

    def _read(self, text: io.TextIOWrapper) -> Iterator[tuple[int, list[str] | BrokenRecord]]:
        """records() from the first line on. This runs per row of files with millions, so a
        line without a quote is split by str.split, a third of the csv module's cost: without
        a quote the csv module too just cuts the line at each delimiter. A line with a quote,
        or too long to rule out an over-long value, goes to the csv module, which reads any
        further lines of a quoted value from the same stream. (The tests in
        test_csv_records.py hold the two ways to the same result.)"""
        delimiter = self.settings.delimiter
        limit = csv.field_size_limit()    # a line no longer than this holds no longer value
        pending: list[str] = []
        # Reads the line handed over, then (inside a quoted value) the next lines of the
        # file; None ends its source at the end of the file.
        handed = csv.reader(iter(lambda: pending.pop() if pending else next(text, None), None),
                            delimiter=delimiter, strict=True)
        # Reads the file itself, for stretches of quoted lines (see below).
        direct = csv.reader(text, delimiter=delimiter, strict=True)
        n = quoted = 0                     # lines read so far; quoted lines in a row
        try:
            for line in text:
                if '"' not in line and len(line) <= limit:
                    n += 1
                    quoted = 0
                    row = line.rstrip("\r\n").split(delimiter)
                    # any(cell.strip() ...): the first cell nearly always decides it.
                    if row[0].strip() or "".join(row).strip():
                        yield n, row
                    continue
                start, taken = n + 1, handed.line_num
                pending.append(line)
                try:
                    row = next(handed)
                except csv.Error as exc:
                    n += handed.line_num - taken
                    yield start, self._broken(start, n, str(exc))
                    continue
                n += handed.line_num - taken
                if "".join(row).strip():
                    yield start, row
                quoted += 1
                if quoted < _QUOTED_RUN:
                    continue
                # Quotes on line after line (an export that quotes every value): handing
                # lines over costs more than splitting saves, so the csv module reads the
                # next rows straight from the file, C to C.
                quoted = 0
                base = n - direct.line_num
                start = n + 1
                try:
                    for row in itertools.islice(direct, _STRETCH):
                        if "".join(row).strip():
                            yield start, row
                        start = base + direct.line_num + 1
                except csv.Error as exc:
                    yield start, self._broken(start, base + direct.line_num, str(exc))
                n = base + direct.line_num
        except UnicodeError:          # UnicodeDecodeError, or UTF-16 without BOM
            raise self._decode_error() from None

    def _broken(self, start: int, end: int, reason: str) -> BrokenRecord:
        """A record the strict reader refused. A quote that never closes (or runs on over
        several lines past the size limit) would take every row after it: the whole file is
        rejected, naming the line where it opened. Otherwise only this record is broken; the
        csv module goes on with the next line."""
        runaway = reason == "unexpected end of data" or (
            reason.startswith("field larger than field limit") and end > start)
        if runaway:
            line, column = self._open_quote(start)
            raise ExportFileError(
                self.name, line, column,
                f"a quote (\") opened here is never closed, so every line after it "
                f"(to line {end}) would be read as part of one value; the file is rejected "
                f"whole so that no row vanishes; fix the quoting in the export (a quote inside "
                f"a value is written twice, \"\") and export again")
        if reason.startswith("field larger than field limit"):
            return BrokenRecord(
                f"holds a value longer than {FIELD_LIMIT // 1024} KiB (the limit for one "
                f"value); the row is not read: shorten the value in Stampli and export again")
        return BrokenRecord(
            f"is not valid CSV ({reason}): a quoted value has text after its closing quote, "
            f"or the delimiter ({self.settings.delimiter!r}, "
            f"{self.spec.config_key}.delimiter) does not match the file; the row is not "
            f"read: fix the quoting in the export (a quote inside a value is written twice)")

    def _open_quote(self, start: int) -> tuple[int, str]:
        """The file line where the unterminated value of the record at `start` opens, and
        its column: the record is scanned again from its first line, quotes only."""
        delimiter, line, column = self.settings.delimiter, start, 0
        opened = (start, -1)
        try:
            with open(self.path, "rb") as raw:
                text = io.TextIOWrapper(raw, encoding=self.settings.encoding,
                                        errors="surrogateescape", newline="")
                quoted, field_start = False, True
                for line, physical in enumerate(itertools.islice(text, start - 1, None), start):
                    pos = 0
                    while pos < len(physical):
                        if quoted:           # skip to the closing quote ("" is a quote)
                            q = physical.find('"', pos)
                            if q < 0:
                                break
                            if physical.startswith('""', q):
                                pos = q + 2
                                continue
                            quoted, pos = False, q + 1
                            continue
                        char = physical[pos]
                        if char == '"' and field_start:
                            quoted, opened = True, (line, column)
                        elif char == delimiter:
                            column += 1
                            field_start = True
                            pos += 1
                            continue
                        field_start = False
                        pos += 1
        except (OSError, UnicodeError):
            pass
        line, at = opened
        return line, self._header[at] if 0 <= at < len(self._header) else ""

    def _decode_error(self) -> ExportFileError:
        """Find the first undecodable byte: its line, its column, the text before it."""
        enc = self.settings.encoding
        advice = (f"the connector reads this file as {enc} and never guesses; have Stampli "
                  f"export {enc}, or set {self.spec.config_key}.encoding to the file's real "
                  f"encoding (e.g. cp1252 or latin-1)")
        try:
            with open(self.path, "rb") as raw:
                text = io.TextIOWrapper(raw, encoding=enc, errors="surrogateescape", newline="")
                reader = csv.reader(text, delimiter=self.settings.delimiter, strict=False)
                header: list[str] | None = None
                while True:
                    start = reader.line_num + 1
                    row = next(reader, None)
                    if row is None:
                        break
                    for i, cell in enumerate(row):
                        bad = _ESCAPED.search(cell)
                        if not bad:
                            continue
                        before = cell[:bad.start()]
                        line = start + sum(c.count("\n") for c in row[:i]) + before.count("\n")
                        byte = ord(bad.group()) - 0xDC00
                        column = ""
                        if header is None:
                            where = "in the header row"
                        elif i < len(header):
                            column = header[i].strip()
                            where = f"in column {i + 1}"
                        else:
                            where = f"in column {i + 1} (beyond the header)"
                        prefix = before.rsplit("\n", 1)[-1][-40:]
                        return ExportFileError(
                            self.name, line, column,
                            f"byte 0x{byte:02X} {where} is not valid {enc} (after "
                            f"{_clean(prefix)!r}); {advice}")
                    if header is None and row:
                        header = [c.lstrip("\ufeff") for c in row]
        except (UnicodeError, csv.Error):
            pass  # e.g. UTF-16 with a bad low byte: no line to point at
        return ExportFileError(self.name, 0, "", f"bytes that are not valid {enc}; {advice}")


def spill_records(path: Path, settings: FileKindSettings, spec: TemplateSpec,
                  spill: Spill) -> dict[str, str]:
    """Pass 1 of the readers with one record per row (vendors, purchase orders): each row's
    template values spilled alone, a broken row as its message. Returns the column labels."""
    with CsvExport(path, settings, spec) as export:
        template = export.template
        assert template is not None
        for line, cells in export.records():
            if isinstance(cells, BrokenRecord):
                spill.add(None, (line, None, f"the row {cells.message}"))
            else:
                spill.add(None, (line, template.pick(cells)))
    return template.labels


def one_per_record(groups: Iterator[list[Any]], build: Callable[[int, dict[str, str]], T]
                   ) -> Iterator[T | RejectedRow]:
    """Pass 2 of those readers: build(line, values) per spilled record, a broken row rejected."""
    for group in groups:
        line, values, *broken = group[0]
        yield RejectedRow(line=line, field="row", message=broken[0]) if broken else \
            build(line, values)


def _clean(text: str) -> str:
    return _ESCAPED.sub("?", text)


def _check_settings(settings: FileKindSettings, spec: TemplateSpec, name: str) -> None:
    """Configuration mistakes would reject every file; say which key to fix."""
    try:
        codecs.lookup(settings.encoding)
    except LookupError:
        raise ExportFileError(name, 0, "", f"{spec.config_key}.encoding = "
                              f"{settings.encoding!r} is not a known encoding; use e.g. "
                              f"utf-8-sig, cp1252 or latin-1") from None
    delimiter = settings.delimiter
    if len(delimiter) != 1 or delimiter in "\"\r\n":
        raise ExportFileError(name, 0, "", f"{spec.config_key}.delimiter = {delimiter!r} must "
                              f"be a single character other than a quote or newline, e.g. ',' "
                              f"or ';'")
