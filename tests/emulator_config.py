"""The config every test world against the IFS emulator writes: [connector] with a SQLite
ledger in the world's folder, [stampli] (a folder source's placeholder unless given), [ifs] at
the emulator, [ifs.posting] with the sample exports' tax accounts; then a master key and the
secrets (the emulator's seeded client secret, and any others)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from adapters.secrets import SecretStore, create_master_key

IFS_SECRET = "sandbox-secret"          # the emulator's seeded client secret
# A world that feeds exports from a local folder (tests.fakes.FolderSource) names no server.
FOLDER_STAMPLI = {"host": "sftp.invalid", "username": "u", "min_file_age": "0s",
                  "stable_wait": "0s"}


def _lines(values: dict[str, Any]) -> str:
    return "\n".join(f"{key} = {json.dumps(value)}" for key, value in values.items())


def write_config(directory: Path, ifs_url: str, *, connector: dict[str, Any] | None = None,
                 stampli: dict[str, Any] | None = None, ifs: dict[str, Any] | None = None,
                 ifs_lines: str = "", extra: str = "",
                 secrets: dict[str, str] | None = None) -> Path:
    """`directory`/ml-connector.toml; `connector`, `stampli` and `ifs` add or replace keys,
    `ifs_lines` is TOML text for [ifs], `extra` TOML text after [ifs.posting]."""
    connector = {"company": "10", "ledger": f"sqlite:///{directory}/data/ledger.db",
                 "data_dir": f"{directory}/data", **(connector or {})}
    ifs = {"base_url": ifs_url, "realm": "acme1", "client_id": "ml-connector", **(ifs or {})}
    config = directory / "ml-connector.toml"
    config.write_text(f"""
[connector]
{_lines(connector)}

[stampli]
{_lines(stampli or FOLDER_STAMPLI)}
companies = {{ C1042 = "10" }}

[ifs]
{_lines(ifs)}
{ifs_lines}

[ifs.posting]
tax_accounts = {{ TX8 = "2640", VAT19 = "2641" }}
{extra}
""")
    create_master_key(directory / "data")
    store = SecretStore(directory / "data")
    for name, value in {**(secrets or {}), "ifs.client_secret": IFS_SECRET}.items():
        store.set(name, value)
    return config
