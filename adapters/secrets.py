"""Encrypted secrets: Fernet over a JSON map in data_dir/secrets.enc. The master key comes
from $ML_CONNECTOR_MASTER_KEY, else data_dir/master.key (mode 0600, created by `init`).
Values are never printed, logged or put in an exception."""
from __future__ import annotations

import base64
import json
import logging
import os
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

from ledger.private import make_private_dir

log = logging.getLogger("ml_connector.secrets")

MASTER_KEY_ENV = "ML_CONNECTOR_MASTER_KEY"
KNOWN_NAMES = ("stampli.password", "stampli.private_key", "stampli.private_key_passphrase",
               "ifs.client_secret", "notify.urls")


class SecretsError(Exception):
    """The secrets store cannot be used; the message says what to do."""


def create_master_key(data_dir: Path) -> Path:
    make_private_dir(data_dir)
    path = data_dir / "master.key"
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(Fernet.generate_key())
    return path


_TOKEN_OVERHEAD = 57      # Fernet: version (1) + time (8) + IV (16) + HMAC (32) bytes


def _fernet_shaped(token: bytes) -> bool:
    """Whether `token` could be a Fernet token at all: a damaged file is told apart from
    one written with another master key."""
    try:
        raw = base64.urlsafe_b64decode(token.strip())
    except (ValueError, TypeError):
        return False
    body = len(raw) - _TOKEN_OVERHEAD
    return raw[:1] == b"\x80" and body >= 16 and body % 16 == 0


class SecretStore:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = Path(data_dir)
        self.path = self.data_dir / "secrets.enc"
        self.key_path = self.data_dir / "master.key"

    def _key_source(self) -> str:
        return f"${MASTER_KEY_ENV}" if os.environ.get(MASTER_KEY_ENV, "").strip() \
            else str(self.key_path)

    def _fernet(self, create: bool = False) -> Fernet:
        key = os.environ.get(MASTER_KEY_ENV, "").strip()
        if not key:
            key = self._read_key_file(create)
        try:
            return Fernet(key.encode())
        except (ValueError, TypeError, UnicodeEncodeError):
            raise SecretsError(f"the master key in {self._key_source()} is not a valid Fernet"
                               " key (32 url-safe base64 bytes); restore the key the secrets"
                               " were written with") from None

    def _read_key_file(self, create: bool) -> str:
        path = self.key_path
        if not path.exists() and not path.is_symlink():
            if self._exists():
                # A new key could never open the secrets already stored: refuse, lose nothing.
                raise SecretsError(f"no master key at {path}, but {self.path} exists and needs"
                                   " the key it was written with: restore that master.key or"
                                   f" set ${MASTER_KEY_ENV}")
            if not create:
                raise SecretsError(f"no master key: set ${MASTER_KEY_ENV} or run"
                                   f" `ml-connector init` to create {path}")
            create_master_key(self.data_dir)
        try:
            text = path.read_bytes().decode("ascii", "replace").strip()
        except OSError as exc:
            raise SecretsError(f"cannot read the master key {path}: {_reason(exc)}; it must be"
                               " a file holding the key (mode 0600)") from None
        if not text:
            raise SecretsError(f"the master key file {path} is empty; restore the key the"
                               f" secrets were written with, or set ${MASTER_KEY_ENV}")
        warn_if_exposed(path)
        return text

    def _exists(self) -> bool:
        return self.path.exists() or self.path.is_symlink()

    def _load(self, fernet: Fernet) -> dict[str, str]:
        if not self._exists():
            return {}
        again = ("restore it from a backup, or move it aside and store every secret again"
                 " with `ml-connector secrets set`")
        try:
            token = self.path.read_bytes()
        except OSError as exc:
            raise SecretsError(f"cannot read {self.path}: {_reason(exc)}; {again}") from None
        if not token.strip():
            raise SecretsError(f"{self.path} is empty (an interrupted copy?); {again}")
        if not _fernet_shaped(token):
            raise SecretsError(f"{self.path} is damaged (not an encrypted secrets file);"
                               f" {again}")
        try:
            values = json.loads(fernet.decrypt(token))
        except InvalidToken:
            raise SecretsError(f"{self.path} does not open with the master key in"
                               f" {self._key_source()} (another key, or a damaged file); use"
                               " the key it was written with") from None
        except ValueError:
            values = None
        if not isinstance(values, dict):
            raise SecretsError(f"{self.path} is damaged (not a map of secrets); {again}")
        return values

    def names(self) -> list[str]:
        if not self._exists():
            return []
        return sorted(self._load(self._fernet()))

    def get_all(self) -> dict[str, str]:
        if not self._exists():
            return {}
        return self._load(self._fernet())

    def get(self, name: str) -> str | None:
        return self.get_all().get(name)

    def set(self, name: str, value: str) -> None:
        fernet = self._fernet(create=True)
        values = self._load(fernet)
        values[name] = value
        token = fernet.encrypt(json.dumps(values).encode())
        make_private_dir(self.data_dir)
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(token)
        os.replace(tmp, self.path)


def _reason(exc: OSError) -> str:
    if isinstance(exc, IsADirectoryError):
        return "it is a folder, not a file"
    return exc.strerror or str(exc)


_warned: set[str] = set()


def warn_if_exposed(path: Path) -> None:
    """One warning per process when the master key can be read by other users."""
    try:
        mode = path.stat().st_mode & 0o777
    except OSError:
        return
    if mode & 0o044 and str(path) not in _warned:
        _warned.add(str(path))
        log.warning("the master key %s is readable by other users (mode %04o); run"
                    " `chmod 600 %s`", path, mode, path)
