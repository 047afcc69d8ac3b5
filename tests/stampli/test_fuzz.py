"""Whatever bytes arrive, a reader yields records or raises ExportFileError; nothing else."""
from __future__ import annotations

import os
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.settings import InvoiceFileSettings, PurchaseOrderFileSettings, VendorFileSettings
from adapters.stampli.reader import (ExportFileError, read_invoices, read_purchase_orders,
                                     read_vendors)
from ledger.model import ParsedInvoice, PurchaseOrderLine, RejectedRow, VendorRecord
from tests.stampli.exports import HEADER, SAMPLES, csv_text

# FUZZ_EXAMPLES=2000 for a deeper local run; the default keeps the suite fast.
FUZZ = settings(max_examples=int(os.environ.get("FUZZ_EXAMPLES", "100")), deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])

ENCODINGS = st.sampled_from(["utf-8-sig", "utf-8", "cp1252", "latin-1", "utf-16"])
DELIMITERS = st.sampled_from([",", ";", "\t", "|"])
NUMBER_FORMATS = st.sampled_from([(".", ""), (",", "."), (".", ","), (",", " "), (".", "'")])
DATE_FORMATS = st.sampled_from(["%Y-%m-%d", "%d/%m/%Y", "%m/%d/%Y", "%d.%m.%Y"])


@st.composite
def file_settings(draw, cls):
    decimal, thousands = draw(NUMBER_FORMATS)
    return cls(encoding=draw(ENCODINGS), delimiter=draw(DELIMITERS),
               decimal_separator=decimal, thousands_separator=thousands,
               date_format=draw(DATE_FORMATS))


def run(kind: str, path, file_settings) -> list:
    try:
        if kind == "invoices":
            items = list(read_invoices(path, file_settings, default_company="10",
                                       companies={"C1042": "10"}))
        elif kind == "vendors":
            items = list(read_vendors(path, file_settings))
        else:
            items = list(read_purchase_orders(path, file_settings))
    except ExportFileError as exc:
        assert exc.file == path.name and exc.message and str(exc).startswith(path.name)
        return []
    for item in items:
        check(item)
    return items


def check(item) -> None:
    """What a reader yields is well-typed: Decimal or None for money, never a float."""
    if isinstance(item, RejectedRow):
        assert item.line >= 1 and item.field and item.message
    elif isinstance(item, ParsedInvoice):
        inv = item.invoice
        for amount in (inv.net, inv.tax, inv.total,
                       *(ln.net for ln in inv.lines), *(ln.tax for ln in inv.lines)):
            assert amount is None or isinstance(amount, Decimal)
        assert item.locations and all(v.rule and v.message for v in item.violations)
    elif isinstance(item, PurchaseOrderLine):
        assert all(v is None or isinstance(v, Decimal)
                   for v in (item.quantity, item.unit_price, item.amount))
    else:
        assert isinstance(item, VendorRecord)


def mutate(data: bytes, edits: list[tuple[int, int, int, bytes]]) -> bytes:
    for op, at, length, junk in edits:
        at %= len(data) + 1
        if op == 0:
            data = data[:at] + data[at + length:]                       # delete
        elif op == 1:
            data = data[:at] + junk + data[at:]                         # insert
        elif op == 2:
            data = data[:at] + junk + data[at + len(junk):]             # overwrite
        elif op == 3:
            data = data[:at] + data[at:at + length] * 2 + data[at + length:]   # duplicate
        else:
            data = data[:at]                                            # truncate
    return data


EDITS = st.lists(st.tuples(st.integers(0, 4), st.integers(0, 5000), st.integers(0, 64),
                           st.binary(min_size=1, max_size=8) | st.sampled_from(
                               [b'"', b",", b";", b"\n", b"\r", b"\x00", b"<", b"&", b"\xe9",
                                b"<!DOCTYPE x>", b"]]>", b"-"])),
                 min_size=1, max_size=6)

CASES = [("invoices", "invoices_f.csv", InvoiceFileSettings),
         ("invoices", "invoices_f.xml", InvoiceFileSettings),
         ("vendors", "vendors_f.csv", VendorFileSettings),
         ("vendors", "vendors_f.xml", VendorFileSettings),
         ("purchase_orders", "purchase_orders_f.csv", PurchaseOrderFileSettings)]


@pytest.mark.parametrize("kind,name,cls", CASES)
@FUZZ
@given(data=st.binary(max_size=2000), choose=st.data())
def test_arbitrary_bytes(tmp_path, kind, name, cls, data, choose):
    path = tmp_path / name
    path.write_bytes(data)
    run(kind, path, choose.draw(file_settings(cls)))


VALID = {
    "invoices_f.csv": (SAMPLES / "invoices_C1042_20261106152500.csv").read_bytes(),
    "invoices_f.xml": (SAMPLES / "invoices_C1042_20261106153000.xml").read_bytes(),
    "vendors_f.csv": (SAMPLES / "vendors_C1042_20261106152500.csv").read_bytes(),
    "vendors_f.xml": b'<StampliExport entity="Vendor"><Vendor id="V1"><Name>A</Name>'
                     b"<Country>US</Country><Active>true</Active></Vendor></StampliExport>",
    "purchase_orders_f.csv": (SAMPLES / "purchase_orders_C1042_20261106150000.csv").read_bytes(),
}


@pytest.mark.parametrize("kind,name,cls", CASES)
@FUZZ
@given(edits=EDITS)
def test_mutated_valid_files(tmp_path, kind, name, cls, edits):
    path = tmp_path / name
    path.write_bytes(mutate(VALID[name], edits))
    run(kind, path, cls())


CELL = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=12) \
    | st.sampled_from(["", "1", "-1", "0.001", "1,5", "2026-02-30", "USD", "JPY", "Invoice",
                       "CreditNote", "1e3", "NaN", "9" * 40])


@settings(FUZZ, max_examples=max(1, FUZZ.max_examples // 2))
@given(rows=st.lists(st.fixed_dictionaries({h: CELL for h in HEADER}), max_size=8))
def test_arbitrary_cell_values_in_a_valid_layout(tmp_path, rows):
    path = tmp_path / "invoices_cells.csv"
    path.write_text(csv_text(rows), encoding="utf-8")
    items = run("invoices", path, InvoiceFileSettings())
    if items:  # every data row is accounted for, once
        located = [loc for i in items if isinstance(i, ParsedInvoice) for loc in i.locations]
        rejected = [i.line for i in items if isinstance(i, RejectedRow)]
        assert len(located) + len(rejected) == len(rows)
        assert len(set(located + rejected)) == len(rows)
