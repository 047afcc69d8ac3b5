"""A close-of-month world: the IFS emulator over real HTTP on loopback, a real config file
and ledger, the sample exports in a local outbound folder, and a sync through the real IFS
client (only the SFTP edge is a folder: these tests are about what happens after intake)."""
from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from adapters.settings import load_settings
from cli import main
from runtime import Runtime
from sandbox.ifs.runner import EmulatorThread, start_in_thread
from tests import emulator_config
from tests.fakes import FolderSource

SAMPLES = Path(__file__).resolve().parents[2] / "sandbox" / "data"


@dataclass
class CloseWorld:
    dir: Path
    config: Path
    outbound: Path
    ifs: EmulatorThread

    def sync(self):
        rt = Runtime(load_settings(self.config), source=FolderSource(self.outbound))
        try:
            return rt.sync_blocking()
        finally:
            rt.close()

    def cli(self, *args: str):
        return CliRunner().invoke(main, ["--config", str(self.config), *args])


def write_config(directory: Path, ifs_url: str, extra: str = "") -> Path:
    return emulator_config.write_config(
        directory, ifs_url, connector={"retry_base": "0s", "max_attempts": 3},
        ifs={"requests_per_minute": 1000, "backoff_base": "0s", "backoff_cap": "0.1s"},
        extra=extra)


@pytest.fixture
def close_world(tmp_path, monkeypatch):
    monkeypatch.delenv("ML_CONNECTOR_MASTER_KEY", raising=False)
    ifs = start_in_thread()
    outbound = tmp_path / "outbound"
    outbound.mkdir()
    for sample in SAMPLES.glob("*_C1042_*"):
        shutil.copy(sample, outbound)
    try:
        yield CloseWorld(tmp_path, write_config(tmp_path, ifs.base_url), outbound, ifs)
    finally:
        ifs.stop()
