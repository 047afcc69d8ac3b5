"""`ml-connector init`: a new project's files from the commented template beside this module
(config_template.toml), its master key, and the audit key that MACs every event."""
from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

from adapters.audit_keys import AuditKeyStore
from adapters.secrets import SecretStore, create_master_key
from adapters.settings import ConfigError


def init_project(directory: Path, force: bool = False) -> tuple[Path, Path]:
    """The config, the master key, and the audit key (secret audit.key) that MACs events."""
    directory.mkdir(parents=True, exist_ok=True)
    config = directory / "ml-connector.toml"
    if config.exists() and not force:
        raise ConfigError(f"{config} already exists; use --force to overwrite it")
    template = resources.files("adapters").joinpath("config_template.toml").read_text()
    fd = os.open(config, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)             # it points at the secrets: private whatever the umask
    with os.fdopen(fd, "w") as handle:
        handle.write(template)
    key = create_master_key(directory / "data")
    AuditKeyStore(SecretStore(directory / "data")).create()
    return config, key
