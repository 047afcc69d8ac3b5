"""$batch: atomic changesets, $n references, continue-on-error, limits, budget counting."""
from __future__ import annotations

from typing import Any

from .helpers import (ACCOUNTS, INVOICE, POST_ACTION, Tenant, batch_body, parse_batch,
                      send_batch, tenant_test)


def invoice_changeset(number: str, account: str = "6100") -> list[dict[str, Any]]:
    """Header + two lines + post, the lines and the action addressed through $1."""
    head = {"Company": "10", "Identity": "V00231", "InvoiceNo": number, "InvoiceType": "INVOICE",
            "InvoiceDate": "2026-11-04", "Currency": "USD", "NetCurrAmount": "1250.00",
            "VatCurrAmount": "100.00", "GrossCurrAmount": "1350.00", "ExternalRef": number}
    return [
        {"method": "POST", "url": "PostingProposalHeadSet", "body": head, "content_id": "1"},
        {"method": "POST", "url": "$1/Lines", "if_match": "$1", "content_id": "2",
         "body": {"Account": "6100", "CodeB": "CC210", "CurrAmount": "750.00",
                  "TaxCode": "TX8", "TaxCurrAmount": "60.00"}},
        {"method": "POST", "url": "$1/Lines", "if_match": "$1", "content_id": "3",
         "body": {"Account": account, "CodeB": "CC220", "CurrAmount": "500.00",
                  "TaxCode": "TX8", "TaxCurrAmount": "40.00"}},
        {"method": "POST", "url": f"$1/{POST_ACTION}", "if_match": "$1", "content_id": "4"},
    ]


def _invoices(t: Tenant) -> dict[str, tuple[str, int]]:
    return {i["InvoiceNo"]: (i["Objstate"], len(i["Lines"])) for i in t.emu.state()["invoices"]}


@tenant_test()
async def test_good_changeset_with_references(t: Tenant) -> None:
    r = await send_batch(t, INVOICE, [invoice_changeset("B-1")])
    assert r.status == 200 and r.headers["Content-Type"].startswith("multipart/mixed")
    [changeset] = parse_batch(r)
    assert [s for s, _, _ in changeset] == [201, 201, 201, 200]
    assert [h["Content-ID"] for _, h, _ in changeset] == ["1", "2", "3", "4"]
    created, posted = changeset[0], changeset[3]
    assert posted[2]["Objstate"] == "Posted" and posted[1]["ETag"] != created[1]["ETag"]
    assert _invoices(t) == {"B-1": ("Posted", 2)}


@tenant_test()
async def test_bad_changeset_is_atomic_and_stops_the_batch(t: Tenant) -> None:
    items = [invoice_changeset("B-1"), invoice_changeset("B-2", account="6999"),
             invoice_changeset("B-3")]
    parts = parse_batch(await send_batch(t, INVOICE, items))
    assert len(parts) == 2                        # stopped after the failed changeset
    status, headers, body = parts[1]              # a failed changeset: one error response
    assert status == 500 and body["error"]["code"] == "ACCOUNT_NOT_FOUND"
    assert headers.get("Content-ID") == "3"       # the operation that failed
    assert _invoices(t) == {"B-1": ("Posted", 2)}  # B-2's header and first line undone


@tenant_test()
async def test_continue_on_error(t: Tenant) -> None:
    items = [invoice_changeset("B-1", account="6999"), invoice_changeset("B-2"),
             invoice_changeset("B-2"),             # duplicate number: FND_RECORD_EXIST
             {"method": "GET", "url": "AccountSet?$filter=Account%20eq%20'6100'"}]
    r = await send_batch(t, INVOICE, items, continue_on_error=True)
    assert r.headers["Preference-Applied"] == "odata.continue-on-error"
    parts = parse_batch(r)
    assert parts[0][0] == 500
    assert [s for s, _, _ in parts[1]] == [201, 201, 201, 200]
    assert parts[2][0] == 400 and parts[2][2]["error"]["code"] == "FND_RECORD_EXIST"
    assert parts[3][0] == 404                       # AccountSet is not in this projection
    assert _invoices(t) == {"B-2": ("Posted", 2)}


@tenant_test()
async def test_reads_outside_changesets_and_get_inside_is_400(t: Tenant) -> None:
    items = [{"method": "GET", "url": "AccountSet?$filter=Account%20eq%20'6100'"},
             {"method": "GET", "url": "AccountSet('10','6100')"}]
    parts = parse_batch(await send_batch(t, ACCOUNTS, items))
    assert parts[0][0] == 200 and [a["Account"] for a in parts[0][2]["value"]] == ["6100"]
    assert parts[1][0] == 400                      # two keys: name them
    items = [{"method": "GET", "url": "AccountSet(Company='10',Account='6100')"}]
    parts = parse_batch(await send_batch(t, ACCOUNTS, items))
    assert parts[0][0] == 200 and parts[0][1]["ETag"].startswith('W/"')
    cs = invoice_changeset("B-9")[:1] + [{"method": "GET", "url": "PostingProposalHeadSet"}]
    parts = parse_batch(await send_batch(t, INVOICE, [cs]))
    assert parts[0][0] == 400
    assert _invoices(t) == {}


@tenant_test()
async def test_absolute_urls_and_missing_if_match_inside_changeset(t: Tenant) -> None:
    cs = invoice_changeset("B-1")
    cs[0]["url"] = t.url(INVOICE, "PostingProposalHeadSet")
    del cs[1]["if_match"]
    parts = parse_batch(await send_batch(t, INVOICE, [cs]))
    assert parts[0][0] == 428
    assert _invoices(t) == {}


@tenant_test()
async def test_operation_cap(t: Tenant) -> None:
    get = {"method": "GET", "url": "AccountSet?$top=1"}
    r = await send_batch(t, ACCOUNTS, [get] * 5001)
    assert r.status == 400 and r.code == "ODP_REQUEST_TOO_LARGE"
    cs = [{"method": "POST", "url": "AccountSet", "body": {}}] * 5001
    r = await send_batch(t, ACCOUNTS, [cs])
    assert r.code == "ODP_REQUEST_TOO_LARGE"
    r = await send_batch(t, ACCOUNTS, [get] * 5000)
    assert r.status == 200 and len(parse_batch(r)) == 5000


@tenant_test(budget=(3, 60.0))
async def test_a_batch_is_one_request_for_the_budget(t: Tenant) -> None:
    items = [invoice_changeset(f"B-{n}") for n in range(5)]
    r = await send_batch(t, INVOICE, items)
    assert r.status == 200 and len(parse_batch(r)) == 5
    assert (await t.get(ACCOUNTS, "AccountSet")).status == 200
    assert (await send_batch(t, INVOICE, [invoice_changeset("B-9")])).status == 200
    assert (await t.get(ACCOUNTS, "AccountSet")).status == 429
    log = t.emu.requests()
    outer = [e for e in log if e["path"].endswith("$batch")]
    inner = [e for e in log if e["kind"] == "batch-operation"]
    assert len(inner) == 24 and {e["batch"] for e in inner} == {e["seq"] for e in outer}


@tenant_test()
async def test_malformed_batches(t: Tenant) -> None:
    r = await t.call("POST", INVOICE, "$batch", data=b"{}",
                     headers={"Content-Type": "application/json"})
    assert r.status == 400
    body = batch_body([{"method": "GET", "url": "PostingProposalHeadSet"}])
    r = await send_batch(t, INVOICE, [], body=body.replace(b"--batch_x--", b""))
    assert r.status == 400
