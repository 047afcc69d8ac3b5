"""$filter, $select, $orderby, $expand, $count and paging (with and without nextLink)."""
from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from .helpers import ACCOUNTS, INVOICE, POST_ACTION, Tenant, invoice_path, tenant_test

MANY = {"accounts": [{"Company": "10", "Account": f"9{i:05d}", "Description": f"Generated {i}",
                      "ValidFrom": "2000-01-01", "ValidUntil": "2099-12-31"}
                     for i in range(6001)]}
SEEDED = 5 + 6001


async def _values(t: Tenant, projection: str, path: str, **params: str) -> list[dict]:
    r = await t.get(projection, path, params=params)
    assert r.status == 200, r.text
    return r.body["value"]


@tenant_test()
async def test_next_link_paging_over_5000(t: Tenant) -> None:
    t.emu.seed(MANY)
    first = await t.get(ACCOUNTS, "AccountSet", params={"$count": "true"})
    assert first.body["@odata.count"] == SEEDED
    assert len(first.body["value"]) == 5000
    link = first.body["@odata.nextLink"]
    assert link.startswith(t.emu.base_url + "/int/ifsapplications/projection/v1/")
    second = await t.get_url(link)
    assert len(second.body["value"]) == SEEDED - 5000
    assert "@odata.nextLink" not in second.body
    keys = [a["Account"] for a in first.body["value"] + second.body["value"]]
    assert len(set(keys)) == SEEDED and keys == sorted(keys)


@tenant_test()
async def test_top_above_5000_is_capped_and_continues(t: Tenant) -> None:
    t.emu.seed(MANY)
    r = await t.get(ACCOUNTS, "AccountSet", params={"$top": "5500", "$skip": "10"})
    assert len(r.body["value"]) == 5000
    query = parse_qs(urlsplit(r.body["@odata.nextLink"]).query)
    assert query["$skip"] == ["5010"] and query["$top"] == ["500"]
    rest = await t.get_url(r.body["@odata.nextLink"])
    assert len(rest.body["value"]) == 500 and "@odata.nextLink" not in rest.body


@tenant_test(next_links=False)
async def test_paging_without_next_link_by_skip(t: Tenant) -> None:
    t.emu.seed(MANY)
    seen: list[str] = []
    skip = 0
    while True:
        r = await t.get(ACCOUNTS, "AccountSet", params={
            "$orderby": "Company,Account", "$skip": str(skip), "$top": "5000"})
        assert "@odata.nextLink" not in r.body
        page = r.body["value"]
        seen += [a["Account"] for a in page]
        skip += len(page)
        if len(page) < 5000:
            break
    assert len(seen) == len(set(seen)) == SEEDED


@tenant_test(page_size=2)
async def test_small_configured_page_size_with_filter(t: Tenant) -> None:
    r = await t.get(ACCOUNTS, "AccountSet", params={"$filter": "startswith(Account,'6')",
                                                    "$count": "true"})
    assert len(r.body["value"]) == 1 or len(r.body["value"]) == 2
    assert r.body["@odata.count"] == 2 and "@odata.nextLink" not in r.body
    r = await t.get(ACCOUNTS, "AccountSet")
    names = [a["Account"] for a in r.body["value"]]
    while "@odata.nextLink" in r.body:
        r = await t.get_url(r.body["@odata.nextLink"])
        names += [a["Account"] for a in r.body["value"]]
    assert names == ["2440", "2640", "2641", "6100", "6540"]


@tenant_test()
async def test_filter_operators(t: Tenant) -> None:
    async def accounts(expr: str) -> list[str]:
        return [a["Account"] for a in await _values(t, ACCOUNTS, "AccountSet", **{
            "$filter": expr})]

    assert await accounts("Company eq '10' and Account eq '6100'") == ["6100"]
    assert await accounts("Account ne '2640' and Account lt '2641'") == ["2440"]
    assert await accounts("Account ge '2640' and Account le '2641'") == ["2640", "2641"]
    assert await accounts("Account eq '2440' or (Account gt '6000' and not "
                          "(Account eq '6540'))") == ["2440", "6100"]
    assert await accounts("contains(Description,'tax')") == ["2640", "2641"]
    assert await accounts("endswith(Description,'VAT19')") == ["2641"]
    assert await accounts("tolower(Description) eq 'consulting fees'") == ["6540"]
    assert await accounts("contains(toupper(Description),'PAYABLE')") == ["2440"]
    assert await accounts("ValidUntil lt 2100-01-01 and ValidFrom le 2000-01-01") == \
        ["2440", "2640", "2641", "6100", "6540"]
    t.emu.seed({"accounts": [{"Company": "10", "Account": "7000", "Description": "Tom's"}]})
    assert await accounts("Description eq 'Tom''s'") == ["7000"]
    assert await accounts("ValidFrom eq null") == ["7000"]


@tenant_test()
async def test_filter_type_errors_are_400(t: Tenant) -> None:
    for expr in ("Account eq 6100",                      # string vs number
                 "Colour eq 'red'",                      # no such property
                 "Account eq '6100' and",                # syntax
                 "ValidFrom eq '2000-01-01'",            # date vs string
                 "contains(Account)"):                   # arity
        r = await t.get(ACCOUNTS, "AccountSet", params={"$filter": expr})
        assert r.status == 400, expr


@tenant_test()
async def test_enum_literals_and_plain_string_vs_enum(t: Tenant) -> None:
    inv, etag = await t.full_invoice()
    r = await t.post(INVOICE, f"{invoice_path(inv)}/{POST_ACTION}", if_match=etag)
    assert r.status == 200
    head = await t.create_invoice(InvoiceNo="PRELIM")
    assert head.status == 201
    posted = "Objstate eq IfsApp.ManualSupplierInvoiceHandling.PostingProposalHeadState'Posted'"
    rows = await _values(t, INVOICE, "PostingProposalHeadSet", **{"$filter": posted})
    assert [i["InvoiceNo"] for i in rows] == ["INV-2026-0117"]
    rows = await _values(t, INVOICE, "PostingProposalHeadSet", **{
        "$filter": "Objstate ne IfsApp.ManualSupplierInvoiceHandling."
                   "PostingProposalHeadState'Posted' and Company eq '10'"})
    assert [i["InvoiceNo"] for i in rows] == ["PRELIM"]
    r = await t.get(INVOICE, "PostingProposalHeadSet", params={"$filter": "Objstate eq 'Posted'"})
    assert r.status == 400 and "not compatible" in r.body["error"]["message"]
    r = await t.get(INVOICE, "PostingProposalHeadSet", params={
        "$filter": "Objstate eq IfsApp.ManualSupplierInvoiceHandling.PostingProposalHeadState"
                   "'Flying'"})
    assert r.status == 400
    r = await t.get(INVOICE, "PostingProposalHeadSet", params={
        "$filter": "InvoiceNo eq IfsApp.ManualSupplierInvoiceHandling.PostingProposalHeadState"
                   "'Posted'"})
    assert r.status == 400


@tenant_test()
async def test_lookup_by_business_keys_and_numbers(t: Tenant) -> None:
    await t.full_invoice()
    await t.create_invoice(InvoiceNo="A-2", ExternalRef="ledger-2", NetCurrAmount="5.00",
                           VatCurrAmount="0", GrossCurrAmount="5.00")
    rows = await _values(t, INVOICE, "PostingProposalHeadSet", **{
        "$filter": "Company eq '10' and Identity eq 'V00231' and InvoiceNo eq 'A-2'"})
    assert [r["ExternalRef"] for r in rows] == ["ledger-2"]
    rows = await _values(t, INVOICE, "PostingProposalHeadSet", **{
        "$filter": "GrossCurrAmount gt 100.5"})
    assert [r["InvoiceNo"] for r in rows] == ["INV-2026-0117"]
    rows = await _values(t, INVOICE, "PostingProposalHeadSet", **{
        "$filter": f"InvoiceId eq {rows[0]['InvoiceId']}"})
    assert len(rows) == 1


@tenant_test()
async def test_select_orderby_expand(t: Tenant) -> None:
    rows = await _values(t, ACCOUNTS, "AccountSet", **{"$select": "Account,Description",
                                                       "$orderby": "Description desc"})
    assert rows[0] == {"@odata.etag": rows[0]["@odata.etag"], "Account": "6100",
                       "Description": "Maintenance materials"}
    assert [r["Description"] for r in rows] == sorted((r["Description"] for r in rows),
                                                      reverse=True)
    t.emu.seed({"accounts": [{"Company": "20", "Account": "6100", "Description": "B"}]})
    rows = await _values(t, ACCOUNTS, "AccountSet", **{
        "$orderby": "Account desc,Company asc", "$filter": "Account eq '6100' or "
                                                         "Account eq '6540'"})
    assert [(r["Account"], r["Company"]) for r in rows] == [("6540", "10"), ("6100", "10"),
                                                           ("6100", "20")]
    r = await t.get(ACCOUNTS, "AccountSet", params={"$select": "Nope"})
    assert r.status == 400
    inv, _ = await t.full_invoice()
    r = await t.get(INVOICE, "PostingProposalHeadSet", params={"$expand": "Lines"})
    assert r.status == 501 and r.code == "ODP_NOT_IMPLEMENTED"
    lines = await _values(t, INVOICE, invoice_path(inv) + "/Lines", **{
        "$expand": "AccountRef", "$select": "RowNo,Account"})
    assert lines[0]["AccountRef"]["Description"] == "Maintenance materials"
    po = await t.get("PurchaseOrderHandling", "PurchaseOrderSet('PO-55012')",
                     params={"$expand": "VendorRef"})
    assert po.body["VendorRef"]["Name"] == "Acme Industrial Supply"
