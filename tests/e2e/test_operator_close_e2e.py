"""Operator actions seen at close, through the installed `ml-connector` command after a real
sync against the IFS emulator over HTTP: the posting register and the reconciliation show the
invoices a person resolved by hand or dismissed, with who and why."""
from __future__ import annotations

import json

from tests.e2e.test_resolve_e2e import box, enter_by_hand  # noqa: F401  (the fixture)
from tests.installed_cli import run_cli

PERIOD = ("--from", "2026-11-01", "--to", "2026-11-30")


def _acted(box):  # noqa: F811
    """R-1 resolved (matches), R-2 resolved with --force (IFS total differs), R-3 dismissed."""
    ifs, config, directory = box

    def cli(*args: str):
        return run_cli("--config", str(config), *args, cwd=directory)

    matching = enter_by_hand(ifs, "R-1", "100.00", "8.00", "108.00")
    differing = enter_by_hand(ifs, "R-2", "100.00", "8.00", "118.00")
    for args in (("resolve", "V00231/R-1", "--ifs-invoice-id", matching, "--reason",
                  "entered by hand, AP-118", "--by", "ann"),
                 ("resolve", "V00231/R-2", "--ifs-invoice-id", differing, "--reason",
                  "IFS has the freight", "--force", "--by", "bob"),
                 ("dismiss", "V00231/R-3", "--reason", "test invoice from Stampli",
                  "--by", "cid")):
        done = cli(*args)
        assert done.returncode == 0, done.stderr
    return cli, matching, differing


def test_register_lists_resolved_and_dismissed_invoices_with_operator_and_reason(box):  # noqa: F811
    cli, matching, differing = _acted(box)
    result = cli("audit", "register", "--format", "jsonl")
    assert result.returncode == 0, result.stderr
    rows = {r["invoice_number"]: r for r in map(json.loads, result.stdout.splitlines())}
    assert set(rows) == {"R-1", "R-2", "R-3"}
    r1, r2, r3 = rows["R-1"], rows["R-2"], rows["R-3"]
    assert (r1["kind"], r1["operator"], r1["reason"], r1["ifs_invoice_id"], r1["matching"]) == (
        "resolved_by_hand", "ann", "entered by hand, AP-118", matching, "matches")
    assert (r2["kind"], r2["operator"], r2["ifs_invoice_id"], r2["matching"]) == (
        "resolved_by_hand", "bob", differing, "forced: total")
    assert (r3["kind"], r3["operator"], r3["reason"], r3["ifs_invoice_id"]) == (
        "dismissed", "cid", "test invoice from Stampli", "")
    for row in rows.values():               # the invoice as approved, and when it was handled
        assert (row["vendor_id"], row["total"], row["currency"]) == ("V00231", "108.00", "USD")
        assert row["source_file"] == "invoices_C1042_20261107100000.csv" and row["posted_at"] == ""
        assert row["handled_at"]
    as_csv = cli("audit", "register", "--format", "csv")
    assert as_csv.returncode == 0 and as_csv.stdout.count("\n") == 4   # header and 3 rows


def test_reconcile_fills_resolved_by_hand_and_keeps_dismissed_apart(box):  # noqa: F811
    cli, matching, differing = _acted(box)
    result = cli("reconcile", *PERIOD, "--format", "json")
    assert result.returncode == 0, result.stdout + result.stderr    # nothing is a discrepancy
    report = json.loads(result.stdout)
    counts = report["counts"]
    assert (counts["resolved_by_hand"], counts["dismissed"], counts["approved_not_in_ifs"]) == (
        2, 1, 0)
    items = {i["invoice_number"]: i for i in report["items"]}
    r1, r2, r3 = items["R-1"], items["R-2"], items["R-3"]
    assert (r1["category"], r1["ifs_invoice_id"], r1["differences"]) == (
        "resolved_by_hand", matching, [])
    assert "by ann" in r1["reason"] and "matches the invoice" in r1["reason"]
    assert "entered by hand, AP-118" in r1["reason"]
    assert (r2["category"], r2["ifs_invoice_id"]) == ("resolved_by_hand", differing)
    assert "forced by bob" in r2["reason"]
    assert r2["differences"] == [{"field": "total", "ledger": "108.00", "ifs": "118.00"}]
    assert (r3["category"], r3["state"]) == ("dismissed", "dismissed")
    assert "by cid" in r3["reason"] and "test invoice from Stampli" in r3["reason"]
    table = cli("reconcile", *PERIOD)
    assert "Resolved by hand" in table.stdout and "Dismissed" in table.stdout
    assert "Approved but not in IFS" not in table.stdout


def test_password_hashes_are_shown_as_a_marker_by_export_register_and_history(box):  # noqa: F811
    from ledger.users import user_stream_id
    _, config, directory = box

    def cli(*args: str, input: str | None = None):
        return run_cli("--config", str(config), *args, cwd=directory, input=input)

    assert cli("users", "add", "ann", "--role", "operator", input="correct horse battery\n"
               ).returncode == 0
    assert cli("users", "passwd", "ann", input="another long password\n").returncode == 0
    user = str(user_stream_id("ann"))
    outputs = {"export jsonl": cli("audit", "export"),
               "export csv": cli("audit", "export", "--format", "csv"),
               "register": cli("audit", "register", "--format", "jsonl"),
               "register csv": cli("audit", "register"),
               "history": cli("history", user),
               "history json": cli("history", user, "--json")}
    for name, result in outputs.items():
        assert result.returncode == 0, (name, result.stderr)
        assert "scrypt$" not in result.stdout, name
    exported = [json.loads(line) for line in outputs["export jsonl"].stdout.splitlines()]
    hashes = [e["data"]["password_hash"] for e in exported
              if e["type"] in ("UserCreated", "PasswordChanged")]
    assert hashes == ["<scrypt hash>", "<scrypt hash>"]
    assert [e["data"]["password_hash"] for e in json.loads(outputs["history json"].stdout)
            if "password_hash" in e["data"]] == ["<scrypt hash>", "<scrypt hash>"]
    assert outputs["history"].stdout.count("password_hash: <scrypt hash>") == 2
    assert outputs["export csv"].stdout.count("<scrypt hash>") == 2
    # what is stored is unchanged: the chain and its MACs still verify
    verified = cli("audit", "verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr


def test_the_replay_hint_status_prints_works_when_pasted(box):  # noqa: F811
    import re
    import shlex

    _, config, directory = box

    def cli(*args: str):
        return run_cli("--config", str(config), *args, cwd=directory)

    rows = {r["invoice_number"]: r for r in json.loads(cli("status", "--json").stdout)}
    message = rows["R-1"]["failure_message"]
    hint = re.findall(r"`(ml-connector replay [^`]*)`", message)
    assert len(hint) == 1, message
    words = shlex.split(hint[0])
    assert "--reason" in words, hint[0]
    pasted = cli(*words[1:])                 # as typed, with this project's config
    assert pasted.returncode == 0, pasted.stdout + pasted.stderr
    last = json.loads(cli("history", "V00231/R-1", "--json").stdout)[-1]
    assert last["type"] == "Retried" and last["data"]["reason"]
