"""Forged events, through the real CLI on SQLite and PostgreSQL: someone with write access to
the database (but not to the secrets store) appends, copies or re-dates an event with plain
SQL. `audit verify` must name the event and exit 1, with or without a kept digest."""
from __future__ import annotations

import json
import uuid

import pytest
from click.testing import CliRunner

from adapters.secrets import MASTER_KEY_ENV
from adapters.settings import ledger_url, load_settings
from cli import main
from ledger.intake import record_invoice_file
from runtime import Runtime
from tests.audit.tamper import Tamper
from tests.builders import export_file, invoice, parsed


def run(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def project(request, tmp_path, monkeypatch):
    """An initialised install: P-1 posted to IFS, P-2 awaiting approval (Pending)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(MASTER_KEY_ENV, raising=False)
    assert run("init").exit_code == 0
    config = tmp_path / "ml-connector.toml"
    if request.param == "postgres":
        url = request.getfixturevalue("pg_url")
        config.write_text(config.read_text().replace('ledger = "sqlite:///data/ledger.db"',
                                                      f'ledger = "{url}"', 1))
    write_invoices(config)
    return config


def write_invoices(config, approved: str = "P-1", pending: str = "P-2") -> None:
    """As the connector records them (through the runtime, so with its audit key)."""
    rt = Runtime(load_settings(config))
    try:
        ledger = rt.ledger
        record_invoice_file(ledger, export_file(f"invoices_C1042_{approved}.csv",
                                                content=approved),
                            [parsed(invoice(approved)), parsed(invoice(pending,
                                                                       approval="Pending"))],
                            ["Approved"])
        agg = ledger.invoice(invoice(approved).id)
        agg.validate(["accounts"], "ref-1")
        agg.resolve_vendor("S-100", "by id")
        agg.intend_posting("worker-1")
        agg.post("IFS-77", {"voucher_no": "V-1"}, {}, [])
        ledger.record(agg)
    finally:
        rt.close()


def url_of(config) -> str:
    return ledger_url(load_settings(config))


def states() -> dict[str, str]:
    result = run("status", "--json")
    assert result.exit_code == 0, result.output
    return {r["invoice_number"]: r["state"] for r in json.loads(result.stdout)}


def forge_posted(config) -> tuple[int, str]:
    """P-1's Posted event, copied byte for byte to the next version of P-2's stream."""
    tamper = Tamper(url_of(config))
    try:
        posted = tamper.find(".Posted")[0]
        awaiting = tamper.find(".AwaitingApproval")[0]           # P-2, version 3
        position = tamper.append(awaiting[0], 4, posted[3], posted[4])
        return position, str(uuid.UUID(str(awaiting[1])))
    finally:
        tamper.close()


def test_an_untouched_ledger_holds(project):
    assert states() == {"P-1": "posted", "P-2": "awaiting_approval"}
    result = run("audit", "verify")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("ledger holds:")


def test_a_copied_posted_event_is_named_by_verify(project, tmp_path):
    digest = run("audit", "digest")
    assert digest.exit_code == 0
    (tmp_path / "digest.json").write_text(digest.stdout)
    position, stream = forge_posted(project)
    # What the forgery achieves: the awaiting invoice reads as posted.
    assert states() == {"P-1": "posted", "P-2": "posted"}
    for args in ((), ("--digest", str(tmp_path / "digest.json"))):
        result = run("audit", "verify", *args)
        assert result.exit_code == 1, result.output
        first = result.stdout.splitlines()[0]
        assert first.startswith(f"ledger does NOT hold: first break at position {position}:")
        assert f"stream {stream}" in first and "version 4" in first and "Posted" in first
        assert "MAC" in first
