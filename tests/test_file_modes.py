"""What holds vendor tax ids or points at the secrets is private whatever the umask: the config
(0600), the data folder (0700), the ledger database and SQLite's -wal/-shm beside it (0600);
a master key other users can read gets a one-line warning."""
from __future__ import annotations

import os
import sqlite3
import stat

import pytest

from tests.installed_cli import run_cli


def mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("umask", [0o022, 0o000])
def test_created_private_whatever_the_umask(tmp_path, umask):
    assert run_cli("init", cwd=tmp_path, umask=umask).returncode == 0
    stored = run_cli("secrets", "set", "ifs.client_secret", cwd=tmp_path, input="x", umask=umask)
    assert stored.returncode == 0, stored.stderr
    status = run_cli("status", cwd=tmp_path, umask=umask)
    assert status.returncode == 0, status.stderr
    data = tmp_path / "data"
    assert mode(tmp_path / "ml-connector.toml") == 0o600
    assert mode(data) == 0o700
    assert {p.name: mode(p) for p in data.iterdir()} == {
        "ledger.db": 0o600, "master.key": 0o600, "secrets.enc": 0o600,
        "audit.key.lock": 0o600}
    old = os.umask(umask)                    # whoever opens it next: SQLite's side files
    try:
        db = sqlite3.connect(data / "ledger.db")
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("CREATE TABLE probe (x)")
        side = {p.name: mode(p) for p in data.glob("ledger.db-*")}
        db.close()
    finally:
        os.umask(old)
    assert side == {"ledger.db-wal": 0o600, "ledger.db-shm": 0o600}


def test_a_master_key_others_can_read_is_warned_about_once(tmp_path):
    assert run_cli("init", cwd=tmp_path).returncode == 0
    key = tmp_path / "data" / "master.key"
    quiet = run_cli("secrets", "set", "ifs.client_secret", cwd=tmp_path, input="x")
    assert quiet.returncode == 0 and quiet.stderr == ""
    key.chmod(0o644)
    result = run_cli("secrets", "list", cwd=tmp_path)
    assert result.returncode == 0 and result.stdout.split() == ["audit.key", "ifs.client_secret"]
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert "readable by other users (mode 0644)" in lines[0]
    assert f"chmod 600 {key}" in lines[0]
