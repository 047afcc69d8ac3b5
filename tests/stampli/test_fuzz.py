"""Whatever bytes arrive, a reader yields records or raises ExportFileError; nothing else. And
nothing vanishes: every data row of a generated file is accounted for (an invoice's location,
a rejected row with its reason, or a row swallowed by a record that is flagged as broken), or
the file is rejected whole with a reason. A value that took in other rows' text never passes
as a clean invoice."""
from __future__ import annotations

import os
import re
from datetime import datetime
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.settings import InvoiceFileSettings, PurchaseOrderFileSettings, VendorFileSettings
from adapters.stampli.configured import read_invoices, read_purchase_orders, read_vendors
from adapters.stampli.errors import ExportFileError
from ledger.model import ParsedInvoice, PurchaseOrderLine, RejectedRow, VendorRecord
from adapters.stampli.rules import MULTILINE_FIELDS
from tests.stampli.exports import HEADER, SAMPLES, csv_text, row

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
        return None
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
        if not item.violations:
            clean(inv)
    elif isinstance(item, PurchaseOrderLine):
        assert all(v is None or isinstance(v, Decimal)
                   for v in (item.quantity, item.unit_price, item.amount))
    else:
        assert isinstance(item, VendorRecord)


_LINE_BREAK = re.compile("[\r\n\u2028\u2029]")
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def clean(inv) -> None:
    """An invoice without violations holds nothing that smells of swallowed rows or of a
    terminal escape, and its timestamps are timestamps (a well-typed invoice is not enough)."""
    values = {f: getattr(inv, f) for f in ("invoice_number", "vendor_id", "vendor_name",
                                           "currency", "approval_status", "approved_at",
                                           "approved_by", "po_number", "exported_at")}
    for ln in inv.lines:
        values.update(line_description=ln.description, gl_account=ln.gl_account,
                      cost_center=ln.cost_center, tax_code=ln.tax_code)
        for name, text in values.items():
            assert not _CONTROL.search(text), (name, text)
            assert name in MULTILINE_FIELDS or not _LINE_BREAK.search(text), (name, text)
            assert len(text) <= 128 * 1024
    for name in ("approved_at", "exported_at"):
        if values[name]:
            assert datetime.fromisoformat(values[name]).tzinfo is not None


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


def _starts(rows: list[dict[str, str]]) -> list[int]:
    """The file line where each written row starts (as the reader counts lines: \\r\\n,
    \\r and \\n each end one), for the rows that are not blank (a blank row holds nothing)."""
    starts, line = [], 2
    for r in rows:
        cells = [r.get(h, "") for h in HEADER]
        if "".join(cells).strip():
            starts.append(line)
        line += 1 + sum(len(re.findall("\r\n|\r|\n", c)) for c in cells)
    return starts


def accounted(items: list, starts: list[int], exact: bool) -> None:
    """Every row start is an invoice location or a rejected row; or it lies after a record
    that is itself flagged as broken (it took in the rows after it). exact: the file is not
    damaged, so the records start exactly where the rows do."""
    located = {loc: i for i in items if isinstance(i, ParsedInvoice) for loc in i.locations}
    rejected = {i.line for i in items if isinstance(i, RejectedRow)}
    broken = set(rejected) | {v.line for i in items if isinstance(i, ParsedInvoice)
                              for v in i.violations if v.rule in ("line_break", "row_shape")}
    seen = sorted(set(located) | rejected)
    assert not exact or seen == starts, (seen, starts)
    for start in starts:
        if start in located or start in rejected:
            continue
        before = [s for s in seen if s < start]
        assert before and before[-1] in broken, f"row at line {start} vanished: {items}"


@settings(FUZZ, max_examples=max(1, FUZZ.max_examples // 2))
@given(rows=st.lists(st.fixed_dictionaries({h: CELL for h in HEADER}), max_size=8))
def test_arbitrary_cell_values_in_a_valid_layout(tmp_path, rows):
    """Well-quoted CSV is never rejected whole, and every row is accounted for, once."""
    path = tmp_path / "invoices_cells.csv"
    path.write_text(csv_text(rows), encoding="utf-8")
    items = run("invoices", path, InvoiceFileSettings())
    assert items is not None
    located = [loc for i in items if isinstance(i, ParsedInvoice) for loc in i.locations]
    rejected = [i.line for i in items if isinstance(i, RejectedRow)]
    assert sorted(located + rejected) == _starts(rows)


TEXT = st.text(alphabet=st.sampled_from('ab ,;"\r\n\x1b'), max_size=6)
DAMAGE = st.sampled_from(["none", "open_quote", "after_quote", "truncate"])


DAMAGED = dict(numbers=st.lists(st.text(alphabet="AB12", min_size=1, max_size=3), min_size=1,
                                max_size=6),
               descriptions=st.lists(TEXT, min_size=6, max_size=6), damage=DAMAGE,
               where=st.integers(0, 10_000))


@FUZZ
@given(**DAMAGED)
def test_damaged_exports_lose_no_row_silently(tmp_path, numbers, descriptions, damage, where):
    """Invoices, then one damage an export really suffers (a quote opened and never closed,
    text after a closing quote, a cut-off file): the file is rejected with a reason, or every
    row is accounted for."""
    damaged(tmp_path, numbers, descriptions, damage, where)


@settings(FUZZ, max_examples=max(1, FUZZ.max_examples // 10))
@given(**DAMAGED)
def test_damaged_exports_on_the_worker_path(tmp_path, monkeypatch, numbers, descriptions,
                                            damage, where):
    """The same with pass 2 in a worker process (a process start each: fewer examples)."""
    from adapters.stampli import worker
    monkeypatch.setattr(worker, "PARALLEL_ROWS", 1)
    monkeypatch.setattr(worker, "_cores", lambda: 2)
    damaged(tmp_path, numbers, descriptions, damage, where)


def damaged(tmp_path, numbers, descriptions, damage, where) -> None:
    rows = [row(InvoiceNumber=n, LineDescription=d) for n, d in zip(numbers, descriptions)]
    parts = re.split("(\r\n|\r|\n)", csv_text(rows))   # physical lines at even indexes
    starts = _starts(rows)
    at = 2 * (starts[where % len(starts)] - 1)            # a data row's first physical line
    if damage == "open_quote":
        cells = parts[at].split(",")
        # half the time the last value: the row keeps its width, so only the value shows it
        at_cell = len(cells) - 1 if where % 2 else (where // 7) % len(cells)
        cells[at_cell] = '"' + cells[at_cell].lstrip('"')
        parts[at] = ",".join(cells)
    elif damage == "after_quote":
        parts[at] = parts[at].replace(",Acme,", ',"Acme"x,')
    text = "".join(parts)
    if damage == "truncate":
        text = text[:where % (len(text) + 1)]
    path = tmp_path / "invoices_damaged.csv"
    path.write_text(text, encoding="utf-8")
    items = run("invoices", path, InvoiceFileSettings())
    if items is None:
        return                                    # rejected whole, with a reason (run checks)
    lines = re.split("\r\n|\r|\n", text)
    left = [s for s in starts                     # rows the truncation left something of
            if re.sub('[,;"\\s]', "", "".join(lines[s - 1:]))]
    accounted(items, left, exact=damage == "none")

