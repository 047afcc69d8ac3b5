"""The audit key's life and the audit chain's guard, through the real CLI on SQLite and
PostgreSQL: created at init (or on first use for an older install) and on record, rotated on
record, never printed; the chain not rebuilt while verify fails unless forced (on record),
dropped chain tables reported instead of recomputed, and a failed verify warned about."""
from __future__ import annotations

import base64

import pytest
from cryptography.fernet import Fernet

from adapters.audit_keys import AuditKeyStore
from adapters.secrets import SecretStore
from adapters.settings import load_settings
from ledger.app import Ledger
from ledger.errors import LedgerError
from ledger.audit_trail import AUDIT_TRAIL_ID
from ledger.signing import split
from runtime import Runtime
from tests.audit.cli_world import forge_posted, run, url_of, write_invoices
from tests.audit.tamper import Tamper
from tests.builders import export_file


def trail(config) -> list[dict]:
    ledger = Ledger(url_of(config))
    try:
        return [dict(e["data"], type=e["type"]) for e in ledger.history(AUDIT_TRAIL_ID)]
    finally:
        ledger.close()


def ring(config):
    return AuditKeyStore(SecretStore(load_settings(config).data_dir)).load()


def key_texts(config) -> list[str]:
    """Every way a key could leak: base64 as stored, hex, raw."""
    keys = ring(config).keys.values()
    return [base64.b64encode(k).decode() for k in keys] + [k.hex() for k in keys]


def tampered(config):
    return Tamper(url_of(config))


# ---------------------------------------------------------------------- the key


def test_init_makes_the_key_and_its_first_use_is_on_record(project):
    assert "audit.key" in run("secrets", "list").stdout.split()
    installed = [e for e in trail(project) if e["type"] == "KeyInstalled"]
    assert len(installed) == 1
    assert (installed[0]["key_id"], installed[0]["origin"], installed[0]["unsigned_upto"]) == (
        ring(project).current, "init", 0)
    assert "@" in installed[0]["who"]
    outputs = [run(*args) for args in (("status",), ("audit", "verify"), ("audit", "export"),
                                       ("history", "V00231/P-1", "--json"))]
    rows = tampered(project)
    try:
        stored = b"".join(state for *_, state in rows.rows())
    finally:
        rows.close()
    for secret in key_texts(project):
        assert all(secret not in r.output for r in outputs)
        assert secret.encode() not in stored


def test_an_install_from_before_macs_gets_a_key_on_first_use(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ML_CONNECTOR_MASTER_KEY", raising=False)
    assert run("init").exit_code == 0
    (tmp_path / "data" / "secrets.enc").unlink()            # as before this release
    config = tmp_path / "ml-connector.toml"
    ledger = Ledger(url_of(config))
    try:
        from tests.audit.mac_contract import populate
        populate(ledger)                                     # written without any key
        legacy = ledger.recorder.max_notification_id()
    finally:
        ledger.close()
    first = run("status")
    assert first.exit_code == 0
    assert f"created the audit key {ring(config).current}" in first.stderr
    installed = [e for e in trail(config) if e["type"] == "KeyInstalled"][-1]
    assert (installed["origin"], installed["unsigned_upto"]) == ("first use", legacy)
    result = run("audit", "verify")
    assert result.exit_code == 0, result.output
    assert "MACs valid" in result.stdout
    t = tampered(config)
    try:
        t.flip_byte(3)                                        # a pre-key event
    finally:
        t.close()
    result = run("audit", "verify")
    assert result.exit_code == 1
    assert "recorded before the audit key existed, changed" in result.stdout


def test_a_rotated_key_macs_new_events_and_old_ones_still_verify(project):
    old = ring(project).current
    result = run("audit", "rotate-key", "--reason", "yearly rotation")
    assert result.exit_code == 0, result.output
    new = ring(project).current
    assert new != old and set(ring(project).keys) == {old, new}
    assert f"audit key {new} MACs new events" in result.stdout
    write_invoices(project, approved="R-1", pending="R-2")
    t = tampered(project)
    try:
        used = [split(state).key_id for *_, state in t.rows()]
    finally:
        t.close()
    assert used[0] == old and used[-1] == new
    rotation = [e for e in trail(project) if e.get("origin") == "rotation"]
    assert [(e["key_id"], e["previous_key_id"], e["reason"]) for e in rotation] == [
        (new, old, "yearly rotation")]
    verified = run("audit", "verify")
    assert verified.exit_code == 0, verified.output
    for secret in key_texts(project):
        assert secret not in result.output and secret not in verified.output
    assert run("audit", "rotate-key").exit_code == 2           # a reason is required


# ---------------------------------------------------------------------- the chain


def head_link(config) -> str:
    t = tampered(config)
    try:
        return t.sql("SELECT link_hex FROM mlc_audit_head")[0][0]
    finally:
        t.close()


def test_the_chain_is_not_rebuilt_while_verify_fails_unless_forced(project):
    forge_posted(project)
    assert run("status").exit_code == 0                       # chains the forged event too
    before = head_link(project)
    refused = run("projections", "rebuild", "--include-audit-chain")
    assert refused.exit_code == 1
    assert "refused to rebuild the audit chain: `audit verify` fails" in refused.output
    assert "version 4" in refused.output and head_link(project) == before
    assert run("projections", "rebuild", "--include-audit-chain", "--force").exit_code == 2
    assert run("projections", "rebuild").exit_code == 0       # the read models: always
    forced = run("projections", "rebuild", "--include-audit-chain", "--force", "--reason",
                 "incident 42: forged row kept as evidence")
    assert forced.exit_code == 0, forced.output
    assert "recorded in the ledger with who and why" in forced.stderr
    rebuilt = [e for e in trail(project) if e["type"] == "ChainRebuilt"]
    assert len(rebuilt) == 1 and rebuilt[0]["forced"] is True
    assert rebuilt[0]["reason"] == "incident 42: forged row kept as evidence"
    assert "@" in rebuilt[0]["who"] and "fails its MAC" in rebuilt[0]["verify_failure"]
    assert run("audit", "verify").exit_code == 1              # the forged event is still named


def test_dropped_chain_tables_are_reported_not_recomputed(project, tmp_path):
    assert run("status").exit_code == 0                       # the chain begins (on record)
    digest = run("audit", "digest")
    (tmp_path / "digest.json").write_text(digest.stdout)
    t = tampered(project)
    try:
        t.sql("DROP TABLE mlc_audit_head")
        t.sql("DROP TABLE mlc_audit_checkpoint")
        t.sql("DELETE FROM mlc_projection_position WHERE name = 'audit_chain'")
    finally:
        t.close()
    status = run("status")
    assert status.exit_code == 0
    assert status.stderr.count("\n") == 1
    assert "audit chain's tables were dropped or emptied" in status.stderr
    assert run("audit", "digest").exit_code == 1
    assert "audit_chain" not in str(run("projections", "rebuild").stdout)   # left out
    verified = run("audit", "verify", "--digest", str(tmp_path / "digest.json"))
    assert verified.exit_code == 1 and "tables are gone" in verified.stdout
    assert run("projections", "rebuild", "--include-audit-chain").exit_code == 1
    forced = run("projections", "rebuild", "--include-audit-chain", "--force", "--reason",
                 "restored after a disk loss; digest checked")
    assert forced.exit_code == 0 and "audit_chain" in forced.stdout
    again = run("audit", "verify", "--digest", str(tmp_path / "digest.json"))
    assert again.exit_code == 0, again.output
    assert run("status").stderr == ""


def test_commands_warn_once_while_the_last_verify_failed(project):
    assert run("status").stderr == ""                         # chained as written
    t = tampered(project)
    try:
        t.flip_byte(5)
        assert run("audit", "verify").exit_code == 1
        status = run("status")
        assert status.exit_code == 0 and status.stderr.count("\n") == 1
        assert "the last `ml-connector audit verify`" in status.stderr
        assert "does NOT hold: first break at position 5" in status.stderr
        history = run("history", "V00231/P-1")
        assert history.stderr.count("last `ml-connector audit verify`") == 1
        t.flip_byte(5)                                         # put back as it was
    finally:
        t.close()
    assert run("audit", "verify").exit_code == 0
    assert run("status").stderr == ""


def test_without_the_audit_key_reads_work_and_nothing_is_written_unsigned(project):
    master = load_settings(project).data_dir / "master.key"
    master.write_bytes(Fernet.generate_key())                  # not the key secrets.enc has
    status = run("status")
    assert status.exit_code == 0 and "V00231/P-1" in status.stdout
    assert "the audit key cannot be read from the secrets store" in status.stderr
    before = len(tampered_rows(project))
    rt = Runtime(load_settings(project))
    try:
        with pytest.raises(LedgerError, match="nothing recorded: the audit key cannot be read"):
            rt.ledger.record(export_file("invoices_C1042_late.csv"))
    finally:
        rt.close()
    assert len(tampered_rows(project)) == before
    verified = run("audit", "verify")
    assert verified.exit_code == 1 and "cannot check the events' MACs" in verified.output
    assert run("audit", "rotate-key", "--reason", "x").exit_code == 1


def tampered_rows(config) -> list[tuple]:
    t = tampered(config)
    try:
        return t.rows()
    finally:
        t.close()
