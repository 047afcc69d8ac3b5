"""The fast paths of pass 2 (an invoice's amounts read at once, the usual line numbers looked
up, header agreement and the character scan done per invoice) must give what the one-by-one
readers give, and step aside whenever those would report something."""
from __future__ import annotations

from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.stampli.values import Formats, ValueProblem, line_number
from tests.stampli.exports import HEADER, csv_text, only, rules, two_line_rows, write

AMOUNT_TEXT = st.text(alphabet="0123456789+-.,\n eE_", max_size=22) | st.sampled_from(
    ["12.50", "-0.00", "12.", ".5", "1.005", "100.000", "NaN", "1e5", "0012.50", "١٢٣.00",
     "1234567890123456789", "12345678901234567.8", "12\n13", "+7"])
UNITS = st.sampled_from([None, 0, 2, 3])


def one_by_one(formats: Formats, text: str, units: int | None):
    """The amount when amount() reads it without a problem the rules would report."""
    try:
        value, decimals = formats.amount(text)
    except ValueProblem:
        return None
    return None if units is not None and decimals > units else value


@settings(max_examples=500, deadline=None)
@given(st.lists(AMOUNT_TEXT, min_size=1, max_size=6), UNITS)
def test_plain_amounts_agree_with_amount(texts, units):
    formats = Formats()
    expected = [one_by_one(formats, t, units) for t in texts]
    found = formats.plain_amounts(texts, units)
    if found is None:          # the slow path then reports each one; no plain text is missed
        assert None in expected or any(len(t) > 18 or t != t.strip()
                                       for t in texts)
    else:
        assert found == expected and None not in expected
        assert [str(a) for a in found] == [str(a) for a in expected]


def test_plain_amounts_take_clean_invoices_and_leave_other_formats():
    assert Formats().plain_amounts(["1250.00", "-16.00", "7", "0.5"], 2) is not None
    assert Formats().plain_amounts(["12\n13", "1"], 2) is None
    assert Formats(",", ".").plain_amounts(["1250.00"], 2) is None


def test_line_number_lookup_agrees_with_the_regex():
    for number in range(1, 1200):
        assert line_number(str(number)) == number
    for text in ("0", "-1", "x", ""):
        try:
            line_number(text)
        except ValueProblem:
            continue
        raise AssertionError(text)


def test_header_agreement_without_an_optional_column(tmp_path):
    first, second = two_line_rows()
    second["VendorName"] = "ACME Inc"
    header = [h for h in HEADER if h != "PONumber"]
    parsed = only(write(tmp_path, "invoices_few.csv", csv_text([first, second], header=header)))
    assert {(v.rule, v.field, v.line) for v in parsed.violations} == {
        ("header_mismatch", "vendor_name", 3)}


def test_non_ascii_text_is_scanned_not_flagged(tmp_path):
    clean = two_line_rows(VendorName="Müller – Nordlicht GmbH")
    assert only(write(tmp_path, "invoices_ok.csv", csv_text(clean))).violations == ()
    broken = two_line_rows(VendorName="Müller\x85GmbH")
    assert rules(only(write(tmp_path, "invoices_c1.csv", csv_text(broken)))) == {
        "control_character"}


def test_an_amount_off_the_fast_path_is_read_on_its_own(tmp_path):
    first, second = two_line_rows()
    second["LineTax"] = "3.205"                # USD allows 2 decimals
    parsed = only(write(tmp_path, "invoices_p.csv", csv_text([first, second])))
    assert rules(parsed) == {"amount_precision", "lines_sum_tax"}
    assert [ln.tax for ln in parsed.invoice.lines] == [Decimal("4.80"), Decimal("3.205")]
