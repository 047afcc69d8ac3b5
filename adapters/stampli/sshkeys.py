"""Pinned SSH host keys and client keys for the Stampli SFTP source.

paramiko's SSHClient compares the server's key with only the first pinned key of each type,
which would break rotation (two ed25519 keys pinned while Stampli switches over), so the
client is given no host keys of its own and every key goes to a RejectPolicy subclass that
accepts exactly the keys pinned for the host and refuses everything else, naming the
fingerprint it saw.
"""
from __future__ import annotations

import io
import logging
import re
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import paramiko
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from ledger.ports import SourceError

ROTATION_HINT = ("if the key was rotated, add it to known_hosts after verifying it with "
                 "Stampli (by another channel than this connection)")
_RSA_ALGORITHMS = ["rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"]
log = logging.getLogger("adapters.stampli.sftp")


# ---------------------------------------------------------------- host keys


def fingerprint(key: paramiko.PKey) -> str:
    """'SHA256:base64-without-padding', as `ssh-keygen -lf` prints it."""
    return key.fingerprint


def known_hosts_name(host: str, port: int) -> str:
    """How OpenSSH names a host in known_hosts: bare on port 22, else [host]:port."""
    return host if port == 22 else f"[{host}]:{port}"


def known_hosts_line(host: str, port: int, key: paramiko.PKey) -> str:
    return f"{known_hosts_name(host, port)} {key.get_name()} {key.get_base64()}"


class HostKeyRefused(SourceError):
    """The server presented a key that is not pinned. A person must verify and pin it."""

    def __init__(self, message: str, *, key_type: str, fingerprint: str, line: str) -> None:
        super().__init__(message, transient=False)
        self.key_type = key_type
        self.fingerprint = fingerprint
        self.known_hosts_line = line


class PinnedHostKeys:
    """The keys pinned in an OpenSSH known_hosts file, every one of them (not one per type).

    Lines are parsed with paramiko's HostKeyEntry; host patterns may be plain, hashed (|1|...),
    wildcards or negated (!), as in OpenSSH. `@revoked` lines refuse a key outright;
    `@cert-authority` lines are not supported and ignored."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        try:
            text = self.path.read_text(encoding="utf-8")
        except OSError as exc:
            raise SourceError(f"cannot read the pinned host keys file {self.path}: "
                              f"{exc.strerror or exc}; create it with the server's host key "
                              "line (OpenSSH known_hosts format)", transient=False) from None
        self.entries: list[tuple[list[str], paramiko.PKey]] = []
        self.revoked: list[tuple[list[str], paramiko.PKey]] = []
        for number, raw in enumerate(text.splitlines(), 1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            target = self.entries
            if line.startswith("@revoked"):
                target, line = self.revoked, line[len("@revoked"):].strip()
            elif line.startswith("@"):
                continue
            try:
                entry = paramiko.hostkeys.HostKeyEntry.from_line(line, number)
            except paramiko.hostkeys.InvalidHostKey:
                entry = None
            if entry is None or entry.key is None:
                log.warning("%s line %d is not a host key line this client can use; ignored",
                            self.path, number)
                continue
            target.append((entry.hostnames, entry.key))

    @staticmethod
    def _matches(name: str, patterns: list[str]) -> bool:
        name = name.lower()
        hit = False
        for pattern in patterns:
            negated = pattern.startswith("!")
            pattern = pattern[1:] if negated else pattern
            if pattern.startswith("|1|"):
                matched = paramiko.HostKeys.hash_host(name, pattern) == pattern
            else:
                # only * and ? are wildcards: "[host]:port" brackets are literal here
                glob = re.escape(pattern.lower()).replace(r"\*", ".*").replace(r"\?", ".")
                matched = re.fullmatch(glob, name) is not None
            if matched and negated:
                return False
            hit = hit or matched
        return hit

    def keys_for(self, name: str) -> list[paramiko.PKey]:
        return [key for hosts, key in self.entries if self._matches(name, hosts)]

    def key_types_for(self, name: str) -> list[str]:
        """Host key algorithms to prefer, so that a server with several keys shows a pinned one."""
        wanted: list[str] = []
        for key in self.keys_for(name):
            for algorithm in _RSA_ALGORITHMS if key.get_name() == "ssh-rsa" else [key.get_name()]:
                if algorithm not in wanted:
                    wanted.append(algorithm)
        return wanted

    def verify(self, host: str, port: int, key: paramiko.PKey) -> None:
        name = known_hosts_name(host, port)
        seen = f"{key.get_name()} key {fingerprint(key)}"
        line = known_hosts_line(host, port, key)
        if any(self._matches(name, hosts) and k == key for hosts, k in self.revoked):
            raise HostKeyRefused(
                f"refusing to connect to {host}:{port}: it presented the {seen}, which is "
                f"marked @revoked in {self.path}",
                key_type=key.get_name(), fingerprint=fingerprint(key), line=line)
        pinned = self.keys_for(name)
        if any(k.get_name() == key.get_name() and k.asbytes() == key.asbytes() for k in pinned):
            return
        if pinned:
            what = (f"the host key of {host}:{port} has CHANGED: it presented the {seen}, but "
                    f"{self.path} pins " + ", ".join(f"{k.get_name()} {fingerprint(k)}"
                                                     for k in pinned))
        else:
            what = (f"the host key of {host}:{port} is UNKNOWN: it presented the {seen}, and "
                    f"{self.path} pins no key for {name}")
        raise HostKeyRefused(
            f"refusing to connect: {what}. This may be an attack; {ROTATION_HINT}. "
            f"The line to add would be: {line}",
            key_type=key.get_name(), fingerprint=fingerprint(key), line=line)


class _PinnedKeyPolicy(paramiko.RejectPolicy):
    """RejectPolicy that lets through exactly the pinned keys (see the module docstring)."""

    def __init__(self, pins: PinnedHostKeys, host: str, port: int) -> None:
        self.pins, self.host, self.port = pins, host, port

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str,
                         key: paramiko.PKey) -> None:
        self.pins.verify(self.host, self.port, key)   # raises HostKeyRefused


def _transport_factory(prefer: list[str]) -> Callable[..., paramiko.Transport]:
    def make(sock: Any, **kwargs: Any) -> paramiko.Transport:
        transport = paramiko.Transport(sock, **kwargs)
        options = transport.get_security_options()
        supported = list(options.key_types)
        first = [k for k in prefer if k in supported]
        options.key_types = first + [k for k in supported if k not in first]
        return transport
    return make


def probe_host_key(host: str, port: int = 22, *, timeout: float = 15,
                   prefer: list[str] | None = None) -> tuple[str, str]:
    """The host key the server presents, as (key type, SHA256 fingerprint), without trusting
    or authenticating: for `check` to tell a person what to verify with Stampli."""
    key = fetch_host_key(host, port, timeout=timeout, prefer=prefer)
    return key.get_name(), fingerprint(key)


def fetch_host_key(host: str, port: int = 22, *, timeout: float = 15,
                   prefer: list[str] | None = None) -> paramiko.PKey:
    """The host key the server presents (one handshake, no login, nothing trusted)."""
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except OSError as exc:
        raise SourceError(f"cannot reach {host}:{port}: {exc}", transient=True) from None
    transport = _transport_factory(prefer or [])(sock)
    try:
        transport.banner_timeout = timeout
        transport.start_client(timeout=timeout)
        return transport.get_remote_server_key()
    except (OSError, EOFError, paramiko.SSHException) as exc:
        raise SourceError(f"SSH handshake with {host}:{port} failed: {exc}",
                          transient=True) from None
    finally:
        transport.close()


# ---------------------------------------------------------------- credentials


def load_private_key(text: str, passphrase: str | None = None) -> paramiko.PKey:
    """A paramiko key from PEM or OpenSSH text; ed25519, ECDSA or RSA, detected.

    cryptography parses every format (OpenSSH, PKCS#1, SEC1, PKCS#8) and the key is handed to
    paramiko re-encoded as OpenSSH, which paramiko reads for all three types. Errors say what
    is wrong without quoting the key."""
    data = text.strip().encode("utf-8") + b"\n"
    secret = passphrase.encode("utf-8") if passphrase else None
    where = "the private key (secret stampli.private_key)"
    try:
        if b"-----BEGIN OPENSSH PRIVATE KEY-----" in data:
            loader = serialization.load_ssh_private_key
        else:
            loader = serialization.load_pem_private_key  # type: ignore[assignment]
        try:
            loaded = loader(data, password=secret)
        except TypeError:
            if secret is None:
                raise SourceError(f"{where} is encrypted: set stampli.private_key_passphrase",
                                  transient=False) from None
            loaded = loader(data, password=None)   # a passphrase set for a plain key: harmless
    except SourceError:
        raise
    except ValueError:
        raise SourceError(f"{where} could not be read: not a PEM/OpenSSH private key, or the "
                          "passphrase (stampli.private_key_passphrase) is wrong",
                          transient=False) from None
    except Exception as exc:   # unsupported algorithm and the like; never echo the data
        raise SourceError(f"{where} could not be read ({type(exc).__name__})",
                          transient=False) from None
    classes: list[tuple[type, type[paramiko.PKey]]] = [
        (ed25519.Ed25519PrivateKey, paramiko.Ed25519Key),
        (ec.EllipticCurvePrivateKey, paramiko.ECDSAKey),
        (rsa.RSAPrivateKey, paramiko.RSAKey),
    ]
    for crypto_class, key_class in classes:
        if isinstance(loaded, crypto_class):
            plain = loaded.private_bytes(serialization.Encoding.PEM,
                                         serialization.PrivateFormat.OpenSSH,
                                         serialization.NoEncryption())
            return key_class.from_private_key(io.StringIO(plain.decode("ascii")))
    raise SourceError(f"{where} is a {type(loaded).__name__}; use an ed25519, ECDSA or RSA key",
                      transient=False)
