"""Rate budget and scripted faults, from Python and over HTTP."""
from __future__ import annotations

import aiohttp
import pytest

from .helpers import (ACCOUNTS, INVOICE, POST_ACTION, Tenant, invoice_path, parse_batch,
                      send_batch, tenant_test)
from .test_batch import invoice_changeset


@tenant_test(budget=(5, 60.0))
async def test_budget_sliding_window_with_retry_after(t: Tenant) -> None:
    for _ in range(3):
        assert (await t.get(ACCOUNTS, "AccountSet")).status == 200
    t.emu.advance_clock(30)
    for _ in range(2):
        assert (await t.get(ACCOUNTS, "AccountSet")).status == 200
    r = await t.get(ACCOUNTS, "AccountSet")
    assert r.status == 429
    assert 29 <= int(r.headers["Retry-After"]) <= 31      # when the oldest three leave
    t.emu.advance_clock(31)
    for _ in range(3):
        assert (await t.get(ACCOUNTS, "AccountSet")).status == 200
    assert (await t.get(ACCOUNTS, "AccountSet")).status == 429    # the last two still count
    t.emu.configure(retry_after=False)
    r = await t.get(ACCOUNTS, "AccountSet")
    assert r.status == 429 and "Retry-After" not in r.headers


@tenant_test(budget=(100, 6.0))
async def test_benchmark_budget(t: Tenant) -> None:
    statuses = [(await t.get(ACCOUNTS, "AccountSet", params={"$top": "1"})).status
                for _ in range(101)]
    assert statuses.count(200) == 100 and statuses[-1] == 429
    t.emu.advance_clock(6.1)
    assert (await t.get(ACCOUNTS, "AccountSet")).status == 200


@tenant_test()
async def test_429_bursts_with_and_without_retry_after(t: Tenant) -> None:
    t.emu.rate_limit_burst(2, retry_after=3)
    for _ in range(2):
        r = await t.get(ACCOUNTS, "AccountSet")
        assert r.status == 429 and r.headers["Retry-After"] == "3"
    assert (await t.get(ACCOUNTS, "AccountSet")).status == 200
    t.emu.rate_limit_burst(1, retry_after=None)
    r = await t.get(ACCOUNTS, "AccountSet")
    assert r.status == 429 and "Retry-After" not in r.headers
    assert (await t.get(ACCOUNTS, "AccountSet")).status == 200


@tenant_test()
async def test_named_faults_for_the_next_n_requests(t: Tenant) -> None:
    cases = [(t.emu.mi_modified, 503, "MI_MODIFIED_ERROR"), (t.emu.locked, 423, "FND_LOCKED"),
             (t.emu.gateway_timeout, 504, "ODP_OPERATION_TIMEOUT")]
    for inject, status, code in cases:
        inject(2)
        for _ in range(2):
            r = await t.get(ACCOUNTS, "AccountSet")
            assert (r.status, r.code) == (status, code)
        assert (await t.get(ACCOUNTS, "AccountSet")).status == 200
    t.emu.add_fault("error", 1, status=403, code="ODP_FORBIDDEN", message="No grant")
    assert (await t.get(ACCOUNTS, "AccountSet")).code == "ODP_FORBIDDEN"


@tenant_test()
async def test_faults_target_method_and_path(t: Tenant) -> None:
    t.emu.locked(1, method="POST", path="PostingProposalHeadSet")
    assert (await t.get(INVOICE, "PostingProposalHeadSet")).status == 200
    assert (await t.get(ACCOUNTS, "AccountSet")).status == 200
    r = await t.create_invoice()
    assert r.status == 423 and t.emu.state()["invoices"] == []
    assert (await t.create_invoice()).status == 201
    assert t.emu.faults_listing()[0]["hits"] == 1


@tenant_test()
async def test_commit_then_drop_leaves_exactly_one_document(t: Tenant) -> None:
    t.emu.drop_after_commit(1, method="POST", path="PostingProposalHeadSet")
    with pytest.raises(aiohttp.ClientConnectionError):
        await t.create_invoice()
    # The client cannot know; it looks before retrying, and a blind retry is refused.
    found = await t.get(INVOICE, "PostingProposalHeadSet", params={
        "$filter": "Company eq '10' and Identity eq 'V00231' and InvoiceNo eq 'INV-2026-0117'"})
    assert len(found.body["value"]) == 1
    assert (await t.create_invoice()).code == "FND_RECORD_EXIST"
    assert len(t.emu.state()["invoices"]) == 1
    dropped = [e for e in t.emu.requests() if e["dropped"]]
    assert len(dropped) == 1 and dropped[0]["status"] == 201


@tenant_test()
async def test_drop_after_commit_of_an_action(t: Tenant) -> None:
    inv, etag = await t.full_invoice()
    t.emu.drop_after_commit(1, path="PostingProposalHead_Post")
    with pytest.raises(aiohttp.ClientConnectionError):
        await t.post(INVOICE, f"{invoice_path(inv)}/{POST_ACTION}", if_match=etag)
    got = await t.get(INVOICE, invoice_path(inv))
    assert got.body["Objstate"] == "Posted"


@tenant_test()
async def test_drop_inside_a_batch_commits_the_changesets(t: Tenant) -> None:
    t.emu.drop_after_commit(1, method="POST", path="PostingProposalHeadSet")
    with pytest.raises(aiohttp.ClientConnectionError):
        await send_batch(t, INVOICE, [invoice_changeset("B-1"), invoice_changeset("B-2")])
    assert {i["InvoiceNo"]: i["Objstate"] for i in t.emu.state()["invoices"]} == {
        "B-1": "Posted", "B-2": "Posted"}
    parts = parse_batch(await send_batch(t, INVOICE, [invoice_changeset("B-1")]))
    assert parts[0][2]["error"]["code"] == "FND_RECORD_EXIST"
    assert len(t.emu.state()["invoices"]) == 2


@tenant_test()
async def test_path_scoped_fault_hits_one_operation_of_a_batch(t: Tenant) -> None:
    t.emu.locked(1, path="/Lines")
    parts = parse_batch(await send_batch(t, INVOICE, [invoice_changeset("B-1"),
                                                      invoice_changeset("B-2")],
                                         continue_on_error=True))
    assert parts[0][0] == 423
    assert [s for s, _, _ in parts[1]] == [201, 201, 201, 200]
    assert [i["InvoiceNo"] for i in t.emu.state()["invoices"]] == ["B-2"]


@tenant_test()
async def test_faults_over_http(t: Tenant) -> None:
    admin = t.emu.base_url + "/_emulator/faults"
    specs = [{"kind": "mi_modified", "count": 1},
             {"kind": "rate_limit", "count": 1, "retry_after": 7, "path": "AccountSet"}]
    async with t.session.post(admin, json=specs) as r:
        assert r.status == 200 and len(await r.json()) == 2
    async with t.session.get(admin) as r:
        assert [f["kind"] for f in await r.json()] == ["mi_modified", "rate_limit"]
    assert (await t.get(ACCOUNTS, "AccountSet")).status == 503
    r = await t.get(ACCOUNTS, "AccountSet")
    assert r.status == 429 and r.headers["Retry-After"] == "7"
    async with t.session.post(admin, json={"kind": "locked", "count": 5}) as r:
        assert r.status == 200
    async with t.session.delete(admin) as r:
        assert r.status == 200
    assert (await t.get(ACCOUNTS, "AccountSet")).status == 200
    async with t.session.post(admin, json={"kind": "revoke_tokens"}) as r:
        assert (await r.json())[0]["revoked"] >= 1
    assert (await t.get(ACCOUNTS, "AccountSet")).status == 401
    async with t.session.post(admin, json={"kind": "warp"}) as r:
        assert r.status == 400


@tenant_test()
async def test_drop_waits_for_a_committed_write(t: Tenant) -> None:
    t.emu.drop_after_commit(1, method="POST", path="PostingProposalHeadSet")
    bad = invoice_changeset("B-1", account="6999")     # rolls back: nothing to drop after
    parts = parse_batch(await send_batch(t, INVOICE, [bad]))
    assert parts[0][0] == 500
    assert t.emu.faults_listing()[0]["count"] == 1     # still armed
    with pytest.raises(aiohttp.ClientConnectionError):
        await send_batch(t, INVOICE, [invoice_changeset("B-2")])
    assert [i["InvoiceNo"] for i in t.emu.state()["invoices"]] == ["B-2"]
