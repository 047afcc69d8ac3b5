"""Encrypted secrets: Fernet over a JSON map in data_dir/secrets.enc. The master key comes
from $ML_CONNECTOR_MASTER_KEY, else data_dir/master.key (mode 0600, created by `init`).
Values are never printed, logged or put in an exception."""
from __future__ import annotations

import json
import os
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

MASTER_KEY_ENV = "ML_CONNECTOR_MASTER_KEY"
KNOWN_NAMES = ("stampli.password", "stampli.private_key", "stampli.private_key_passphrase",
               "ifs.client_secret")


class SecretsError(Exception):
    """The secrets store cannot be used; the message says what to do."""


def create_master_key(data_dir: Path) -> Path:
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / "master.key"
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(Fernet.generate_key())
    return path


class SecretStore:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = Path(data_dir)
        self.path = self.data_dir / "secrets.enc"

    def _fernet(self, create: bool = False) -> Fernet:
        key = os.environ.get(MASTER_KEY_ENV, "").strip()
        if not key:
            key_path = self.data_dir / "master.key"
            if not key_path.exists():
                if not create:
                    raise SecretsError(f"no master key: set ${MASTER_KEY_ENV} or run"
                                       f" `ml-connector init` to create {key_path}")
                create_master_key(self.data_dir)
            key = key_path.read_text().strip()
        try:
            return Fernet(key.encode())
        except (ValueError, TypeError):
            raise SecretsError("the master key is not a valid Fernet key (32 url-safe base64"
                               " bytes); generate one with `ml-connector init`") from None

    def _load(self, fernet: Fernet) -> dict[str, str]:
        if not self.path.exists():
            return {}
        try:
            return json.loads(fernet.decrypt(self.path.read_bytes()))
        except InvalidToken:
            raise SecretsError(f"{self.path} cannot be decrypted with this master key; use"
                               " the key it was written with, or set the secrets again") from None

    def names(self) -> list[str]:
        if not self.path.exists():
            return []
        return sorted(self._load(self._fernet()))

    def get_all(self) -> dict[str, str]:
        if not self.path.exists():
            return {}
        return self._load(self._fernet())

    def get(self, name: str) -> str | None:
        return self.get_all().get(name)

    def set(self, name: str, value: str) -> None:
        fernet = self._fernet(create=True)
        values = self._load(fernet)
        values[name] = value
        token = fernet.encrypt(json.dumps(values).encode())
        self.data_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(token)
        os.replace(tmp, self.path)
