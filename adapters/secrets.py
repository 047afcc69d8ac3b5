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

from ledger.errors import ConnectorError
from ledger.private import make_private_dir

log = logging.getLogger("ml_connector.secrets")

MASTER_KEY_ENV = "ML_CONNECTOR_MASTER_KEY"
KNOWN_NAMES = ("stampli.password", "stampli.private_key", "stampli.private_key_passphrase",
               "ifs.client_secret", "notify.urls", "ledger.password",
               "web.session_key")
# systemd's LoadCredential= puts each secret in a file of this folder, named as the secret:
# read from there first, so an admin can keep no master key on disk at all.
CREDENTIALS_ENV = "CREDENTIALS_DIRECTORY"
CREDENTIAL_NAMES = (*KNOWN_NAMES, "audit.key")


class SecretsError(ConnectorError):
    """The secrets store cannot be used; the message says what to do."""

    exit_code = 2


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
        return sorted(self.get_all())

    def get_all(self) -> dict[str, str]:
        stored = self._load(self._fernet()) if self._exists() else {}
        return {**stored, **credentials()}

    def get(self, name: str) -> str | None:
        return self.get_all().get(name)

    def set(self, name: str, value: str) -> None:
        fernet = self._fernet(create=True)
        values = self._load(fernet)
        values[name] = value
        self._write(self.path, fernet, values)

    def _write(self, path: Path, fernet: Fernet, values: dict[str, str]) -> None:
        token = fernet.encrypt(json.dumps(values).encode())
        make_private_dir(self.data_dir)
        tmp = path.with_name(path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(token)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)

    # ---- issue 14: delete, rotate the master key

    def delete(self, name: str) -> None:
        fernet = self._fernet()
        values = self._load(fernet)
        if name not in values:
            where = (f" (it comes from ${CREDENTIALS_ENV}: remove it from the service's"
                     " LoadCredential= instead)" if name in credentials() else "")
            raise SecretsError(f"no stored secret {name!r}{where}; stored:"
                               f" {', '.join(sorted(values)) or 'none'}")
        del values[name]
        self._write(self.path, fernet, values)

    def rotate_key(self) -> Path:
        """Re-encrypt every secret under a new master key. The new store and key are written
        whole before anything is replaced; the old ones stay as secrets.enc.old and
        master.key.old until the admin removes them. -> the new key's path."""
        if os.environ.get(MASTER_KEY_ENV, "").strip():
            raise SecretsError(f"the master key comes from ${MASTER_KEY_ENV}: rotate-key writes"
                               f" {self.key_path}; unset ${MASTER_KEY_ENV} first, rotate, then"
                               " put the new key where the old one was")
        values = self._load(self._fernet())
        key = Fernet.generate_key()
        new_store = self.path.with_name(self.path.name + ".new")
        new_key = self.key_path.with_name(self.key_path.name + ".new")
        self._write(new_store, Fernet(key), values)
        fd = os.open(new_key, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(key)
            handle.flush()
            os.fsync(handle.fileno())
        if Fernet(key).decrypt(new_store.read_bytes()) != json.dumps(values).encode():
            raise SecretsError(f"{new_store} does not read back; nothing was replaced")
        for current in (self.path, self.key_path):
            if current.exists():
                os.replace(current, current.with_name(current.name + ".old"))
        os.replace(new_key, self.key_path)
        os.replace(new_store, self.path)
        return self.key_path


def credentials() -> dict[str, str]:
    """Secrets from $CREDENTIALS_DIRECTORY (systemd LoadCredential=), by file name."""
    folder = os.environ.get(CREDENTIALS_ENV, "").strip()
    if not folder:
        return {}
    found = {}
    for name in CREDENTIAL_NAMES:
        path = Path(folder) / name
        try:
            value = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            continue
        except (OSError, UnicodeDecodeError) as exc:
            raise SecretsError(f"cannot read the credential {path}: {exc}") from None
        found[name] = value if name == "stampli.private_key" else value.rstrip("\r\n")
    return found


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
