"""`check`: the effective endpoint map against the tenant's reads and $metadata."""
from __future__ import annotations

import pytest

from adapters.ifs.endpoints import default_map, effective_map, key_predicate
from adapters.settings import ENDPOINT_ROLES, EndpointSettings

from .helpers import run, settings_for


def test_check_all_green_against_the_emulator():
    async def body(emu, erp):
        items = await erp.check()
        failed = [i for i in items if not i[1]]
        assert failed == []
        labels = [i[0] for i in items]
        assert labels[0] == "IFS token"
        assert "read invoice: ManualSupplierInvoiceHandling/PostingProposalHeadSet" in labels
        assert "$metadata invoice_line: ManualSupplierInvoiceHandling/Lines" in labels
        assert "$metadata cost_center: CodeBHandling/CodeBSet" in labels
    run(body)


def test_check_names_a_wrong_override():
    async def body(emu, erp):
        items = {i[0]: i for i in await erp.check()}
        bad = items["$metadata voucher: VoucherHandling/GlVoucherSet"]
        assert not bad[1] and "entity set GlVoucherSet not found" in bad[2]
        assert "VoucherSet" in bad[2] and "[ifs.endpoints.voucher]" in bad[2]
        read = items["read voucher: VoucherHandling/GlVoucherSet"]
        assert not read[1] and "HTTP 404" in read[2]
        keys = items["$metadata account: AccountsHandling/AccountSet"]
        assert not keys[1] and "keys are Company, Account, the map says Account" in keys[2]
    run(body, endpoints={
        "voucher": EndpointSettings(projection="VoucherHandling", entity_set="GlVoucherSet"),
        "account": EndpointSettings(projection="AccountsHandling", entity_set="AccountSet",
                                    keys=["Account"])})


def test_check_reports_a_bad_secret_and_stops():
    async def body(emu, erp):
        items = await erp.check()
        assert len(items) == 1 and not items[0][1] and "invalid_client" in items[0][2]
    run(body, secret="nope")


def test_effective_map_defaults_overrides_and_code_part_letter():
    base = settings_for("http://x", posting={"cost_center_code_part": "D"})
    endpoints = effective_map(base)
    assert endpoints["cost_center"].entity_set == "CodeDSet"
    assert endpoints["cost_center"].keys == ("Company", "CodeD")
    assert set(default_map()) == {"account", "cost_center", "supplier", "supplier_company",
                                  "purchase_order", "invoice", "invoice_line", "voucher",
                                  "voucher_row"}
    with pytest.raises(ValueError, match="unknown role"):
        effective_map(settings_for("http://x", endpoints={
            "nope": EndpointSettings(projection="P", entity_set="S")}))


def test_key_predicate_quotes_strings_and_leaves_numbers_bare():
    assert key_predicate({"Company": "10", "InvoiceId": 4711}) == \
        "(Company='10',InvoiceId=4711)"
    assert key_predicate({"SupplierId": "O'Brien"}) == "(SupplierId='O''Brien')"


def test_the_roles_settings_accept_are_the_roles_of_the_endpoint_map():
    # settings.py checks `[ifs.endpoints.<role>]` at load without importing the IFS adapter
    assert tuple(default_map()) == ENDPOINT_ROLES
