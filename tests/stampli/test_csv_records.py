"""CsvExport.records() splits lines without a quote itself and leaves the rest to the csv
module: whatever the file holds, it must read exactly what the csv module alone reads (the
same cells, record start lines, broken records and file errors)."""
from __future__ import annotations

import csv
import io
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.settings import InvoiceFileSettings
from adapters.stampli import csvfile
from adapters.stampli.csvfile import BrokenRecord, CsvExport
from adapters.stampli.errors import ExportFileError
from adapters.stampli.templates import INVOICES
from tests.stampli.exports import HEADER

EXAMPLES = settings(max_examples=200, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])


class CsvOnly(CsvExport):
    """records() read by the csv module alone, line by line from the stream."""

    def _read(self, text: io.TextIOWrapper) -> Iterator[tuple[int, list[str] | BrokenRecord]]:
        reader = csv.reader(text, delimiter=self.settings.delimiter, strict=True)
        while True:
            start = reader.line_num + 1
            try:
                for row in reader:
                    if "".join(row).strip():
                        yield start, row
                    start = reader.line_num + 1
                return
            except UnicodeError:
                raise self._decode_error() from None
            except csv.Error as exc:
                yield start, self._broken(start, reader.line_num, str(exc))


def read_all(cls: type[CsvExport], path, file_settings: InvoiceFileSettings) -> list:
    try:
        with cls(path, file_settings, INVOICES) as export:
            return [export._header] + [
                (line, cells.message if isinstance(cells, BrokenRecord) else cells)
                for line, cells in export.records()]
    except ExportFileError as exc:
        return [str(exc)]


def assert_same(tmp_path, content: str, delimiter: str = ",", encoding: str = "utf-8",
                limit: int | None = None) -> None:
    path = tmp_path / "invoices.csv"
    path.write_bytes(content.encode(encoding, "surrogateescape"))
    file_settings = InvoiceFileSettings(encoding=encoding, delimiter=delimiter)
    old_limit = csv.field_size_limit(limit) if limit else None
    try:
        assert read_all(CsvExport, path, file_settings) == read_all(CsvOnly, path, file_settings)
    finally:
        if old_limit is not None:
            csv.field_size_limit(old_limit)


PIECES = st.sampled_from(["a", "INV-1", " ", "  x ", ",", ";", "\t", '"', '""', "\n", "\r\n",
                          "\r", "\xa0", "\u2028", "\x00", "\x1c", "é", "\ufeff"])


@EXAMPLES
@given(lines=st.lists(st.lists(PIECES, max_size=12).map("".join), max_size=12),
       delimiter=st.sampled_from([",", ";", "\t", " ", "|"]), limit=st.sampled_from([None, 20]),
       stretch=st.sampled_from([(csvfile._QUOTED_RUN, csvfile._STRETCH), (1, 2)]))
def test_records_read_what_the_csv_module_reads(tmp_path, lines, delimiter, limit, stretch):
    header = delimiter.join(HEADER) + "\r\n"
    saved = csvfile._QUOTED_RUN, csvfile._STRETCH
    csvfile._QUOTED_RUN, csvfile._STRETCH = stretch     # short stretches: more hand-overs
    try:
        assert_same(tmp_path, header + "".join(lines), delimiter, limit=limit)
    finally:
        csvfile._QUOTED_RUN, csvfile._STRETCH = saved


def quoted_rows(count: int) -> str:
    out = io.StringIO()
    writer = csv.writer(out, quoting=csv.QUOTE_ALL, lineterminator="\r\n")
    for i in range(count):
        writer.writerow([f"C{i}", "two\nlines" if i % 50 == 7 else f" v{i} ", "x"])
    return out.getvalue()


@pytest.mark.parametrize("middle", ["", "\r\n\r\n", "a,b,c\n", '"a"b,c\n', '"a",,\n\n' * 300])
def test_an_export_quoting_every_value_reads_the_same(tmp_path, middle):
    """Rows read by the csv module straight from the file, in stretches, among split ones."""
    assert_same(tmp_path, ",".join(HEADER) + "\r\n" + quoted_rows(300) + middle
                + quoted_rows(300) + "plain,row\n" + quoted_rows(20))


def test_an_unclosed_quote_in_a_stretch_of_quoted_rows_rejects_the_file(tmp_path):
    assert_same(tmp_path, ",".join(HEADER) + "\n" + quoted_rows(100) + '"open,b\n'
                + "a,b\n" * 3)


@pytest.mark.parametrize("body", [
    "a,b\r\nc,d",                                   # no newline at the end
    'x,"two\nlines",y\nz,w\n',                      # a quoted value over lines
    'x,"three\n\nlines"\n\n,,,\n  \n',              # an empty line inside a value; blank rows
    'x,"open\nno quote\nafter\n',                   # never closed: the file is rejected
    'x,"a"b,c\nd,e\n',                              # text after a closing quote: broken row
    "x," + "y" * 131_073 + "\nd,e\n",               # over the limit, no quote
    'x,"' + "y" * 131_073 + '"\nd,e\n',             # over the limit, quoted
    "x,\x00y, z \r\n\r\n\ra,b\r",                   # NUL, padding, lone CRs
])
def test_records_on_known_hard_cases(tmp_path, body):
    assert_same(tmp_path, ",".join(HEADER) + "\n" + body)


@pytest.mark.parametrize("encoding", ["utf-8-sig", "cp1252", "utf-16"])
def test_records_under_other_encodings(tmp_path, encoding):
    assert_same(tmp_path, ",".join(HEADER) + '\r\nà,"b\r\nç",d\r\n e ,f\r\n', encoding=encoding)


def test_an_undecodable_byte_after_split_lines_is_reported_the_same(tmp_path):
    path = tmp_path / "invoices.csv"
    path.write_bytes((",".join(HEADER) + "\n" + "a,b\n" * 5000).encode() + b"c,\xff\n")
    file_settings = InvoiceFileSettings(encoding="utf-8")
    assert read_all(CsvExport, path, file_settings) == read_all(CsvOnly, path, file_settings)
    assert "line 5002" in read_all(CsvExport, path, file_settings)[0]
