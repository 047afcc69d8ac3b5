"""Issue 13 items 3-5 against both servers: SAP CAP (independent) and the sandbox emulator.
The IFS client (IfsErp) runs in-process over real HTTP."""
from __future__ import annotations

import asyncio

import pytest

from adapters.ifs import IfsErp
from adapters.ifs.limiter import no_wait_backoff
from ledger.model import VendorRecord
from ledger.ports import ErpFailure
from tests.e2e.conftest import IFS_SECRET
from tests.ifs.helpers import run, settings_for

SUPPLIER = "SupplierHandling"


def cap_erp(front, **overrides) -> IfsErp:
    settings = settings_for(front.url, token_url=f"{front.url}/auth/token", **overrides)
    return IfsErp(settings, IFS_SECRET, backoff=no_wait_backoff(), default_company="10")


def on_cap(front, test, **overrides):
    async def main():
        erp = cap_erp(front, **overrides)
        try:
            return await test(erp)
        finally:
            await erp.close()
    return asyncio.run(main())


# ------------------------------------------------------------------ 404: not found vs misconfigured

async def _missing_supplier(erp):
    return await erp.odata.get_entity(SUPPLIER, "SupplierInfoGeneralSet(SupplierId='NOPE')",
                                      what="reading supplier NOPE")


def test_a_404_by_key_is_not_found_whatever_its_code_on_cap(front):
    assert on_cap(front, _missing_supplier) == (None, "")      # CAP: {"code": "404"}


def test_a_404_by_key_is_not_found_whatever_its_code_on_the_emulator():
    async def test(emu, erp):
        emu.add_fault("error", 1, method="GET", path="SupplierId='NOPE'", status=404,
                      code="404", message="Not Found")
        return await _missing_supplier(erp)
    assert run(test) == (None, "")


async def _wrong_map(erp):
    problems = []
    for projection, path in ((SUPPLIER, "NoSuchSet(SupplierId='V00231')"),
                             ("NoSuchHandling", "SupplierInfoGeneralSet(SupplierId='V00231')")):
        with pytest.raises(ErpFailure) as caught:
            await erp.odata.get_entity(projection, path, what="reading supplier V00231")
        problems.append(caught.value)
    return problems


@pytest.mark.parametrize("server", ["cap", "emulator"])
def test_a_404_for_an_unknown_service_or_entity_set_is_a_configuration_error(server, request):
    if server == "cap":
        problems = on_cap(request.getfixturevalue("front"), _wrong_map)
    else:
        problems = run(lambda emu, erp: _wrong_map(erp))
    for problem, missing in zip(problems, ("SupplierHandling.svc/NoSuchSet",
                                           "NoSuchHandling.svc/SupplierInfoGeneralSet")):
        assert problem.code == "ENDPOINT_NOT_FOUND" and problem.kind == "rejected"
        assert missing in str(problem) and "[ifs.endpoints]" in str(problem)


# ------------------------------------------------------------------ nextLink as a URL reference

@pytest.mark.parametrize("form", ["relative", "absolute", "root"])
def test_paging_follows_every_form_of_nextLink_on_cap(front, form):
    front.next_link = form

    async def test(erp):
        return await erp.odata.read_all("AccountsHandling", "AccountSet",
                                        keys=("Company", "Account"), what="reading accounts")
    rows = on_cap(front, test)
    assert sorted(r["Account"] for r in rows) == ["2440", "2640", "2641", "6100", "6540"]
    pages = [r for r in front.requests if "/AccountSet" in r["path"]]
    assert len(pages) == 3 and all(r["status"] == 200 for r in pages)   # CAP pages by 2


def test_paging_follows_nextLink_on_the_emulator():
    async def test(emu, erp):
        emu.configure(page_size=2, next_links=True)
        return await erp.odata.read_all("AccountsHandling", "AccountSet",
                                        keys=("Company", "Account"), what="reading accounts")
    assert len(run(test)) == 5


# ------------------------------------------------------------------ 5xx without a business code

def test_a_5xx_with_a_code_that_is_no_ifs_business_error_is_retried():
    async def test(emu, erp):
        emu.add_fault("error", 1, method="GET", path="AccountSet", status=500,
                      code="ODP_INTERNAL_ERROR", message="An internal error occurred")
        return await erp.odata.read_all("AccountsHandling", "AccountSet",
                                        keys=("Company", "Account"), what="reading accounts")
    assert len(run(test)) == 5


# ------------------------------------------------------------------ 412: re-read, retry

def test_a_stale_etag_on_cap_is_re_read_and_the_patch_retried(front, cap):
    path = "/int/ifsapplications/projection/v1/SupplierHandling.svc/SupplierInfoGeneralSet('V00231')"
    front.interfere = lambda method, p: (("PATCH", path, {"DefaultLanguage": "de"})
                                         if method == "PATCH" else None)
    vendor = VendorRecord(vendor_id="V00231", name="Acme Industrial Supply Co.", country="US")

    async def test(erp):
        return await erp.sync_vendor(vendor)
    result = on_cap(front, test)
    assert (result["action"], result["attempts"]) == ("updated", 2)
    patches = [r for r in front.requests if r["method"] == "PATCH"]
    assert [r["status"] for r in patches] == [412, 200]
    assert patches[0]["if_match"] != patches[1]["if_match"]
    held = [s for s in cap.state()["SupplierHandling.SupplierInfoGeneralSet"]
            if s["SupplierId"] == "V00231"][0]
    assert (held["Name"], held["DefaultLanguage"]) == ("Acme Industrial Supply Co.", "de")
