"""`resolve` through the installed `ml-connector` command against the IFS emulator over real
HTTP: a document a person entered in IFS that matches, one that differs, one that does not
exist. The ledger is filled by a real sync of an export folder (the SFTP side is tested
elsewhere against sshd; here it is a local folder)."""
from __future__ import annotations

import json

import pytest

from adapters.settings import load_settings
from runtime import Runtime
from sandbox.ifs.rules import create_invoice
from sandbox.ifs.runner import start_in_thread
from tests.emulator_config import write_config
from tests.fakes import FolderSource
from tests.installed_cli import run_cli
from tests.test_operator_actions import export, row


@pytest.fixture
def box(tmp_path):
    ifs = start_in_thread()
    outbound = tmp_path / "outbound"
    outbound.mkdir()
    export(outbound, "invoices_C1042_20261107100000.csv", row("R-1"), row("R-2"), row("R-3"))
    config = write_config(tmp_path, ifs.base_url,
                          ifs={"backoff_base": "0.05s", "backoff_cap": "0.2s"})
    rt = Runtime(load_settings(config), source=FolderSource(outbound))
    try:
        rt.sync_blocking()                   # GL account 6999 is not in IFS: all three park
        assert {r["invoice_number"]: r["state"] for r in rt.status_rows()} == dict.fromkeys(
            ("R-1", "R-2", "R-3"), "failed")
    finally:
        rt.close()
    yield ifs, config, tmp_path
    ifs.stop()


def enter_by_hand(ifs, number: str, net: str, tax: str, gross: str) -> str:
    """A person types the invoice into IFS (the emulator's own create rule, no ExternalRef)."""
    rec = ifs.call(create_invoice, ifs.emulator.store, {
        "Company": "10", "Identity": "V00231", "InvoiceNo": number, "InvoiceDate": "2026-11-04",
        "Currency": "USD", "NetCurrAmount": net, "VatCurrAmount": tax, "GrossCurrAmount": gross})
    return str(rec["InvoiceId"])


def test_resolve_against_ifs_matching_differing_and_missing(box):
    ifs, config, directory = box

    def cli(*args: str):
        return run_cli("--config", str(config), *args, cwd=directory)

    def history(ref: str) -> list[dict]:
        return json.loads(cli("history", ref, "--json").stdout)

    matching = enter_by_hand(ifs, "R-1", "100.00", "8.00", "108.00")
    differing = enter_by_hand(ifs, "R-2", "100.00", "8.00", "118.00")
    held = len(ifs.state()["invoices"])

    result = cli("resolve", "V00231/R-1", "--ifs-invoice-id", matching,
                 "--reason", "entered by hand, AP-118", "--by", "ann")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == (f"V00231/R-1: resolved by ann with IFS InvoiceId {matching}"
                                     " (matches the invoice); it will not be posted")
    event = history("V00231/R-1")[-1]
    assert event["type"] == "ResolvedManually"
    assert {k: event["data"][k] for k in ("operator", "reason", "ifs_invoice_id", "matches")} == {
        "operator": "ann", "reason": "entered by hand, AP-118", "ifs_invoice_id": matching,
        "matches": True}
    assert event["data"]["ifs_document"]["invoice_number"] == "R-1"

    before = history("V00231/R-2")
    result = cli("resolve", "V00231/R-2", "--ifs-invoice-id", differing, "--reason", "by hand")
    assert result.returncode == 1
    assert (f"IFS InvoiceId {differing} does not match invoice V00231/R-2: total: the invoice"
            " says 108.00, IFS says 118" in result.stderr)
    assert "--force" in result.stderr and "Traceback" not in result.stderr
    assert history("V00231/R-2") == before
    result = cli("resolve", "V00231/R-2", "--ifs-invoice-id", differing, "--reason",
                 "IFS has the freight the export lacks", "--force", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["differences"] == [
        {"field": "total", "invoice": "108.00", "ifs": "118.00"}]
    assert history("V00231/R-2")[-1]["data"]["forced"] is True

    result = cli("resolve", "V00231/R-3", "--ifs-invoice-id", "987654", "--reason", "by hand")
    assert result.returncode == 1
    assert "IFS company 10 holds no supplier invoice with InvoiceId 987654" in result.stderr
    assert history("V00231/R-3")[-1]["type"] == "Failed"

    statuses = {r["invoice_number"]: r for r in json.loads(cli("status", "--json").stdout)}
    assert (statuses["R-1"]["state"], statuses["R-1"]["ifs_invoice_id"]) == ("resolved",
                                                                             matching)
    assert statuses["R-2"]["state"] == "resolved" and statuses["R-3"]["state"] == "failed"
    resolved = json.loads(cli("status", "--state", "resolved", "--json").stdout)
    assert sorted(r["invoice_number"] for r in resolved) == ["R-1", "R-2"]
    assert len(ifs.state()["invoices"]) == held          # a resolve never writes to IFS

    ifs.add_fault("error", None, method="GET", path="PostingProposalHeadSet", status=503)
    result = cli("resolve", "V00231/R-3", "--ifs-invoice-id", matching, "--reason", "by hand")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert f"could not read InvoiceId {matching} from IFS" in result.stderr
    assert "nothing recorded, try again when IFS answers" in result.stderr
    assert history("V00231/R-3")[-1]["type"] == "Failed"
