"""The foundation commands through the real CLI (click's runner, a real config file and
ledger): status, history, replay, projections rebuild, audit export, secrets, config errors."""
from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from adapters.settings import load_settings, ledger_url
from cli import main
from ledger.app import Ledger
from ledger.intake import record_invoice_file
from tests.builders import export_file, invoice, parsed

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def project(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ML_CONNECTOR_MASTER_KEY", raising=False)
    result = CliRunner().invoke(main, ["init"])
    assert result.exit_code == 0, result.output
    settings = load_settings(tmp_path / "ml-connector.toml")
    ledger = Ledger(ledger_url(settings))
    record_invoice_file(ledger, export_file("invoices_C1042_1.csv"), [
        parsed(invoice("INV-2026-0117")), parsed(invoice("7781", approval="Pending"))],
        ["Approved"])
    agg = ledger.invoice(invoice("INV-2026-0117").id)
    agg.fail("validate", "reference", "GL account 6999 does not exist in IFS company 10")
    ledger.record(agg)
    ledger.close()
    return tmp_path


def run(*args, input=None):
    return CliRunner().invoke(main, list(args), input=input, catch_exceptions=False)


def test_status_json_has_the_contract_fields(project):
    result = run("status", "--json")
    assert result.exit_code == 0
    rows = {r["invoice_number"]: r for r in json.loads(result.output)}
    assert set(rows) == {"INV-2026-0117", "7781"}
    required = {"id", "company", "vendor_id", "document_type", "invoice_number", "currency",
                "total", "state", "failure_kind", "failure_message", "ifs_invoice_id",
                "ifs_voucher_no", "attempts", "updated_at"}
    assert required <= set(rows["7781"])
    assert rows["7781"]["state"] == "awaiting_approval"
    assert rows["INV-2026-0117"]["state"] == "failed"
    assert rows["INV-2026-0117"]["total"] == "108.00"
    only_failed = json.loads(run("status", "--json", "--state", "failed").output)
    assert [r["invoice_number"] for r in only_failed] == ["INV-2026-0117"]


def test_status_table_for_people(project):
    output = run("status").output
    assert output.splitlines()[0].split()[:3] == ["REF", "TYPE", "CO"]
    assert "V00231/INV-2026-0117" in output and "GL account 6999" in output


def test_history_lists_events_in_order_with_times_and_data(project):
    events = json.loads(run("history", "V00231/INV-2026-0117", "--json").output)
    assert [e["type"] for e in events] == ["Discovered", "Parsed", "Failed"]
    assert [e["version"] for e in events] == [1, 2, 3]
    assert all(re.match(r"\d{4}-\d\d-\d\dT", e["recorded_at"]) for e in events)
    assert events[2]["data"]["kind"] == "reference"
    human = run("history", "V00231/INV-2026-0117").output
    assert "Discovered" in human and "file_name: invoices_C1042_1.csv" in human


def test_replay_appends_and_status_reflects_it(project):
    result = run("replay", "V00231/INV-2026-0117", "--reason", "account created", "--by", "ann")
    assert result.exit_code == 0 and "back to parsed" in result.output
    events = json.loads(run("history", "V00231/INV-2026-0117", "--json").output)
    assert [e["type"] for e in events][-2:] == ["Failed", "Retried"]
    assert (events[-1]["data"]["operator"], events[-1]["data"]["reason"]) == (
        "ann", "account created")
    rows = {r["invoice_number"]: r for r in json.loads(run("status", "--json").output)}
    assert rows["INV-2026-0117"]["state"] == "parsed"


def test_replay_failed_by_kind(project):
    why = ("--reason", "fixed in IFS")
    assert json.loads(run("replay", "--failed", "--kind", "data", "--json", *why).output) == []
    done = json.loads(run("replay", "--failed", "--kind", "reference", "--json", *why).output)
    assert [d["ref"] for d in done] == ["V00231/INV-2026-0117"]


def test_unknown_ref_is_a_clear_error(project):
    result = CliRunner().invoke(main, ["history", "V9/NOPE"])
    assert result.exit_code == 1 and "no invoice V9/NOPE" in result.output


def test_projections_rebuild_gives_the_same_status(project):
    before = run("status", "--json").output
    result = run("projections", "rebuild")
    assert result.exit_code == 0 and "rebuilt from the start" in result.output
    assert run("status", "--json").output == before


def test_audit_export_jsonl_and_csv(project, tmp_path):
    lines = run("audit", "export").output.splitlines()
    events = [orjson.loads(line) for line in lines]
    assert [e["position"] for e in events] == sorted(e["position"] for e in events)
    assert {e["type"] for e in events} >= {"Discovered", "Parsed", "Failed", "Downloaded"}
    out = tmp_path / "ledger.csv"
    assert run("audit", "export", "--format", "csv", "-o", str(out)).exit_code == 0
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert len(rows) == len(events)
    assert json.loads(rows[0]["data"]) == events[0]["data"]
    assert run("audit", "export", "--since", "2099-01-01").output == ""
    assert len(run("audit", "export", "--until", "2099-01-01").output.splitlines()) == len(events)


def test_secrets_are_encrypted_on_disk(project):
    secret = "s3cr3t-Value-that-must-not-leak"
    assert run("secrets", "set", "ifs.client_secret", input=secret).exit_code == 0
    assert run("secrets", "list").output.split() == ["audit.key", "ifs.client_secret"]
    for path in project.rglob("*"):
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path
    from adapters.secrets import SecretStore
    assert SecretStore(project / "data").get("ifs.client_secret") == secret
    assert (project / "data" / "master.key").stat().st_mode & 0o777 == 0o600


def test_unknown_secret_name_is_a_usage_error(project):
    result = CliRunner().invoke(main, ["secrets", "set", "ifs.password"], input="x")
    assert result.exit_code == 2 and "known:" in result.output


def test_bad_config_exits_2_naming_file_key_and_type(project):
    path = project / "ml-connector.toml"
    path.write_text(path.read_text().replace('max_attempts = 8', 'max_attempts = "eight"'))
    result = CliRunner().invoke(main, ["status"])
    assert result.exit_code == 2
    assert "ml-connector.toml" in result.output and "connector.max_attempts" in result.output
    assert "Expected `int`" in result.output


@pytest.mark.parametrize("line,value,key,expected", [
    ('token_auth = "post"', 'token_auth = "bearer"', "ifs.token_auth", '"post" or "basic"'),
    ('auth = "password"', 'auth = "pasword"', "stampli.auth", '"password" or "key"'),
])
def test_a_misspelt_choice_names_the_choices(project, line, value, key, expected):
    path = project / "ml-connector.toml"
    text = path.read_text()
    assert line in text                  # the template offers the key with its default
    path.write_text(text.replace(line, value, 1))
    result = CliRunner().invoke(main, ["status"])
    assert result.exit_code == 2
    assert key in result.output and f"expected {expected}" in result.output


@pytest.mark.parametrize("line,value,expected", [
    ('schedule = "15m"', 'schedule = "99 99 * * *"', "`connector.schedule`: "),
    ('encoding = "utf-8-sig"', 'encoding = "utf-9"', "`stampli.invoices.encoding`: 'utf-9' is not"),
    ('delimiter = ","', 'delimiter = ";;"', "`stampli.invoices.delimiter`: expected one character"),
    ("verify_tls = true", 'verify_tls = "ca.pem"', "`ifs.verify_tls`: no CA bundle at {dir}/ca.pem"),
])
def test_values_that_would_fail_later_stop_at_load(project, line, value, expected):
    path = project / "ml-connector.toml"
    path.write_text(path.read_text().replace(line, value, 1))
    result = CliRunner().invoke(main, ["status"])
    assert result.exit_code == 2, result.output
    assert "ml-connector.toml" in result.output
    assert expected.format(dir=project.resolve()) in result.output
    assert "Traceback" not in result.output


def test_the_templates_commented_examples_load_when_uncommented(project):
    path = project / "ml-connector.toml"
    text = path.read_text().replace("# [ifs.endpoints]", "[ifs.endpoints]").replace(
        "# invoice = {", "invoice = {")
    (project / "ca.pem").write_text("")
    path.write_text(text.replace("verify_tls = true", 'verify_tls = "ca.pem"'))
    settings = load_settings(path)
    assert settings.ifs.endpoints["invoice"].entity_set == "PostingProposalHeadSet"
    assert settings.ifs.verify_tls == str(project.resolve() / "ca.pem")   # beside the config


def _commands(group, prefix=()):
    import click
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            yield from _commands(command, prefix + (name,))
        else:
            yield " ".join(prefix + (name,))


def test_every_command_has_help_with_an_example_and_is_in_the_readme():
    readme = (ROOT / "README.md").read_text()
    for command in _commands(main):
        result = CliRunner().invoke(main, command.split() + ["--help"])
        assert result.exit_code == 0 and "Example:" in result.output, command
        assert f"ml-connector {command}" in readme, f"README does not show `{command}`"


def test_audit_digest_then_verify_and_catch_a_changed_byte(project, tmp_path):
    import sqlite3
    digest = tmp_path / "digest.json"
    digest.write_text(run("audit", "digest").output)
    kept = json.loads(digest.read_text())
    assert kept["position"] > 0 and len(kept["hash"]) == 64
    held = run("audit", "verify", "--digest", str(digest))
    assert held.exit_code == 0 and "ledger holds" in held.output
    db = sqlite3.connect(project / "data" / "ledger.db")
    rowid, state = db.execute("SELECT rowid, state FROM stored_events WHERE instr(state,"
                              " CAST('108.00' AS BLOB)) > 0 ORDER BY rowid LIMIT 1").fetchone()
    db.execute("UPDATE stored_events SET state = ? WHERE rowid = ?",
               (state.replace(b"108.00", b"108.01"), rowid))
    db.commit()
    db.close()
    broken = CliRunner().invoke(main, ["audit", "verify", "--digest", str(digest)])
    assert broken.exit_code == 1
    assert f"first break at position {rowid}" in broken.output
