"""A close-of-month world: the IFS emulator over real HTTP on loopback, a real config file
and ledger, the sample exports in a local outbound folder, and a sync through the real IFS
client (only the SFTP edge is a folder: these tests are about what happens after intake)."""
from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from adapters.secrets import SecretStore, create_master_key
from adapters.settings import load_settings
from cli import main
from runtime import Runtime
from sandbox.ifs.runner import EmulatorThread, start_in_thread
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
    config = directory / "ml-connector.toml"
    config.write_text(f"""
[connector]
company = "10"
ledger = "sqlite:///{directory}/data/ledger.db"
data_dir = "{directory}/data"
retry_base = "0s"
max_attempts = 3

[stampli]
host = "sftp.invalid"
username = "u"
min_file_age = "0s"
stable_wait = "0s"
companies = {{ C1042 = "10" }}

[ifs]
base_url = "{ifs_url}"
realm = "acme1"
client_id = "ml-connector"
requests_per_minute = 1000
backoff_base = "0s"
backoff_cap = "0.1s"

[ifs.posting]
tax_accounts = {{ TX8 = "2640", VAT19 = "2641" }}
{extra}
""")
    create_master_key(directory / "data")
    SecretStore(directory / "data").set("ifs.client_secret", "sandbox-secret")
    return config


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
