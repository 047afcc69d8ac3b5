"""Issue 17, items 2 and 3: redirects and answers that are not OData, from small hostile
servers on loopback in front of (or instead of) the IFS emulator."""
from __future__ import annotations

import asyncio

import pytest

from adapters.ifs.errors import BadAnswer, OutcomeUnknown, RedirectRefused
from ledger.model import VendorRecord
from ledger.ports import ErpFailure, ErpUnavailable
from sandbox.ifs.app import IfsEmulator

from .helpers import SECRET, erp_for, odata_log, request, simple
from .hostile import Hostile, html_page, json_answer, redirect


def behind_proxy(test, **erp_kwargs):
    """The connector talks to a proxy in front of the emulator; `elsewhere` is another host
    that answers `{}` to everything and records what it got."""
    async def main():
        async with IfsEmulator() as emu, Hostile.forwarding(emu.base_url) as proxy, \
                Hostile(answer=json_answer({})) as elsewhere:
            erp = erp_for(emu, base_url=proxy.base_url, **erp_kwargs)
            try:
                return await test(emu, proxy, elsewhere, erp)
            finally:
                await erp.close()
    return asyncio.run(main())


async def read_supplier(erp):
    ep = erp.endpoints["supplier"]
    return await erp.odata.get_entity(ep.projection, f"{ep.entity_set}(SupplierId='V00231')",
                                      what="reading supplier V00231")


# ---------------------------------------------------------------- redirects (item 2)


@pytest.mark.parametrize("status", [307, 308, 302])
def test_a_redirect_from_the_token_endpoint_never_carries_the_secret_elsewhere(status):
    async def body(emu, proxy, elsewhere, erp):
        proxy.add(redirect(elsewhere.base_url + "/steal", status), path="/auth/")
        with pytest.raises(RedirectRefused) as caught:
            await read_supplier(erp)
        assert elsewhere.received == []                  # the form never left for the Location
        message = str(caught.value)
        assert erp.tokens.url in message and elsewhere.base_url + "/steal" in message
        assert f"HTTP {status}" in message and SECRET not in message
        assert isinstance(caught.value, ErpUnavailable)  # the cycle stops; no invoice blamed
        items = await erp.check()                        # `ml-connector check` says so
        assert items[0][0] == "IFS token" and not items[0][1]
        assert "redirect" in items[0][2] and elsewhere.base_url in items[0][2]
        assert elsewhere.received == [] and not odata_log(emu)
    behind_proxy(body)


def test_a_redirect_on_a_supplier_patch_is_not_followed():
    async def body(emu, proxy, elsewhere, erp):
        proxy.add(redirect(elsewhere.base_url + "/", 302), method="PATCH")
        with pytest.raises(RedirectRefused) as caught:
            await erp.sync_vendor(VendorRecord(vendor_id="V00231", name="Renamed Supply Ltd"))
        assert elsewhere.received == []                  # the PATCH was not re-sent there
        assert "SupplierInfoGeneralSet(SupplierId='V00231')" in str(caught.value)
        assert elsewhere.base_url in str(caught.value)
        [supplier] = [s for s in emu.state()["suppliers"] if s["SupplierId"] == "V00231"]
        assert supplier["Name"] == "Acme Industrial Supply"
    behind_proxy(body)


def test_empty_answers_from_a_redirect_target_are_never_trusted_as_accounts():
    """The reference reads are redirected to a host that answers `{}` to everything: the
    connector neither asks it nor validates an invoice against nothing."""
    async def body(emu, proxy, elsewhere, erp):
        proxy.add(redirect(elsewhere.base_url + "/", 302), path="AccountSet")
        with pytest.raises(RedirectRefused):
            await erp.validate(simple())
        assert elsewhere.received == []
    behind_proxy(body)


# ---------------------------------------------------------------- answers that are not OData (item 3)


def test_an_html_page_on_a_read_is_a_bad_answer_retried_then_named():
    async def body(emu, proxy, elsewhere, erp):
        proxy.add(html_page(200), path="SupplierInfoGeneralSet")
        with pytest.raises(BadAnswer) as caught:
            await read_supplier(erp)
        err = caught.value
        assert err.kind == "transient" and err.content_type.startswith("text/html")
        assert "SupplierInfoGeneralSet(SupplierId='V00231')" in str(err)
        assert "text/html" in str(err) and proxy.base_url in str(err)
        hits = [r for r in proxy.received if "SupplierInfoGeneralSet" in r["path"]]
        assert len(hits) == erp.odata.backoff.attempts + 1   # retried with backoff, bounded
        proxy.clear()                                        # the proxy recovers
        erp.start_cycle(None)
        entity, _ = await read_supplier(erp)
        assert entity["SupplierId"] == "V00231"
    behind_proxy(body, breaker_after=100)


def test_an_html_page_recovers_within_the_retries():
    async def body(emu, proxy, elsewhere, erp):
        proxy.add(html_page(200), path="SupplierInfoGeneralSet", count=2)
        entity, _ = await read_supplier(erp)
        assert entity["SupplierId"] == "V00231"
    behind_proxy(body)


@pytest.mark.parametrize("answer,why", [
    (json_answer({}), "without the entity's fields"),
    (json_answer([1, 2]), "not an object"),
    (json_answer({"@odata.context": "x"}), "without the entity's fields"),
])
def test_json_without_the_fields_of_an_entity_is_a_bad_answer(answer, why):
    async def body(emu, proxy, elsewhere, erp):
        proxy.add(answer, path="SupplierInfoGeneralSet(")
        with pytest.raises(BadAnswer, match=why):
            await read_supplier(erp)
    behind_proxy(body)


def test_a_collection_without_value_is_a_bad_answer_not_an_empty_list():
    async def body(emu, proxy, elsewhere, erp):
        proxy.add(json_answer({}), path="AccountSet")
        with pytest.raises(BadAnswer, match="value"):
            await erp.validate(simple())
    behind_proxy(body)


def test_an_html_page_on_a_write_is_an_unknown_outcome_re_read_before_any_resend():
    async def body(emu, proxy, elsewhere, erp):
        proxy.add(html_page(200), method="PATCH")
        with pytest.raises(BadAnswer) as caught:
            await erp.sync_vendor(VendorRecord(vendor_id="V00231", name="Renamed Supply Ltd"))
        assert isinstance(caught.value, OutcomeUnknown) and "text/html" in str(caught.value)
        methods = [r["method"] for r in proxy.received if "SupplierInfoGeneralSet" in r["path"]]
        # a PATCH is only sent again after a fresh read shows the change still missing
        assert methods[:4] == ["GET", "PATCH", "GET", "PATCH"]
        assert all(a != b for a, b in zip(methods, methods[1:]))
    behind_proxy(body)


def test_an_html_page_instead_of_a_batch_answer_is_looked_up_not_reposted():
    async def body(emu, proxy, elsewhere, erp):
        proxy.add(html_page(200), path="$batch", count=1)
        [result] = await erp.post([request(simple("INV-HTML"))])
        assert isinstance(result, ErpFailure) and result.kind == "transient"
        assert "text/html" in str(result)
        assert not [i for i in emu.state()["invoices"]]       # the proxy kept it from IFS
        assert len([r for r in proxy.received if r["path"].endswith("$batch")]) == 1
    behind_proxy(body)


# ---------------------------------------------------------------- the IAM answering HTML (item 6)


@pytest.mark.parametrize("status", [200, 403])
def test_an_iam_answering_html_is_transient_for_the_cycle_not_rejected(status):
    async def body(emu, proxy, elsewhere, erp):
        proxy.add(html_page(status), path="/auth/")
        with pytest.raises(ErpUnavailable) as caught:
            await read_supplier(erp)
        assert caught.value.kind == "transient" and caught.value.code == "IAM_BAD_ANSWER"
        assert "text/html" in str(caught.value) and erp.tokens.url in str(caught.value)
    behind_proxy(body)
