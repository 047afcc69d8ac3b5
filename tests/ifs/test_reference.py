"""Validation against IFS reference data over real HTTP: helpful messages, the cache, the
miss re-check and the refresh."""
from __future__ import annotations

import pytest

from ledger.ports import ErpFailure

from .helpers import make_invoice, odata_log, run, simple


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_valid_invoice_lists_its_checks_and_snapshot():
    async def body(emu, erp):
        inv = make_invoice([("6100", "CC210", "750.00", "TX8", "60.00"),
                            ("6540", "CC220", "500.00", "VAT19", "95.00")], po="PO-55012")
        outcome = await erp.validate(inv)
        assert "account 6100 in company 10 valid on 2026-11-04" in outcome.checks
        assert "cost center CC220 (code part B) in company 10 valid on 2026-11-04" \
            in outcome.checks
        assert "purchase order PO-55012 of supplier V00231 in company 10" in outcome.checks
        assert any("ifs.posting.tax_accounts.VAT19" in c for c in outcome.checks)
        assert outcome.snapshot.startswith("company 10 reference data loaded 20")
        assert "5 accounts, 3 cost centers, 1 purchase orders" in outcome.snapshot
        before = len(odata_log(emu))
        await erp.validate(inv)                      # warm cache: no request at all
        assert len(odata_log(emu)) == before == 3
    run(body)


def test_unknown_account_then_created_in_ifs_passes_by_rechecking_the_key():
    async def body(emu, erp):
        inv = make_invoice([("6100", "CC210", "750.00", "TX8", "60.00"),
                            ("6999", "CC220", "500.00", "TX8", "40.00")])
        with pytest.raises(ErpFailure) as err:
            await erp.validate(inv)
        assert err.value.kind == "reference"
        assert str(err.value) == (
            "GL account 6999 does not exist in IFS company 10 (invoice V00231/INV-0117, "
            "line 2); create it in IFS or correct the coding in Stampli, then "
            "`ml-connector replay V00231/INV-0117 --reason \"...\"`")
        emu.seed({"accounts": [{"Company": "10", "Account": "6999", "Description": "new",
                                "ValidFrom": "2026-01-01"}]})
        outcome = await erp.validate(inv)            # no refresh needed: the miss re-checks
        assert "account 6999 in company 10 valid on 2026-11-04" in outcome.checks
        gets = [e["path"] for e in odata_log(emu) if "Account='6999'" in e["path"]]
        assert len(gets) == 2                        # one re-check per validation that missed
    run(body)


def test_several_problems_are_named_with_their_lines():
    async def body(emu, erp):
        emu.seed({"accounts": [{"Company": "10", "Account": "6200", "ValidFrom": "2000-01-01",
                                "ValidUntil": "2025-12-31"}]})
        inv = make_invoice([("6200", "CC999", "1.00", "TX8", "0.08"),
                            ("6200", "CC210", "1.00", "TX8", "0.08")], doc_type="CreditNote")
        with pytest.raises(ErpFailure) as err:
            await erp.validate(inv)
        text = str(err.value)
        assert ("GL account 6200 in IFS company 10 is valid from 2000-01-01 until 2025-12-31, "
                "not on the invoice date 2026-11-04 (invoice V00231/INV-0117, lines 1, 2)") in text
        assert "cost center CC999 (code part B) does not exist in IFS company 10 " \
               "(invoice V00231/INV-0117, line 1)" in text
        assert text.endswith(
            "`ml-connector replay 10/V00231/CreditNote/INV-0117 --reason \"...\"`")
    run(body)


def test_purchase_order_must_exist_and_belong_to_the_vendor():
    async def body(emu, erp):
        emu.seed({"suppliers": [{"SupplierId": "V00777", "Name": "Other"}],
                  "purchase_orders": [{"OrderNo": "PO-9", "Company": "10",
                                       "VendorNo": "V00777", "CurrencyCode": "USD"}]})
        with pytest.raises(ErpFailure, match="purchase order PO-404 does not exist in IFS"):
            await erp.validate(simple(po="PO-404"))
        with pytest.raises(ErpFailure) as err:
            await erp.validate(simple(po="PO-9"))
        assert "belongs to supplier V00777 in company 10, not to V00231" in str(err.value)
        assert err.value.kind == "reference"
    run(body)


def test_misconfigured_tax_account_is_named():
    async def body(emu, erp):
        with pytest.raises(ErpFailure) as err:
            await erp.validate(simple())
        assert "GL account 2999 (`ifs.posting.tax_accounts.TX8`) does not exist" in str(err.value)
        assert "correct `ifs.posting.tax_accounts.TX8` in the configuration" in str(err.value)
    run(body, posting={"tax_accounts": {"TX8": "2999"}})


def test_data_problems_come_first_with_kind_data():
    async def body(emu, erp):
        with pytest.raises(ErpFailure) as err:
            await erp.validate(simple(tax="60.001"))
        assert err.value.kind == "data" and "more decimals than USD allows" in str(err.value)
        assert odata_log(emu) == []
    run(body)


def test_reference_data_refreshes_after_the_interval():
    clock = Clock()

    async def body(emu, erp):
        await erp.validate(simple())
        loads = lambda: len([e for e in odata_log(emu) if e["path"].endswith("AccountSet")])
        assert loads() == 1
        clock.now = 14 * 60
        await erp.validate(simple())
        assert loads() == 1
        clock.now = 15 * 60 + 1                      # ifs.reference_refresh = 15m
        await erp.validate(simple())
        assert loads() == 2
    run(body, erp_options={"clock": clock})
