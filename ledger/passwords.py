"""Password hashes: scrypt (memory-hard) with a random salt per hash, parameters kept in the
hash so they can be raised later, compared in constant time. A password is never stored,
logged or put in an exception; only `scrypt$N$r$p$salt$key` (base64) is."""
from __future__ import annotations

import base64
import hashlib
import hmac
import os

SCRYPT_N = 2**15                       # 32 MiB per hash with r=8: ~0.1 s on one core
SCRYPT_R, SCRYPT_P, KEY_BYTES, SALT_BYTES = 8, 1, 32, 16
MIN_LENGTH, MAX_LENGTH = 10, 1024


class WeakPassword(ValueError):
    """A password that is not accepted; the message says what is expected (never the value)."""


def check_strength(password: str, name: str) -> None:
    if len(password) < MIN_LENGTH:
        raise WeakPassword(f"the password has {len(password)} characters; use at least"
                           f" {MIN_LENGTH}")
    if len(password) > MAX_LENGTH:
        raise WeakPassword(f"the password is longer than {MAX_LENGTH} characters")
    if password.strip().casefold() == name.strip().casefold():
        raise WeakPassword("the password is the user name; choose another")


def hash_password(password: str, *, n: int = SCRYPT_N) -> str:
    salt = os.urandom(SALT_BYTES)
    key = _scrypt(password, salt, n, SCRYPT_R, SCRYPT_P)
    return "$".join(("scrypt", str(n), str(SCRYPT_R), str(SCRYPT_P), _b64(salt), _b64(key)))


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, key = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(key)
        got = _scrypt(password, base64.b64decode(salt), int(n), int(r), int(p), len(expected))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, expected)


def burn_time(password: str, *, n: int = SCRYPT_N) -> None:
    """The work of one verification, for an unknown user name: the answer then takes as long
    as for a known one, so timing does not tell which names exist."""
    _scrypt(password, b"\0" * SALT_BYTES, n, SCRYPT_R, SCRYPT_P)


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int, dklen: int = KEY_BYTES) -> bytes:
    return hashlib.scrypt(password.encode("utf-8", "surrogatepass"), salt=salt, n=n, r=r, p=p,
                          maxmem=256 * 1024 * 1024, dklen=dklen)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
