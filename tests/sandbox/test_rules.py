"""Business rules, each answered with an IFS error body of the documented shape."""
from __future__ import annotations

from .helpers import (APPROVE_ACTION, INVOICE, POST_ACTION, VOUCHER, Resp, Tenant,
                      invoice_path, tenant_test, voucher_path)


def _text(r: Resp) -> str:
    """IFS's business text, wherever this error shape keeps it."""
    err = r.body["error"]
    message = err["message"]
    parts = [message["value"] if isinstance(message, dict) else message]
    parts += [d["message"] for d in err.get("details", [])]
    return " | ".join(parts)


@tenant_test()
async def test_unknown_account_is_a_500_with_text_in_details(t: Tenant) -> None:
    head = await t.create_invoice()
    r = await t.add_line(head.body, head.etag, Account="6999")
    assert r.status == 500 and r.code == "ACCOUNT_NOT_FOUND"
    assert r.body["error"]["details"][0]["code"] == "ACCOUNT_NOT_FOUND"
    assert "6999" in r.body["error"]["details"][0]["message"]
    assert "6999" not in r.body["error"]["message"]        # generic outer message
    lines = await t.get(INVOICE, invoice_path(head.body) + "/Lines")
    assert lines.body["value"] == []                        # a refused write changes nothing


@tenant_test()
async def test_account_not_valid_on_document_date_then_fixed_by_seed(t: Tenant) -> None:
    t.emu.seed({"accounts": [{"Company": "10", "Account": "6200", "ValidFrom": "2027-01-01",
                              "ValidUntil": "2099-12-31"}]})
    head = await t.create_invoice()
    r = await t.add_line(head.body, head.etag, Account="6200")
    assert r.status == 500 and r.code == "ACCOUNT_NOT_VALID" and "2026-11-04" in _text(r)
    t.emu.seed({"accounts": [{"Company": "10", "Account": "6200", "ValidFrom": "2020-01-01"}]})
    assert (await t.add_line(head.body, head.etag, Account="6200")).status == 201


@tenant_test()
async def test_cost_center_must_exist_and_be_valid(t: Tenant) -> None:
    head = await t.create_invoice()
    r = await t.add_line(head.body, head.etag, CodeB="CC999")
    assert r.status == 400 and r.code == "CODE_PART_NOT_FOUND"
    assert r.body["error"]["message"]["lang"] == "en-US"    # the {"lang","value"} shape
    assert "CC999" in r.body["error"]["message"]["value"]
    t.emu.seed({"code_parts": [{"Company": "10", "CodePart": "B", "Value": "CC400",
                                "ValidFrom": "2000-01-01", "ValidUntil": "2025-12-31"}]})
    r = await t.add_line(head.body, head.etag, CodeB="CC400")
    assert r.status == 400 and r.code == "CODE_PART_NOT_VALID"


@tenant_test()
async def test_supplier_must_exist_and_be_connected_to_the_company(t: Tenant) -> None:
    r = await t.create_invoice(Identity="V00877")
    assert r.status == 400 and r.code == "SUPPLIER_NOT_FOUND"
    t.emu.seed({"suppliers": [{"SupplierId": "V00877", "Name": "Nordlicht GmbH"}]})
    r = await t.create_invoice(Identity="V00877")
    assert r.status == 500 and r.code == "SUPPLIER_NOT_CONNECTED"
    assert "not connected to company 10" in _text(r)
    assert t.emu.state()["invoices"] == []


@tenant_test()
async def test_duplicate_invoice_number_is_fnd_record_exist(t: Tenant) -> None:
    assert (await t.create_invoice()).status == 201
    r = await t.create_invoice(ExternalRef="other")
    assert r.status == 400 and r.code == "FND_RECORD_EXIST"
    assert "INV-2026-0117" in _text(r)
    # Same number from another supplier is a different invoice.
    t.emu.seed({"suppliers": [{"SupplierId": "V00877", "Name": "Nordlicht GmbH"}],
                "supplier_companies": [{"SupplierId": "V00877", "Company": "10"}]})
    assert (await t.create_invoice(Identity="V00877", Currency="EUR")).status == 201


@tenant_test()
async def test_post_checks_balance(t: Tenant) -> None:
    head = await t.create_invoice(InvoiceNo="EMPTY")
    r = await t.post(INVOICE, f"{invoice_path(head.body)}/{POST_ACTION}", if_match=head.etag)
    assert r.code == "NOT_BALANCED" and "no posting lines" in _text(r)

    async def post_with(net: str, vat: str, gross: str, number: str) -> Resp:
        inv, etag = await t.full_invoice(InvoiceNo=number, NetCurrAmount=net,
                                         VatCurrAmount=vat, GrossCurrAmount=gross)
        return await t.post(INVOICE, f"{invoice_path(inv)}/{POST_ACTION}", if_match=etag)

    r = await post_with("1200.00", "100.00", "1300.00", "NET")
    assert (r.status, r.code) == (400, "NOT_BALANCED") and "1250.00" in _text(r)
    r = await post_with("1250.00", "99.00", "1349.00", "VAT")
    assert r.code == "NOT_BALANCED" and "tax" in _text(r)
    r = await post_with("1250.00", "100.00", "1350.01", "GROSS")
    assert r.code == "NOT_BALANCED" and "gross" in _text(r)
    r = await post_with("1250", "100", "1350", "OK")          # 1250 == 1250.00
    assert r.status == 200 and r.body["Objstate"] == "Posted"
    states = {i["InvoiceNo"]: i["Objstate"] for i in t.emu.state()["invoices"]}
    assert states == {"EMPTY": "Preliminary", "NET": "Preliminary", "VAT": "Preliminary",
                      "GROSS": "Preliminary", "OK": "Posted"}


@tenant_test()
async def test_voucher_approve_checks_rows_balance_and_period(t: Tenant) -> None:
    async def voucher(date: str, rows: list[tuple[str, str, str]]) -> Resp:
        r = await t.create_voucher(VoucherDate=date)
        v, etag = r.body, r.etag
        for account, debit, credit in rows:
            body = {"Account": account, "CurrencyDebitAmount": debit or None,
                    "CurrencyCreditAmount": credit or None}
            assert (await t.post(VOUCHER, voucher_path(v) + "/Rows", body,
                                 if_match=etag)).status == 201
        return await t.post(VOUCHER, f"{voucher_path(v)}/{APPROVE_ACTION}", if_match=etag)

    r = await voucher("2026-11-04", [("6100", "10.00", "")])
    assert r.code == "NOT_BALANCED" and "two rows" in _text(r)
    r = await voucher("2026-11-04", [("6100", "10.00", ""), ("2440", "", "9.99")])
    assert r.code == "NOT_BALANCED" and "9.99" in _text(r)
    r = await voucher("2025-12-31", [("6100", "10.00", ""), ("2440", "", "10.00")])
    assert (r.status, r.code) == (500, "PERIOD_CLOSED")
    r = await voucher("2026-01-01", [("6100", "10.00", ""), ("2440", "", "10.00")])
    assert r.status == 200 and r.body["Objstate"] == "Approved"
    t.emu.seed({"companies": [{"company": "10", "closed_periods": ["2025", "2026-02"]}]})
    r = await voucher("2026-02-10", [("6100", "1", ""), ("2440", "", "1")])
    assert r.code == "PERIOD_CLOSED"


@tenant_test()
async def test_amount_decimals_follow_the_currency(t: Tenant) -> None:
    r = await t.create_invoice(InvoiceNo="USD3", NetCurrAmount="1250.001")
    assert r.status == 400 and r.code == "CURRENCY_ROUNDING"
    r = await t.create_invoice(InvoiceNo="JPY", Currency="JPY", NetCurrAmount="1000.5",
                               VatCurrAmount="0", GrossCurrAmount="1000.5")
    assert r.code == "CURRENCY_ROUNDING"
    r = await t.create_invoice(InvoiceNo="JPY", Currency="JPY", NetCurrAmount="1000",
                               VatCurrAmount="100", GrossCurrAmount="1100")
    assert r.status == 201
    r = await t.add_line(r.body, r.etag, CurrAmount="999.50", TaxCurrAmount="100")
    assert r.code == "CURRENCY_ROUNDING"                     # trailing zeros do not count,
    r = await t.create_invoice(InvoiceNo="KWD", Currency="KWD", NetCurrAmount="1.125",
                               VatCurrAmount="0.000", GrossCurrAmount="1.125")
    assert r.status == 201                                   # 3 decimals allowed for KWD
    r = await t.create_invoice(InvoiceNo="KWD4", Currency="KWD", NetCurrAmount="1.1255")
    assert r.code == "CURRENCY_ROUNDING"
    r = await t.create_invoice(InvoiceNo="USD0", NetCurrAmount="1250.000")
    assert r.status == 201                                   # ...only significant decimals


@tenant_test()
async def test_malformed_bodies_are_400(t: Tenant) -> None:
    r = await t.create_invoice(Colour="red")
    assert r.status == 400 and "Colour" in r.body["error"]["message"]
    r = await t.create_invoice(NetCurrAmount="12,50")
    assert r.status == 400
    r = await t.create_invoice(InvoiceDate="04.11.2026")
    assert r.status == 400
    r = await t.call("POST", INVOICE, "PostingProposalHeadSet", data=b"{not json",
                     headers={"Content-Type": "application/json"})
    assert r.status == 400 and r.code == "ODP_DESERIALIZATION_ERROR"
    r = await t.create_invoice(InvoiceNo=None)
    assert r.status == 400 and r.code == "FND_MANDATORY"
    r = await t.create_invoice(Company="99")
    assert r.code == "COMPANY_NOT_FOUND"
