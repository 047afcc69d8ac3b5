"""The content hash decides duplicate or amendment for every invoice ever recorded, so its
bytes never change: sha256 of the invoice's JSON (sorted members, decimals as strings) with
exported_at and every line's source_line blanked. ledger.model.content_hash blanks them in
the JSON it already made for the Parsed event; these tests hold it to the definition (encode
the struct with both fields blanked), above all for text that looks like JSON members."""
from __future__ import annotations

import hashlib
from decimal import Decimal

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.model import CanonicalInvoice, InvoiceLine, content_hash, invoice_json
from ledger.new_invoice import ExportFileRef, states
from tests.builders import invoice, parsed

_ENCODER = msgspec.json.Encoder(decimal_format="string", order="sorted")
TRICKY = [',"source_line":7', ',"exported_at":"2026-01-01"', '\\', '"', '\\"', '","', "é😀",
          '\u2028', '\x00\x1f', ',"source_line":', '"exported_at":"\\"']


def by_definition(inv: CanonicalInvoice) -> str:
    blanked = msgspec.structs.replace(
        inv, exported_at="",
        lines=tuple(msgspec.structs.replace(line, source_line=0) for line in inv.lines))
    return hashlib.sha256(_ENCODER.encode(blanked)).hexdigest()


texts = st.one_of(st.text(max_size=12), st.sampled_from(TRICKY),
                  st.lists(st.sampled_from(TRICKY), max_size=3).map("".join))
amounts = st.one_of(st.none(), st.decimals(allow_nan=False, allow_infinity=False, places=2),
                    st.sampled_from([Decimal("1E+2"), Decimal("-0.000"), Decimal("0E-8")]))
lines = st.builds(InvoiceLine, line_number=st.integers(0, 10**6), description=texts,
                  gl_account=texts, cost_center=texts, net=amounts, tax_code=texts, tax=amounts,
                  source_line=st.integers(0, 10**9))
invoices = st.builds(CanonicalInvoice, company=texts, stampli_company_id=texts,
                     document_type=texts, invoice_number=texts, vendor_id=texts,
                     vendor_name=texts, invoice_date=texts, currency=texts, net=amounts,
                     tax=amounts, total=amounts, approval_status=texts, approved_by=texts,
                     po_number=texts, exported_at=texts, lines=st.lists(lines, max_size=4)
                     .map(tuple))


@settings(max_examples=400, deadline=None)
@given(invoices)
def test_the_hash_is_that_of_the_blanked_invoice(inv):
    assert content_hash(inv) == by_definition(inv)


def test_where_it_was_read_does_not_count_what_it_says_does():
    inv = invoice("N1", lines=(("6100", "CC210", "50.00", "4.00"),) * 2)
    moved = msgspec.structs.replace(inv, exported_at="2027-01-01T00:00:00Z", lines=tuple(
        msgspec.structs.replace(line, source_line=line.source_line + 90) for line in inv.lines))
    changed = msgspec.structs.replace(inv, vendor_name=inv.vendor_name + ",\"source_line\":1")
    assert content_hash(moved) == content_hash(inv) == by_definition(inv)
    assert content_hash(changed) != content_hash(inv)


def test_the_parsed_state_holds_the_invoice_the_hash_was_made_of():
    """The JSON is made once per invoice and kept for its Parsed state: the state must still
    hold this invoice, whichever invoice was hashed before."""
    first, second = invoice("A"), invoice("B", vendor="V9")
    item = parsed(first)
    content_hash(second)                       # another invoice's JSON in between
    _, parsed_state = states(item, ExportFileRef("f.csv", "0" * 64))
    assert invoice_json(first) in parsed_state and b'"B"' not in parsed_state
    assert item.content_hash == by_definition(first)
