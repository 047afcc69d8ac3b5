"""An end-to-end world: the IFS emulator on loopback, the real OpenSSH sshd with an outbound
folder, a config pointing at both, and the `ml-connector` CLI run as a real process."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from sandbox.ifs.runner import EmulatorThread, start_in_thread
from tests import emulator_config
from tests.emulator_config import IFS_SECRET
from tests.installed_cli import CLI, cli_env

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "sandbox" / "data"


@dataclass
class World:
    dir: Path
    config: Path
    ifs: EmulatorThread
    sshd: object
    secrets: list[str] = field(default_factory=list)

    @property
    def outbound(self) -> Path:
        return self.sshd.outbound

    def drop(self, *paths: Path, age: float = 3600) -> None:
        """Put export files in Stampli's outbound folder, old enough to be taken."""
        for path in paths:
            target = self.outbound / path.name
            shutil.copy(path, target)
            os.chmod(target, 0o644)
            then = time.time() - age
            os.utime(target, (then, then))

    def cli(self, *args: str, check: bool = True, timeout: float = 240,
            log_json: bool = False) -> subprocess.CompletedProcess:
        command = [*CLI, "--config", str(self.config)]
        if log_json:
            command += ["--log-format", "json", "-v"]
        result = subprocess.run([*command, *args], capture_output=True, text=True,
                                timeout=timeout, cwd=self.dir, env=cli_env())
        if check and result.returncode != 0:
            raise AssertionError(f"ml-connector {' '.join(args)} exited {result.returncode}:\n"
                                 f"{result.stdout}\n{result.stderr}")
        return result

    def status(self) -> dict[tuple[str, str], dict]:
        rows = json.loads(self.cli("status", "--json").stdout)
        return {(r["vendor_id"], r["invoice_number"]): r for r in rows}

    def ifs_invoices(self) -> list[dict]:
        return self.ifs.state()["invoices"]


CONNECTOR = {"company": "10", "ledger": "sqlite:///data/ledger.db", "data_dir": "data",
             "schedule": "1s", "max_attempts": 6, "retry_base": "0s", "intent_lease": "2s"}


def write_config(directory: Path, sshd, ifs_url: str, *, ledger: str | None = None,
                 connector: dict | None = None, extra_ifs: str = "",
                 stampli: dict | None = None) -> Path:
    values = {**CONNECTOR, **({"ledger": ledger} if ledger else {}), **(connector or {})}
    stampli = {"host": "127.0.0.1", "port": sshd.port, "username": sshd.login_user,
               "auth": "key", "known_hosts": str(sshd.known_hosts),
               "outbound_dir": str(sshd.outbound), "min_file_age": "1s", "stable_wait": "0.2s",
               **(stampli or {})}
    return emulator_config.write_config(
        directory, ifs_url, connector=values, stampli=stampli,
        ifs={"requests_per_minute": 1000, "backoff_base": "0.05s", "backoff_cap": "0.5s"},
        ifs_lines=extra_ifs, secrets={"stampli.private_key": sshd.client_key})


@pytest.fixture
def make_world(sshd, tmp_path):
    started: list[EmulatorThread] = []

    def make(seed=None, *, ledger: str | None = None, connector: dict | None = None,
             extra_ifs: str = "", **emulator) -> World:
        ifs = start_in_thread(**({"seed": seed} if seed is not None else {}), **emulator)
        started.append(ifs)
        config = write_config(tmp_path, sshd, ifs.base_url, ledger=ledger,
                              connector=connector, extra_ifs=extra_ifs)
        key_body = "".join(sshd.client_key.strip().splitlines()[1:-1])
        return World(tmp_path, config, ifs, sshd, secrets=[IFS_SECRET, key_body[:60]])

    yield make
    for ifs in started:
        ifs.stop()


@pytest.fixture
def world(make_world) -> World:
    return make_world()
