"""Forged events, through the real CLI on SQLite and PostgreSQL: someone with write access to
the database (but not to the secrets store) copies an event with plain SQL. `audit verify`
must name the event and exit 1, with or without a kept digest."""
from __future__ import annotations

from tests.audit.cli_world import forge_posted, run, states


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
