"""Operator actions (retry, resolve by hand, dismiss, reopen) on the real ledger with the
in-memory IFS: what the ledger holds, what IFS received and what the CLI printed. The same
actions against the IFS emulator through the installed command: tests/e2e/test_resolve_e2e.py.
"""
from __future__ import annotations

import json
import re
import shlex
import shutil

import pytest
from click.testing import CliRunner

from cli import main
from ledger.actions import ActionRefused
from tests.fakes import FakeErp
from tests.test_pipeline import SAMPLES, make_runtime, sync

HEADER = ("CompanyID,StampliInvoiceID,DocumentType,InvoiceNumber,VendorID,VendorName,"
          "InvoiceDate,DueDate,Currency,InvoiceNet,InvoiceTax,InvoiceTotal,ApprovalStatus,"
          "ApprovedAt,ApprovedBy,PONumber,LineNumber,LineDescription,GLAccount,CostCenter,"
          "LineNet,TaxCode,LineTax,ExportedAt")


def row(number: str, account: str = "6999", net: str = "100.00", tax: str = "8.00",
        total: str = "108.00", line_net: str | None = None, approval: str = "Approved") -> str:
    return (f"C1042,{sum(map(ord, number))},Invoice,{number},V00231,Acme Industrial Supply,"
            f"2026-11-04,2026-12-04,USD,{net},{tax},{total},{approval},2026-11-06T15:22:10Z,"
            f"j.doe,,1,Hoses,{account},CC210,{line_net or net},TX8,{tax},2026-11-06T15:25:00Z")


def export(folder, name: str, *rows: str) -> None:
    (folder / name).write_text("\n".join([HEADER, *rows]) + "\n")


@pytest.fixture
def outbound(tmp_path):
    """The sandbox samples, plus R-1..R-3 coded to GL account 6999 (IFS has none: parked as
    `reference`) and D-1 whose lines do not add up (parked as `data`)."""
    folder = tmp_path / "outbound"
    folder.mkdir()
    for sample in SAMPLES.glob("*_C1042_*"):
        shutil.copy(sample, folder)
    export(folder, "invoices_C1042_20261107100000.csv", row("R-1"), row("R-2"), row("R-3"),
           row("D-1", account="6100", line_net="90.00"))
    return folder


@pytest.fixture
def world(tmp_path, outbound):
    erp = FakeErp()
    report, rows = sync(tmp_path, outbound, erp)
    assert {n: rows[("V00231", n)]["state"] for n in ("R-1", "R-2", "R-3", "D-1")} == dict.fromkeys(
        ("R-1", "R-2", "R-3", "D-1"), "failed")
    assert rows[("V00231", "D-1")]["failure_kind"] == "data"
    rt = make_runtime(tmp_path, outbound, erp)
    yield rt, erp
    rt.close()


def history(rt, ref):
    return rt.ledger.history(rt.resolve(ref))


def rows_of(rt):
    return {r["invoice_number"]: r for r in rt.status_rows() if r["vendor_id"] == "V00231"}


def sync_again(rt, erp, tmp_path, outbound):
    rt.close()
    return sync(tmp_path, outbound, erp)


# ---------------------------------------------------------------------- resolve

def test_resolve_records_the_matching_document_and_the_pipeline_never_posts_it(
        world, tmp_path, outbound):
    rt, erp = world
    ifs_id = erp.enter_by_hand("10", "V00231", "R-1", "USD", "100.00", "8.00", "108.00")
    done = rt.resolve_manually("V00231/R-1", ifs_id, "ann", "entered by hand, ticket AP-118")
    assert (done["state"], done["matches"], done["differences"]) == ("resolved", True, [])
    last = history(rt, "V00231/R-1")[-1]
    assert last["type"] == "ResolvedManually"
    data = last["data"]
    assert (data["operator"], data["reason"], data["ifs_invoice_id"]) == (
        "ann", "entered by hand, ticket AP-118", ifs_id)
    assert (data["matches"], data["forced"], data["ifs_document"]["invoice_number"]) == (
        True, False, "R-1")
    assert (rows_of(rt)["R-1"]["state"], rows_of(rt)["R-1"]["ifs_invoice_id"]) == (
        "resolved", ifs_id)
    erp.accounts.add("6999")                 # now every R-* could post
    _, rows = sync_again(rt, erp, tmp_path, outbound)
    posted = [d["invoice_number"] for k, d in erp.documents.items() if not k.startswith("by-")]
    assert "R-1" not in posted and "R-2" in posted
    assert rows[("V00231", "R-1")]["state"] == "resolved"
    assert rows[("V00231", "R-2")]["state"] == "posted"


def test_a_differing_document_is_refused_unless_forced_and_then_recorded_as_such(world):
    rt, erp = world
    ifs_id = erp.enter_by_hand("10", "V00231", "R-2", "USD", "90.00", "7.20", "97.20")
    before = history(rt, "V00231/R-2")
    with pytest.raises(ActionRefused, match="net amount: the invoice says 100.00, IFS says"
                       " 90.00.*total: the invoice says 108.00, IFS says 97.20.*--force"):
        rt.resolve_manually("V00231/R-2", ifs_id, "ann", "entered by hand")
    assert history(rt, "V00231/R-2") == before            # nothing recorded
    done = rt.resolve_manually("V00231/R-2", ifs_id, "ann", "IFS is right", force=True)
    assert done["state"] == "resolved" and not done["matches"]
    data = history(rt, "V00231/R-2")[-1]["data"]
    assert (data["matches"], data["forced"]) == (False, True)
    assert {d["field"] for d in data["differences"]} == {"net amount", "tax amount", "total"}


def test_resolve_refuses_an_unknown_document_and_a_state_that_does_not_allow_it(world):
    rt, erp = world
    before = history(rt, "V00231/R-3")
    with pytest.raises(ActionRefused, match="holds no supplier invoice with InvoiceId 999"):
        rt.resolve_manually("V00231/R-3", "999", "ann", "typo?")
    with pytest.raises(ActionRefused, match="is not a number") as bad:
        rt.resolve_manually("V00231/R-3", "47x1", "ann", "typo")
    assert bad.value.bad_input
    assert history(rt, "V00231/R-3") == before
    with pytest.raises(ActionRefused, match="is posted; resolve is allowed only when it is"
                       " parsed, awaiting_approval, .*failed, needs_attention") as refused:
        rt.resolve_manually("V00231/INV-2026-0117", "1001", "ann", "already there")
    assert refused.value.state == "posted" and "failed" in refused.value.allowed_states


def test_new_content_for_a_resolved_invoice_needs_a_person(world, tmp_path, outbound):
    rt, erp = world
    ifs_id = erp.enter_by_hand("10", "V00231", "R-1", "USD", "100.00", "8.00", "108.00")
    rt.resolve_manually("V00231/R-1", ifs_id, "ann", "entered by hand")
    export(outbound, "invoices_C1042_20261108100000.csv", row("R-1", account="6100",
                                                               net="110.00", total="118.00"))
    _, rows = sync_again(rt, erp, tmp_path, outbound)
    assert rows[("V00231", "R-1")]["state"] == "needs_attention"
    assert "entered in IFS by hand (InvoiceId" in rows[("V00231", "R-1")]["failure_message"]
    assert "R-1" not in [d["invoice_number"] for k, d in erp.documents.items()
                         if not k.startswith("by-")]


# ---------------------------------------------------------------------- dismiss, reopen

def test_dismiss_is_never_posted_and_reopen_goes_back_to_where_it_was(
        world, tmp_path, outbound):
    rt, erp = world
    failed = rows_of(rt)["R-3"]
    rt.dismiss("V00231/R-3", "ann", "a test invoice")
    assert rows_of(rt)["R-3"]["state"] == "dismissed"
    with pytest.raises(ActionRefused, match="retry is allowed only when") as refused:
        rt.retry("V00231/R-3", "ann", "try it")
    assert "dismissed" not in refused.value.allowed_states
    erp.accounts.add("6999")
    _, rows = sync_again(rt, erp, tmp_path, outbound)
    assert rows[("V00231", "R-3")]["state"] == "dismissed"
    assert "R-3" not in [d["invoice_number"] for d in erp.documents.values()]
    rt = make_runtime(tmp_path, outbound, erp)
    try:
        assert rt.state_counts()["dismissed"] == 1           # what `sync` prints as "now:"
        done = rt.reopen("V00231/R-3", "bob", "not a test after all")
        assert done["state"] == "failed"
        row = rows_of(rt)["R-3"]
        assert {k: row[k] for k in ("state", "stage", "failure_kind", "failure_message")} == {
            k: failed[k] for k in ("state", "stage", "failure_kind", "failure_message")}
        types = [e["type"] for e in history(rt, "V00231/R-3")]
        assert types[-2:] == ["Dismissed", "ReopenedAfterDismissal"]
        with pytest.raises(ActionRefused, match="reopen is allowed only when it is dismissed"):
            rt.reopen("V00231/R-3", "bob", "again")
    finally:
        rt.close()
    _, rows = sync(tmp_path, outbound, erp)        # the account exists now: it moves on
    assert rows[("V00231", "R-3")]["state"] == "posted"


def test_content_sent_while_dismissed_is_kept_and_a_reopen_starts_from_it(
        world, tmp_path, outbound):
    rt, erp = world
    rt.dismiss("V00231/R-1", "ann", "duplicate sent by mistake")
    export(outbound, "invoices_C1042_20261108100000.csv", row("R-1", account="6100",
                                                               net="110.00", total="118.00"))
    _, rows = sync_again(rt, erp, tmp_path, outbound)
    assert rows[("V00231", "R-1")]["state"] == "dismissed"
    assert rows[("V00231", "R-1")]["total"] == "118.00"
    rt = make_runtime(tmp_path, outbound, erp)
    try:
        assert rt.reopen("V00231/R-1", "ann", "Stampli corrected it")["state"] == "parsed"
    finally:
        rt.close()
    _, rows = sync(tmp_path, outbound, erp)
    assert rows[("V00231", "R-1")]["state"] == "posted"


def test_a_dismiss_is_refused_while_a_posting_attempt_may_have_reached_ifs(world):
    rt, erp = world
    agg = rt.ledger.invoice(rt.resolve("V00231/R-2"))
    from ledger.invoice import Invoice
    agg.trigger_event(Invoice.PostingIntended, connector_version="t", attempt=1,
                      supplier_id="V00231", content_hash=agg.content_hash, worker="w")
    agg.fail("post", "transient", "connection reset", next_retry_at="2099-01-01T00:00:00+00:00")
    rt.ledger.record(agg)
    with pytest.raises(ActionRefused, match="IFS may hold it; look up ExternalRef"):
        rt.dismiss("V00231/R-2", "ann", "duplicate")


@pytest.mark.parametrize("operator, reason, message", [
    ("ann", "", "no reason"), ("ann", "   ", "no reason"), ("", "why", "no operator"),
    ("ann", "x" * 2001, "2001 characters long; at most 2000"),
    ("ann", "bell\x07", "control characters")])
def test_who_and_why_are_required_and_bounded(world, operator, reason, message):
    rt, erp = world
    before = history(rt, "V00231/R-3")
    for act in (lambda: rt.dismiss("V00231/R-3", operator, reason),
                lambda: rt.retry("V00231/R-3", operator, reason)):
        with pytest.raises(ActionRefused, match=message) as refused:
            act()
        assert refused.value.bad_input
    assert history(rt, "V00231/R-3") == before


# ---------------------------------------------------------------------- the CLI

@pytest.fixture
def project(world, tmp_path, monkeypatch):
    rt, _ = world
    rt.close()
    (tmp_path / "ml-connector.toml").write_text(f"""
[connector]
company = "10"
ledger = "sqlite:///{tmp_path}/ledger.db"
data_dir = "{tmp_path}/data"
""")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("USER", "os-user")
    monkeypatch.setenv("LOGNAME", "os-user")
    return tmp_path


def cli(*args):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_cli_dismiss_reopen_history_status_and_audit(project):
    result = cli("dismiss", "V00231/R-3", "--reason", "test invoice")
    assert result.exit_code == 0, result.output
    assert "V00231/R-3: dismissed by os-user" in result.output
    dismissed = json.loads(cli("status", "--state", "dismissed", "--json").output)
    assert [r["invoice_number"] for r in dismissed] == ["R-3"]
    shown = cli("history", "V00231/R-3").output
    assert "Dismissed" in shown and "operator: os-user" in shown and "reason: test invoice" in shown
    result = cli("reopen", "V00231/R-3", "--reason", "no, it is real", "--by", "bob")
    assert result.exit_code == 0 and "reopened by bob, back to failed" in result.output
    exported = [json.loads(line) for line in cli("audit", "export").output.splitlines()]
    acts = [(e["type"], e["data"]["operator"], e["data"]["reason"]) for e in exported
            if e["type"] in ("Dismissed", "ReopenedAfterDismissal")]
    assert acts == [("Dismissed", "os-user", "test invoice"),
                    ("ReopenedAfterDismissal", "bob", "no, it is real")]
    verified = cli("audit", "verify")
    assert verified.exit_code == 0 and "ledger holds" in verified.output
    before = cli("status", "--json").output
    assert cli("projections", "rebuild").exit_code == 0
    assert cli("status", "--json").output == before       # the same fold, live or rebuilt


def test_cli_refuses_a_state_that_does_not_allow_the_action(project):
    result = cli("reopen", "V00231/R-3", "--reason", "why not")
    assert result.exit_code == 1
    assert "invoice V00231/R-3 is failed; reopen is allowed only when it is dismissed" \
        in result.output
    result = cli("dismiss", "V00231/INV-2026-0117", "--reason", "oops")
    assert result.exit_code == 1
    assert "is posted; dismiss is allowed only when it is parsed, awaiting_approval," \
        in result.output
    assert "Traceback" not in result.output


def test_cli_bad_input_exits_2_and_records_nothing(project):
    before = cli("history", "V00231/R-3", "--json").output
    for args in (["dismiss", "V00231/R-3"],                       # no --reason, no terminal
                 ["dismiss", "V00231/R-3", "--reason", " "],
                 ["dismiss", "V00231/R-3", "--reason", "x" * 2001],
                 ["resolve", "V00231/R-3", "--ifs-invoice-id", "12ab", "--reason", "typo"],
                 ["replay", "V00231/R-3"]):
        result = cli(*args)
        assert result.exit_code == 2, (args, result.output)
        assert "Traceback" not in result.output
    assert "--reason is required" in cli("replay", "V00231/R-3").output
    assert "IFS InvoiceId '12ab' is not a number" in cli(
        "resolve", "V00231/R-3", "--ifs-invoice-id", "12ab", "--reason", "t").output
    assert cli("history", "V00231/R-3", "--json").output == before


def test_cli_replay_failed_leaves_data_failures_and_says_why(project):
    result = cli("replay", "--failed", "--reason", "accounts fixed", "--by", "ann")
    assert result.exit_code == 0, result.output
    replayed = sorted(line.split(":")[0] for line in result.output.splitlines()
                      if "back to" in line)
    assert replayed == ["V00231/R-1", "V00231/R-2", "V00231/R-3"]
    assert "left 1 invoice(s) failed on `data`: they fail again at once unless Stampli" \
        in result.output
    retried = json.loads(cli("history", "V00231/R-1", "--json").output)[-1]
    assert (retried["type"], retried["data"]["operator"], retried["data"]["reason"]) == (
        "Retried", "ann", "accounts fixed")
    d1 = json.loads(cli("history", "V00231/D-1", "--json").output)
    assert d1[-1]["type"] == "Failed"                                  # left alone
    hint = re.search(r"`(ml-connector replay [^`]*)`", result.output)
    assert hint, result.output
    result = cli(*shlex.split(hint.group(1))[1:])         # the command printed, as pasted
    assert "V00231/D-1: back to" in result.output, result.output
