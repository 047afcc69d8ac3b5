"""The connector, in its default configuration, against SAP CAP (an independent OData V4
server) through the CLI: what CAP holds afterwards, what the ledger holds, what was printed."""
from __future__ import annotations

import json
from collections import Counter
from decimal import Decimal

from tests.e2e.conftest import SAMPLES
from tests.e2e.test_sync_e2e import EXPECTED


def _balanced(voucher: dict) -> bool:
    debit = sum(Decimal(str(r["CurrencyDebitAmount"] or 0)) for r in voucher["Rows"])
    credit = sum(Decimal(str(r["CurrencyCreditAmount"] or 0)) for r in voucher["Rows"])
    return debit == credit and debit > 0


def assert_each_posted_once(world, expected=EXPECTED) -> None:
    invoices = world.cap.invoices()
    refs = Counter(i["ExternalRef"] for i in invoices)
    assert all(n == 1 for n in refs.values()), f"posted twice: {refs}"
    assert {(i["Identity"], i["InvoiceNo"]) for i in invoices} == expected
    assert all(i["Objstate"] == "Posted" and i["Lines"] for i in invoices), invoices
    vouchers = world.cap.vouchers()
    assert Counter(v["ExternalRef"] for v in vouchers) == refs
    assert all(v["Objstate"] == "Approved" and _balanced(v) for v in vouchers), vouchers
    status = world.status()
    for key in expected:
        row = status[key]
        assert row["state"] == "posted", row
        match = [i for i in invoices if i["ExternalRef"] == row["id"]]
        assert str(match[0]["InvoiceId"]) == row["ifs_invoice_id"]


def test_check_is_green_and_sync_posts_every_sample_once(cap_world):
    world = cap_world()
    check = world.cli("check")
    assert "IFS token" in check.stdout and "$metadata invoice" in check.stdout
    paths = {l.split(":")[0].split()[-1]: l for l in check.stdout.splitlines() if "posting path" in l}
    assert "references" in paths["invoice"]            # CAP declares nothing for invoices
    assert "portable" in paths["voucher"] and "EtagReferencesSupported" in paths["voucher"]
    world.drop(*SAMPLES.glob("*"))
    report = json.loads(world.cli("sync", "--json").stdout)
    assert report["errors"] == [], report
    assert report["moved"].get("posted") == 4, report
    assert_each_posted_once(world)
    invoices = {(i["Identity"], i["InvoiceNo"]): i for i in world.cap.invoices()}
    two_lines = invoices[("V00231", "INV-2026-0117")]
    assert [(l["Account"], l["CodeB"], Decimal(str(l["CurrAmount"])))
            for l in two_lines["Lines"]] == [("6100", "CC210", Decimal("750")),
                                             ("6100", "CC220", Decimal("500"))]
    suppliers = {s["SupplierId"]: s for s in
                 world.cap.state()["SupplierHandling.SupplierInfoGeneralSet"]}
    assert suppliers["V00877"]["Name"] == "Nordlicht GmbH"          # created from the vendor file
    links = world.cap.state()["SupplierHandling.SupplierInvoiceCompany"]
    assert ("V00877", "10") in {(l["SupplierId"], l["Company"]) for l in links}
    # the switch is in the ledger, on its own stream, and no invoice attempt was spent on it
    history = json.loads(world.cli("history", "V00231/A-5531", "--json").stdout)
    assert [e["type"] for e in history if "Fail" in e["type"]] == []
    audit = world.cli("audit", "export").stdout
    assert "\"stream\":\"posting_path\",\"version\":2,\"type\":\"Chosen\"" in audit
    assert "HTTP 412" in audit
    again_check = world.cli("check").stdout
    invoice_path = [l for l in again_check.splitlines() if "posting path invoice" in l][0]
    assert "portable" in invoice_path and "refused" in invoice_path and "recorded" in invoice_path
    # a second sync takes nothing and writes nothing
    before = len(world.front.requests)
    again = json.loads(world.cli("sync", "--json").stdout)
    assert again["poll"]["taken"] == [] and again["moved"] == {}
    assert [r for r in world.front.requests[before:] if r["method"] in ("POST", "PATCH")] == []


def test_a_reply_dropped_after_cap_committed_ends_with_nothing_posted_twice(cap_world):
    world = cap_world()
    # The first write that creates supplier invoices commits in CAP; its reply never arrives.
    world.front.drop = lambda method, path, body: (
        method == "POST" and path.endswith("$batch") and b"POST PostingProposalHeadSet " in body
        and b"$1" not in body)
    world.drop(*SAMPLES.glob("*"))
    world.cli("sync", "--json")
    world.cli("sync", "--json")
    assert world.front.dropped == 1
    assert_each_posted_once(world)


def test_batch_mode_references_on_cap_still_posts_after_the_412(cap_world):
    world = cap_world('batch_mode = "references"')
    world.drop(*SAMPLES.glob("*"))
    report = json.loads(world.cli("sync", "--json").stdout)
    assert report["moved"].get("posted") == 4 and report["failed"] == [], report
    assert_each_posted_once(world)


def test_the_portable_path_posts_a_round_in_four_requests_on_cap(cap_world):
    world = cap_world('batch_mode = "portable"')
    world.drop(*SAMPLES.glob("*"))
    report = json.loads(world.cli("sync", "--json").stdout)
    assert report["moved"].get("posted") == 4 and report["failed"] == [], report
    assert_each_posted_once(world)
    writes = [r for r in world.front.requests if r["method"] in ("POST", "PATCH", "DELETE")
              and "SupplierHandling" not in r["path"]]
    # headers with lines, post actions, vouchers with rows, approve actions: one $batch each
    assert [r["path"].rsplit("/", 1)[-1] for r in writes] == ["$batch"] * 4
    assert "If-Match: $" not in "".join(r["body"] for r in writes)
