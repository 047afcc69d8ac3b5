"""Inspection API, runtime seeding, $metadata, the thread runner and the CLI."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
import xml.etree.ElementTree as ET
from pathlib import Path

from sandbox.ifs import start_in_thread
from sandbox.ifs.schema import PROJECTIONS

from .helpers import (APPROVE_ACTION, CLIENT, INVOICE, VOUCHER, Tenant, tenant_test,
                      voucher_path)

EDM = "{http://docs.oasis-open.org/odata/ns/edm}"
ROOT = Path(__file__).resolve().parents[2]


async def _admin(t: Tenant, method: str, path: str, body: object = None) -> object:
    async with t.session.request(method, t.emu.base_url + "/_emulator/" + path,
                                 json=body) as r:
        assert r.status == 200, await r.text()
        return await r.json()


@tenant_test()
async def test_state_lists_documents_children_and_links(t: Tenant) -> None:
    await t.full_invoice()
    v = await t.create_voucher()
    for row in ({"Account": "6100", "CurrencyDebitAmount": "10"},
                {"Account": "2440", "CurrencyCreditAmount": "10"}):
        await t.post(VOUCHER, voucher_path(v.body) + "/Rows", row, if_match=v.etag)
    await t.post(VOUCHER, f"{voucher_path(v.body)}/{APPROVE_ACTION}", if_match=v.etag)
    state = await _admin(t, "GET", "state")
    [inv] = state["invoices"]
    assert inv["Objstate"] == "Preliminary" and [ln["RowNo"] for ln in inv["Lines"]] == [1, 2]
    assert inv["Lines"][1]["CurrAmount"] == "500.00"
    [voucher] = state["vouchers"]
    assert voucher["Objstate"] == "Approved" and len(voucher["Rows"]) == 2
    [supplier] = state["suppliers"]
    assert supplier["SupplierInvoiceCompanies"][0]["Company"] == "10"
    assert {a["Account"] for a in state["accounts"]} == {"6100", "6540", "2440", "2640", "2641"}
    assert {c["CodeB"] for c in state["code_parts"]["B"]} == {"CC210", "CC220", "CC300"}
    assert state["purchase_orders"][0]["OrderNo"] == "PO-55012"
    assert state["companies"][0]["open_periods"] == ["2026"]


@tenant_test()
async def test_request_log_redacts_and_records(t: Tenant) -> None:
    await t.create_invoice()
    log = await _admin(t, "GET", "requests")
    token = next(e for e in log if e["kind"] == "token")
    assert "sandbox-secret" not in json.dumps(token)
    post = next(e for e in log if e["method"] == "POST" and e["kind"] == "odata")
    assert post["status"] == 201 and post["body"]["InvoiceNo"] == "INV-2026-0117"
    assert post["headers"]["Authorization"] == "Bearer ***"
    assert '"NetCurrAmount": "1250.00"' in post["body_text"]   # sent as a string
    assert t.token not in json.dumps(log)
    later = await _admin(t, "GET", f"requests?since={post['seq']}")
    assert all(e["seq"] > post["seq"] for e in later)
    await _admin(t, "DELETE", "requests")
    assert await _admin(t, "GET", "requests") == []


@tenant_test()
async def test_seed_over_http_unblocks_a_line_then_reset(t: Tenant) -> None:
    head = await t.create_invoice()
    assert (await t.add_line(head.body, head.etag, Account="6999")).code == "ACCOUNT_NOT_FOUND"
    result = await _admin(t, "POST", "seed", {"accounts": [
        {"Company": "10", "Account": "6999", "Description": "Added by the test",
         "ValidFrom": "2020-01-01", "ValidUntil": "2030-12-31"}]})
    assert result == {"applied": {"accounts": 1}}
    assert (await t.add_line(head.body, head.etag, Account="6999")).status == 201
    async with t.session.post(t.emu.base_url + "/_emulator/seed",
                              json={"gadgets": []}) as r:
        assert r.status == 400
    await _admin(t, "POST", "reset")
    state = await _admin(t, "GET", "state")
    assert state["invoices"] == [] and len(state["accounts"]) == 5
    assert (await t.create_invoice()).status == 201            # the token survives a reset


@tenant_test()
async def test_config_over_http(t: Tenant) -> None:
    cfg = await _admin(t, "POST", "config", {"page_size": 2, "budget": [50, 6]})
    assert cfg["page_size"] == 2 and cfg["budget"] == [50, 6.0]
    r = await t.get("AccountsHandling", "AccountSet")
    assert len(r.body["value"]) == 2 and "@odata.nextLink" in r.body
    await _admin(t, "POST", "config", {"next_links": False})
    r = await t.get("AccountsHandling", "AccountSet")
    assert len(r.body["value"]) == 2 and "@odata.nextLink" not in r.body
    assert (await _admin(t, "POST", "clock", {"advance": 200}))["advanced"] == 200
    assert (await t.get("AccountsHandling", "AccountSet")).status == 401


@tenant_test()
async def test_metadata_lists_sets_keys_and_fields(t: Tenant) -> None:
    for projection, sets in PROJECTIONS.items():
        r = await t.get(projection, "$metadata")
        assert r.status == 200 and "xml" in r.headers["Content-Type"]
        schema = ET.fromstring(r.text).find(f".//{EDM}Schema")
        assert schema.get("Namespace") == f"IfsApp.{projection}"
        found = {e.get("Name"): e.get("EntityType") for e in schema.iter(f"{EDM}EntitySet")}
        assert set(found) == set(sets)
    r = await t.get(INVOICE, "$metadata")
    schema = ET.fromstring(r.text).find(f".//{EDM}Schema")
    types = {e.get("Name"): e for e in schema.iter(f"{EDM}EntityType")}
    head = types["PostingProposalHead"]
    assert [k.get("Name") for k in head.iter(f"{EDM}PropertyRef")] == ["Company", "InvoiceId"]
    props = {p.get("Name"): p.get("Type") for p in head.iter(f"{EDM}Property")}
    assert props["NetCurrAmount"] == "Edm.Decimal" and props["InvoiceDate"] == "Edm.Date"
    assert props["Objstate"] == "IfsApp.ManualSupplierInvoiceHandling.PostingProposalHeadState"
    line_keys = [k.get("Name") for k in types["PostingProposalLine"].iter(f"{EDM}PropertyRef")]
    assert line_keys == ["Company", "InvoiceId", "RowNo"]
    actions = {a.get("Name") for a in schema.iter(f"{EDM}Action")}
    assert actions == {"PostingProposalHead_Post"}
    r = await t.get(VOUCHER, "")
    assert [s["name"] for s in r.body["value"]] == ["VoucherSet"]
    assert (await t.get("NoSuchHandling", "$metadata")).status == 404


def test_thread_runner_serves_sync_callers() -> None:
    with start_in_thread(budget=(10, 60.0)) as emu:
        form = "&".join(f"{k}={v}" for k, v in CLIENT.items()).encode()
        with urllib.request.urlopen(emu.token_url(), data=form) as r:
            token = json.load(r)["access_token"]
        req = urllib.request.Request(emu.odata_url("AccountsHandling") + "AccountSet",
                                     headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(req) as r:
            assert len(json.load(r)["value"]) == 5
        assert emu.config()["budget"] == [10, 60.0]
        emu.seed({"accounts": [{"Company": "10", "Account": "7777"}]})
        assert len(emu.state()["accounts"]) == 6
        assert [e["status"] for e in emu.requests() if e["kind"] == "odata"] == [200]
        base = emu.base_url
    try:
        urllib.request.urlopen(base + "/_emulator/state", timeout=2)
        raise AssertionError("still serving after stop()")
    except OSError:
        pass


def test_cli_prints_base_url_and_serves(tmp_path: Path) -> None:
    seed = tmp_path / "seed.json"
    seed.write_text(json.dumps({"clients": [{"realm": "r9", "client_id": "c", "secret": "s"}],
                                "companies": [{"company": "77"}]}))
    proc = subprocess.Popen([sys.executable, "-m", "sandbox.ifs", "--port", "0", "--seed",
                             str(seed), "--budget", "100/6"], cwd=ROOT,
                            stdout=subprocess.PIPE, text=True, env={**os.environ})
    try:
        base = proc.stdout.readline().strip()
        assert base.startswith("http://127.0.0.1:")
        form = b"grant_type=client_credentials&client_id=c&client_secret=s"
        with urllib.request.urlopen(f"{base}/auth/realms/r9/protocol/openid-connect/token",
                                    data=form, timeout=5) as r:
            assert json.load(r)["token_type"] == "Bearer"
        with urllib.request.urlopen(f"{base}/_emulator/config", timeout=5) as r:
            assert json.load(r)["budget"] == [100, 6.0]
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0
