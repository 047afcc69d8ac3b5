"""`ml-connector sandbox`: an emulated Stampli SFTP server and an emulated IFS Cloud on
loopback, seeded with the sample exports and reference data, and a config plus secrets that
point at them. Every start is a fresh world (the emulator keeps IFS in memory, so the ledger
starts empty too); the SFTP host key is kept so known_hosts stays valid."""
from __future__ import annotations

import os
import secrets as random_secrets
import shutil
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from adapters.audit_keys import AuditKeyStore
from adapters.secrets import SecretStore, create_master_key
from sandbox import sftp as sandbox_sftp
from sandbox.ifs.runner import EmulatorThread, start_in_thread

USERNAME = "acme-ap"
IFS_SECRET = "sandbox-secret"      # the emulator's seeded client secret: not a real secret

CONFIG = """\
# Written by `ml-connector sandbox`: points at the emulated Stampli SFTP and IFS Cloud.
[connector]
company = "10"
ledger = "sqlite:///data/ledger.db"
data_dir = "data"
schedule = "30s"
max_attempts = 5
retry_base = "2s"
intent_lease = "30s"

[stampli]
host = "127.0.0.1"
port = {sftp_port}
username = "{username}"
auth = "password"
known_hosts = "known_hosts"
outbound_dir = "/outbound"
min_file_age = "0s"
stable_wait = "1s"
companies = {{ C1042 = "10" }}

[ifs]
base_url = "{ifs_url}"
realm = "acme1"
endpoint = "int"
client_id = "ml-connector"
verify_tls = false

[ifs.posting]
post_voucher = true
voucher_type = "I"
ap_liability_account = "2440"
cost_center_code_part = "B"
tax_accounts = {{ TX8 = "2640", VAT19 = "2641" }}
"""


@dataclass
class Sandbox:
    directory: Path
    config: Path
    ifs: EmulatorThread
    sftp: sandbox_sftp.SandboxSftp

    @property
    def outbound(self) -> Path:
        return self.directory / "sftp" / "outbound"

    def stop(self) -> None:
        self.sftp.stop()
        self.ifs.stop()


def sample_files() -> list[Path]:
    folder = resources.files("sandbox").joinpath("data")
    return sorted(Path(str(p)) for p in folder.iterdir() if p.name.endswith((".csv", ".xml")))


def start_sandbox(directory: Path, *, samples: bool = True) -> Sandbox:
    directory = Path(directory).resolve()
    for stale in ("data", "sftp"):            # a fresh world: IFS starts empty every time
        shutil.rmtree(directory / stale, ignore_errors=True)
    outbound = directory / "sftp" / "outbound"
    outbound.mkdir(parents=True)
    if samples:
        an_hour_ago = time.time() - 3600
        for sample in sample_files():
            shutil.copy(sample, outbound / sample.name)
            os.utime(outbound / sample.name, (an_hour_ago, an_hour_ago))
    ifs = start_in_thread()
    password = random_secrets.token_urlsafe(18)
    try:
        server = sandbox_sftp.start(directory / "sftp", username=USERNAME, password=password,
                                    host_key_path=directory / "sftp_host_key")
    except BaseException:
        ifs.stop()
        raise
    server.write_known_hosts(directory / "known_hosts")
    config = directory / "ml-connector.toml"
    config.write_text(CONFIG.format(sftp_port=server.port, username=USERNAME,
                                    ifs_url=ifs.base_url))
    create_master_key(directory / "data")
    store = SecretStore(directory / "data")
    store.set("stampli.password", password)
    store.set("ifs.client_secret", IFS_SECRET)
    AuditKeyStore(store).create()                     # as `init` does
    return Sandbox(directory, config, ifs, server)
