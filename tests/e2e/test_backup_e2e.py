"""`ml-connector backup FILE` while `run` keeps working: the copy is a consistent ledger
(`audit verify` holds on it, its status is a state the ledger went through), 0600, and a
second backup never overwrites the first."""
from __future__ import annotations

import json
import signal
import stat
import subprocess
import time

from tests.e2e.conftest import SAMPLES
from tests.e2e.test_crash_e2e import _start_run
from tests.installed_cli import CLI, cli_env


def test_backup_while_the_daemon_runs_verifies_on_the_copy(world, tmp_path):
    world.drop(*SAMPLES.glob("*"))
    daemon = _start_run(world)
    copies = []
    try:
        deadline = time.time() + 60
        while not (world.dir / "data" / "ledger.db").exists() and time.time() < deadline:
            time.sleep(0.1)
        while time.time() < deadline:            # backups taken while it polls and posts
            copy = tmp_path / f"ledger-{len(copies)}.db"
            result = world.cli("backup", str(copy), "--json")
            copies.append(json.loads(result.stdout)["file"])
            posted = [r for r in world.status().values() if r["state"] == "posted"]
            if len(posted) == 4 and len(copies) >= 3:
                break
            time.sleep(0.2)
        final = tmp_path / "final.db"
        world.cli("backup", str(final))            # still running: the daemon ticks every 1s
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(timeout=60)
    assert stat.S_IMODE(final.stat().st_mode) == 0o600
    for copy in [*copies[-2:], str(final)]:
        config = world.dir / "copy.toml"
        config.write_text(world.config.read_text().replace(
            'ledger = "sqlite:///data/ledger.db"', f'ledger = "sqlite:///{copy}"'))
        verify = subprocess.run([*CLI, "--config", str(config), "audit", "verify", "--json"],
                                capture_output=True, text=True, cwd=world.dir, env=cli_env())
        assert verify.returncode == 0, verify.stdout + verify.stderr
        assert json.loads(verify.stdout)["ok"] is True
    again = world.cli("backup", str(final), check=False)
    assert again.returncode == 1 and "already exists" in again.stderr


def test_postgresql_ledgers_are_pointed_at_pg_dump(make_world, tmp_path):
    world = make_world(ledger="postgresql://postgres@127.0.0.1:5432/postgres")
    result = world.cli("backup", str(tmp_path / "x.db"), check=False)
    assert result.returncode == 1 and "pg_dump" in result.stderr
    assert not (tmp_path / "x.db").exists()

