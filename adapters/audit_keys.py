"""The audit keys in the secrets store: secret `audit.key`, never in the ledger.

Its value is JSON: {"current": ID, "keys": {ID: base64 32 bytes, ...}, "ledgers": {URL:
{"unsigned_upto": N, "link": HEX}}}. Old keys stay after a rotation so old MACs still verify.
`ledgers` binds each ledger (by URL, without password) to the position up to which its
events predate the key, and the audit chain's link at that position: events written before
the key existed are held to that link, kept here where a database writer cannot change it.

Changes happen under a lock file beside secrets.enc, so processes starting at once on one
host do not make two keys."""
from __future__ import annotations

import base64
import fcntl
import json
import os
import secrets as random
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from adapters.secrets import SecretsError, SecretStore
from ledger.signing import EventKeys

SECRET_NAME = "audit.key"


@dataclass
class Binding:
    unsigned_upto: int
    link: str


@dataclass
class AuditKeyRing:
    current: str
    keys: dict[str, bytes]
    ledgers: dict[str, Binding] = field(default_factory=dict)

    def event_keys(self) -> EventKeys:
        return EventKeys(self.keys, self.current)

    def __repr__(self) -> str:                  # never the key bytes
        return f"AuditKeyRing(current={self.current!r}, ids={sorted(self.keys)!r})"

    def to_json(self) -> str:
        return json.dumps({"current": self.current,
                           "keys": {k: base64.b64encode(v).decode() for k, v in self.keys.items()},
                           "ledgers": {u: vars(b) for u, b in self.ledgers.items()}})

    @classmethod
    def from_json(cls, text: str) -> AuditKeyRing:
        try:
            data: Any = json.loads(text)
            ring = cls(str(data["current"]),
                       {str(k): base64.b64decode(v, validate=True)
                        for k, v in data["keys"].items()},
                       {str(u): Binding(int(b["unsigned_upto"]), str(b["link"]))
                        for u, b in data.get("ledgers", {}).items()})
            ring.event_keys()                   # ids well formed, current among them
            return ring
        except (ValueError, KeyError, TypeError, AttributeError):
            raise SecretsError(f"the secret {SECRET_NAME} is damaged; restore the secrets"
                               " store from a backup (old events cannot be verified"
                               " without it)") from None


def new_key_id(taken: dict[str, bytes]) -> str:
    while True:
        key_id = random.token_hex(4)
        if key_id not in taken:
            return key_id


class AuditKeyStore:
    def __init__(self, secrets: SecretStore) -> None:
        self.secrets = secrets

    def load(self) -> AuditKeyRing | None:
        value = self.secrets.get(SECRET_NAME)
        return AuditKeyRing.from_json(value) if value else None

    @contextmanager
    def locked(self) -> Iterator[None]:
        self.secrets.data_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.secrets.data_dir / "audit.key.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def save(self, ring: AuditKeyRing) -> None:
        self.secrets.set(SECRET_NAME, ring.to_json())

    def create(self) -> tuple[AuditKeyRing, bool]:
        """The key ring, made now if there is none. (ring, made)"""
        with self.locked():
            ring = self.load()
            if ring is not None:
                return ring, False
            key_id = new_key_id({})
            ring = AuditKeyRing(key_id, {key_id: random.token_bytes(32)})
            self.save(ring)
            return ring, True

    def rotate(self) -> tuple[str, str]:
        """A new current key; the old ones stay for old MACs. (old id, new id)"""
        with self.locked():
            ring = self.load()
            if ring is None:
                raise SecretsError(f"no {SECRET_NAME} in the secrets store to rotate")
            old, key_id = ring.current, new_key_id(ring.keys)
            ring.keys[key_id] = random.token_bytes(32)
            ring.current = key_id
            self.save(ring)
            return old, key_id

    def bind(self, ledger: str, unsigned_upto: int, link: str) -> AuditKeyRing:
        """Record (once) where this ledger's MACs begin; returns the ring as stored."""
        with self.locked():
            ring = self.load()
            if ring is None:
                raise SecretsError(f"no {SECRET_NAME} in the secrets store")
            ring.ledgers.setdefault(ledger, Binding(unsigned_upto, link))
            self.save(ring)
            return ring
