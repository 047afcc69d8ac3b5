"""End to end through the CLI (a real process), the real sshd and the IFS emulator: what IFS
received, what the ledger holds, what the CLI printed."""
from __future__ import annotations

import json
from collections import Counter
from decimal import Decimal

from tests.e2e.conftest import SAMPLES

EXPECTED = {("V00231", "INV-2026-0117"), ("V00231", "CN-2026-0009"),
            ("V00877", "INV-2026-0117"), ("V00231", "A-5531")}


def _balanced(voucher: dict) -> bool:
    debit = sum(Decimal(r["CurrencyDebitAmount"] or 0) for r in voucher["Rows"])
    credit = sum(Decimal(r["CurrencyCreditAmount"] or 0) for r in voucher["Rows"])
    return debit == credit and debit > 0


def assert_each_posted_once(world, expected=EXPECTED):
    invoices = world.ifs_invoices()
    refs = Counter(i["ExternalRef"] for i in invoices)
    assert all(n == 1 for n in refs.values()), f"posted twice: {refs}"
    assert {(i["Identity"], i["InvoiceNo"]) for i in invoices} == expected
    assert all(i["Objstate"] == "Posted" for i in invoices)
    vouchers = world.ifs.state()["vouchers"]
    assert Counter(v["ExternalRef"] for v in vouchers) == refs
    assert all(v["Objstate"] == "Approved" and _balanced(v) for v in vouchers)
    status = world.status()
    for key in expected:
        row = status[key]
        assert row["state"] == "posted", row
        match = [i for i in invoices if i["ExternalRef"] == row["id"]]
        assert str(match[0]["InvoiceId"]) == row["ifs_invoice_id"]


def test_samples_land_in_ifs_as_the_right_documents(world):
    world.drop(*SAMPLES.glob("*"))
    result = world.cli("sync", "--json")
    report = json.loads(result.stdout)
    assert report["errors"] == [] and report["moved"]["posted"] == 4
    assert_each_posted_once(world)
    invoices = {(i["Identity"], i["InvoiceNo"]): i for i in world.ifs_invoices()}
    credit = invoices[("V00231", "CN-2026-0009")]
    assert (credit["InvoiceType"], credit["GrossCurrAmount"]) == ("CREDIT", "-216.00")
    two_lines = invoices[("V00231", "INV-2026-0117")]
    assert [(l["Account"], l["CodeB"], l["CurrAmount"]) for l in two_lines["Lines"]] == \
        [("6100", "CC210", "750.00"), ("6100", "CC220", "500.00")]
    suppliers = {s["SupplierId"]: s for s in world.ifs.state()["suppliers"]}
    assert suppliers["V00877"]["Name"] == "Nordlicht GmbH"          # created from the vendor file
    assert world.status()[("V00231", "7781")]["state"] == "awaiting_approval"
    # a second sync takes nothing and sends no write
    before = len(world.ifs.requests())
    again = json.loads(world.cli("sync", "--json").stdout)
    assert again["poll"]["taken"] == [] and again["moved"] == {}
    writes = [r for r in world.ifs.requests()[before:] if r["method"] in ("POST", "PATCH")]
    assert writes == []


def test_pending_waits_and_posts_after_an_approved_reexport(world, tmp_path):
    world.drop(*SAMPLES.glob("*"))
    world.cli("sync")
    source = (SAMPLES / "invoices_C1042_20261106152500.csv").read_text().splitlines()
    approved = [l.replace(",Pending,,,", ",Approved,2026-11-07T09:00:00Z,j.doe,")
                for l in source if ",7781," in l]
    reexport = tmp_path / "invoices_C1042_20261107090000.csv"
    reexport.write_text("\n".join([source[0], *approved]) + "\n")
    world.drop(reexport)
    world.cli("sync")
    assert world.status()[("V00231", "7781")]["state"] == "posted"
    assert_each_posted_once(world, EXPECTED | {("V00231", "7781")})
    history = json.loads(world.cli("history", "V00231/7781", "--json").stdout)
    assert [e["type"] for e in history][:4] == ["Discovered", "Parsed", "AwaitingApproval",
                                                "Amended"]


def test_unknown_gl_account_parks_then_posts_after_it_is_added(make_world):
    import tomllib
    from importlib import resources
    seed = tomllib.loads(resources.files("sandbox").joinpath("ifs_seed.toml").read_text())
    account_6540 = [a for a in seed["accounts"] if a["Account"] == "6540"]
    seed["accounts"] = [a for a in seed["accounts"] if a["Account"] != "6540"]
    world = make_world(seed)
    world.drop(*SAMPLES.glob("*"))
    world.cli("sync")
    parked = world.status()[("V00877", "INV-2026-0117")]
    assert (parked["state"], parked["failure_kind"]) == ("failed", "reference")
    assert "6540" in parked["failure_message"] and "replay" in parked["failure_message"]
    world.ifs.seed({"accounts": account_6540})
    world.cli("sync")
    assert_each_posted_once(world)


def test_logs_name_the_invoice_and_no_secret_appears_anywhere(world):
    world.drop(*SAMPLES.glob("*"))
    result = world.cli("sync", log_json=True)
    lines = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    assert lines, result.stderr
    posted = [l for l in lines if "posted" in l["message"]]
    assert {l.get("invoice") for l in posted} >= {"V00231/INV-2026-0117", "V00231/A-5531"}
    assert any(l.get("file") for l in lines)
    ledger = world.cli("audit", "export").stdout
    for secret in world.secrets:
        assert secret not in result.stderr and secret not in result.stdout
        assert secret not in ledger
    for path in world.dir.rglob("*"):
        if path.is_file() and path.suffix != ".key":
            for secret in world.secrets:
                assert secret.encode() not in path.read_bytes(), path
