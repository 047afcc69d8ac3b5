"""Pass 1 spills to a temporary SQLite file that is always removed, and memory does not grow
with the file (rows of one invoice may be far apart)."""
from __future__ import annotations

import tempfile
import tracemalloc

import pytest

import adapters.stampli.spill as spill
from adapters.settings import InvoiceFileSettings
from adapters.stampli.configured import read_invoices
from adapters.stampli.errors import ExportFileError
from ledger.model import ParsedInvoice
from tests.stampli.exports import csv_text, row, write
from tests.stampli.test_xml_invoices import export, invoice_xml


@pytest.fixture
def scratch(tmp_path, monkeypatch):
    """Point tempfile at an empty folder so leftovers are visible."""
    folder = tmp_path / "scratch"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


@pytest.fixture
def small_buffers(monkeypatch):
    """Tiny batch and identity caches, so a small file exercises what a 1 GB file would: its
    first 50 identities known in memory, then all of them in SQLite."""
    monkeypatch.setattr(spill, "_BATCH", 50)
    monkeypatch.setattr(spill, "_RECENT", 50)
    monkeypatch.setattr(spill, "KEYS_IN_MEMORY", 50)


def far_apart_rows(invoices: int, description: str = "x"):
    """Every invoice has two lines, one in each half of the file."""
    return [row(InvoiceNumber=f"N{i}", LineNumber=str(half + 1), LineNet="50.00",
                LineTax="4.00", LineDescription=description)
            for half in (0, 1) for i in range(invoices)]


def read(path):
    return read_invoices(path, InvoiceFileSettings(), default_company="10", companies={})


def test_spill_is_removed_after_reading_early_close_and_rejection(tmp_path, scratch):
    path = write(tmp_path, "invoices_a.csv", csv_text(far_apart_rows(5)))
    assert len(list(read(path))) == 5
    assert list(scratch.iterdir()) == []
    iterator = read(path)
    next(iterator)
    assert len(list(scratch.iterdir())) == 1        # the spill exists while reading
    iterator.close()
    assert list(scratch.iterdir()) == []
    bad = write(tmp_path, "invoices_b.csv", csv_text(far_apart_rows(5)) + "\xe9",
                encoding="latin-1")
    with pytest.raises(ExportFileError):
        list(read(bad))
    assert list(scratch.iterdir()) == []


@pytest.mark.parametrize("in_sqlite", [True, False])
def test_far_apart_rows_group_beyond_the_identity_cache(tmp_path, small_buffers, monkeypatch,
                                                       in_sqlite):
    """Whether the identities are known in memory (a file of up to KEYS_IN_MEMORY invoices)
    or, past that, in SQLite, rows of one invoice far apart come out together."""
    if not in_sqlite:
        monkeypatch.setattr(spill, "KEYS_IN_MEMORY", 10**6)
    path = write(tmp_path, "invoices_a.csv", csv_text(far_apart_rows(300)))
    items = list(read(path))
    assert [p.invoice.invoice_number for p in items] == [f"N{i}" for i in range(300)]
    assert all(isinstance(p, ParsedInvoice) and p.violations == () for p in items)
    assert items[7].locations == (9, 309) and items[60].locations == (62, 362)


def peak_while_reading(path) -> int:
    tracemalloc.start(1)
    try:
        count = sum(1 for _ in read(path))
        return tracemalloc.get_traced_memory()[1] if count else -1
    finally:
        tracemalloc.stop()


def test_csv_memory_does_not_grow_with_the_file(tmp_path, small_buffers):
    path = write(tmp_path, "invoices_big.csv", csv_text(far_apart_rows(700, "x" * 600)))
    size = path.stat().st_size                      # about 1.5 MB
    assert peak_while_reading(path) < size / 4


def test_xml_memory_does_not_grow_with_the_file(tmp_path, small_buffers):
    one = invoice_xml(lines=(("1", "100.00", "8.00"),)).replace("item 1", "y" * 600)
    path = write(tmp_path, "invoices_big.xml", export(*[one] * 1000))
    size = path.stat().st_size
    assert peak_while_reading(path) < size / 4
