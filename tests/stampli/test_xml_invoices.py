"""Invoice XML: the §3 layout, safe parsing (no DTD, no entities), whole-file rejection."""
from __future__ import annotations

from decimal import Decimal

import pytest

from adapters.settings import InvoiceFileSettings
from adapters.stampli.configured import read_invoices
from adapters.stampli.errors import ExportFileError
from ledger.model import ParsedInvoice, RejectedRow
from tests.stampli.exports import read, rules, write

LINE = """<Line number="{n}"><Description>{d}</Description><GLAccount>6100</GLAccount>
<CostCenter>CC210</CostCenter><NetAmount>{net}</NetAmount><Tax code="TX8" amount="{tax}"/>
</Line>"""


def invoice_xml(number="A-1", vendor="V00231", doc="Invoice", net="100.00", tax="8.00",
                total="108.00", lines=(("1", "60.00", "4.80"), ("2", "40.00", "3.20")),
                currency="USD", extra="", name="Acme &amp; Sons") -> str:
    body = "".join(LINE.format(n=n, d=f"item {n}", net=ln, tax=lt) for n, ln, lt in lines)
    return f"""
  <Invoice stampliId="9" documentType="{doc}">
    <InvoiceNumber>{number}</InvoiceNumber><Vendor id="{vendor}">{name}</Vendor>
    <InvoiceDate>2026-11-04</InvoiceDate><DueDate>2026-12-04</DueDate>
    <Currency>{currency}</Currency><NetAmount>{net}</NetAmount><TaxAmount>{tax}</TaxAmount>
    <TotalAmount>{total}</TotalAmount>
    <Approval status="Approved" approvedAt="2026-11-06T15:28:00Z" approvedBy="j.doe"/>
    {extra}<Lines>{body}</Lines>
  </Invoice>"""


def export(*invoices: str, root_attrs='companyId="C2000" entity="Invoice"',
           prolog='<?xml version="1.0" encoding="UTF-8"?>\n') -> str:
    return f"{prolog}<StampliExport {root_attrs}>{''.join(invoices)}\n</StampliExport>\n"


def test_several_invoices_located_by_element_index(tmp_path):
    path = write(tmp_path, "invoices_x.xml", export(invoice_xml("A"), invoice_xml("B"),
                                                    invoice_xml("C", vendor="V9")))
    items = read(path)
    assert [(p.invoice.invoice_number, p.invoice.vendor_id, p.locations) for p in items] == [
        ("A", "V00231", (1,)), ("B", "V00231", (2,)), ("C", "V9", (3,))]
    assert all(p.violations == () for p in items)
    assert items[0].invoice.company == "20"          # companyId on the root, mapped
    assert items[0].invoice.vendor_name == "Acme & Sons"
    assert [ln.source_line for ln in items[2].invoice.lines] == [3, 3]


def test_rules_apply_to_xml(tmp_path):
    bad = invoice_xml(lines=(("1", "60.00", "4.80"), ("1", "40.001", "3.20")), total="109.00")
    (parsed,) = read(write(tmp_path, "invoices_x.xml", export(bad)))
    assert {(v.rule, v.field, v.line) for v in parsed.violations} == {
        ("line_numbers_unique", "line_number", 1), ("amount_precision", "line_net", 1),
        ("lines_sum_net", "invoice_net", 0), ("net_plus_tax_total", "invoice_total", 0)}
    assert any("Line/NetAmount" in v.message for v in parsed.violations)


def test_credit_note_and_default_company(tmp_path):
    credit = invoice_xml(doc="CreditNote", net="-100.00", tax="-8.00", total="-108.00",
                         lines=(("1", "-100.00", "-8.00"),))
    path = write(tmp_path, "invoices_x.xml", export(credit, root_attrs='entity="Invoice"'))
    (parsed,) = read(path)
    assert parsed.violations == () and parsed.invoice.total == Decimal("-108.00")
    assert parsed.invoice.company == "10" and parsed.invoice.stampli_company_id == ""


def test_invoice_without_identity_is_a_rejected_row_among_good_ones(tmp_path):
    path = write(tmp_path, "invoices_x.xml", export(invoice_xml("A"), invoice_xml(""),
                                                    invoice_xml("C")))
    a, rejected, c = read(path)
    assert isinstance(rejected, RejectedRow)
    assert (rejected.line, rejected.field) == (2, "invoice_number")
    assert isinstance(a, ParsedInvoice) and isinstance(c, ParsedInvoice)


def test_invoice_without_lines_and_with_two_taxes(tmp_path):
    no_lines = invoice_xml(lines=())
    two_taxes = invoice_xml(lines=(("1", "100.00", "8.00"),)).replace(
        '<Tax code="TX8" amount="8.00"/>', '<Tax code="TX8" amount="8.00"/><Tax code="X"/>')
    empty, taxed = read(write(tmp_path, "invoices_x.xml", export(no_lines, two_taxes)))
    assert rules(empty) == {"no_lines"}
    assert rules(taxed) == {"tax_multiple"}


def test_namespaced_export_reads_the_same(tmp_path):
    text = export(invoice_xml(), root_attrs='xmlns="urn:stampli" entity="Invoice"')
    (parsed,) = read(write(tmp_path, "invoices_x.xml", text))
    assert parsed.violations == () and len(parsed.invoice.lines) == 2


BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol9 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
]>
<StampliExport entity="Invoice"><Invoice documentType="Invoice">
<InvoiceNumber>&lol9;</InvoiceNumber></Invoice></StampliExport>
"""


def test_billion_laughs_is_rejected_without_expansion(tmp_path):
    with pytest.raises(ExportFileError) as caught:
        read(write(tmp_path, "invoices_x.xml", BILLION_LAUGHS))
    assert "DTD" in caught.value.message and "lol" not in caught.value.message


def test_external_entity_is_rejected_and_not_read(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET")
    text = (f'<?xml version="1.0"?>\n<!DOCTYPE x [<!ENTITY xxe SYSTEM "file://{secret}">]>\n'
            + export(invoice_xml(number="&xxe;"), prolog=""))
    with pytest.raises(ExportFileError) as caught:
        read(write(tmp_path, "invoices_x.xml", text))
    assert "TOP-SECRET" not in str(caught.value)


def test_external_dtd_reference_is_rejected(tmp_path):
    text = '<!DOCTYPE StampliExport SYSTEM "http://127.0.0.1:9/x.dtd">' + export(
        invoice_xml(), prolog="")
    with pytest.raises(ExportFileError, match="DTD"):
        read(write(tmp_path, "invoices_x.xml", text))


def test_undeclared_entity_is_a_parse_error(tmp_path):
    with pytest.raises(ExportFileError, match="undefined entity"):
        read(write(tmp_path, "invoices_x.xml", export(invoice_xml(number="&nope;"))))


def test_truncated_xml_is_rejected_and_nothing_is_yielded(tmp_path):
    whole = export(*(invoice_xml(f"N{i}") for i in range(200)))
    path = write(tmp_path, "invoices_x.xml", whole[: len(whole) - 40])
    iterator = read_invoices(path, InvoiceFileSettings(), default_company="10", companies={})
    with pytest.raises(ExportFileError) as caught:
        next(iterator)
    assert caught.value.line > 1 and "not well-formed" in caught.value.message


@pytest.mark.parametrize("text,match", [
    ('<Other entity="Invoice"/>', "root element"),
    ('<StampliExport entity="Vendor"/>', "'Vendor' export"),
    ("", "no element found"),
    ("<StampliExport>", "no element found"),
])
def test_unusable_documents(tmp_path, text, match):
    with pytest.raises(ExportFileError, match=match):
        read(write(tmp_path, "invoices_x.xml", text))


def test_bytes_not_in_the_declared_encoding_are_rejected_with_position(tmp_path):
    text = export(invoice_xml(name="Café")).encode("cp1252")
    with pytest.raises(ExportFileError) as caught:
        read(write(tmp_path, "invoices_x.xml", text))
    assert caught.value.line == 4


def test_declared_latin1_and_configured_encoding_without_declaration(tmp_path):
    declared = export(invoice_xml(name="Café"),
                      prolog='<?xml version="1.0" encoding="ISO-8859-1"?>\n').encode("latin-1")
    (parsed,) = read(write(tmp_path, "invoices_a.xml", declared))
    assert parsed.invoice.vendor_name == "Café"
    bare = export(invoice_xml(name="Café"), prolog="").encode("cp1252")
    (parsed,) = read(write(tmp_path, "invoices_b.xml", bare), encoding="cp1252")
    assert parsed.invoice.vendor_name == "Café"
