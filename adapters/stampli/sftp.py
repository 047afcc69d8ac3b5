"""Stampli's outbound SFTP folder as an ExportSource (ledger/ports.py), over paramiko.

Blocking by design: the pipeline calls it through asyncio.to_thread.

Host keys are always verified against a pinned known_hosts file (operations.md §2). paramiko's
SSHClient compares the server's key with only the first pinned key of each type, which would
break rotation (two ed25519 keys pinned while Stampli switches over), so the client is given
no host keys of its own and every key goes to a RejectPolicy subclass that accepts exactly the
keys pinned for the host and refuses everything else, naming the fingerprint it saw. The check
runs after key exchange and before authentication: a refused server never sees a credential.

No secret (password, key, passphrase) ever reaches a message, a log line or an exception.
"""
from __future__ import annotations

import fnmatch
import hashlib
import io
import logging
import os
import posixpath
import re
import socket
import stat
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import paramiko
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from ledger.ports import DownloadedFile, RemoteFile, SourceError

if TYPE_CHECKING:   # imported lazily: the source works without the config layer loaded
    from adapters.settings import StampliSettings

log = logging.getLogger(__name__)

CHUNK = 32 * 1024             # one SFTP read request (paramiko's and OpenSSH's safe maximum)
WINDOW = 4 * 1024 * 1024      # bytes requested per pipelined batch: memory stays a few windows
ROTATION_HINT = ("if the key was rotated, add it to known_hosts after verifying it with "
                 "Stampli (by another channel than this connection)")
_RSA_ALGORITHMS = ["rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"]
T = TypeVar("T")


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
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except OSError as exc:
        raise SourceError(f"cannot reach {host}:{port}: {exc}", transient=True) from None
    transport = _transport_factory(prefer or [])(sock)
    try:
        transport.banner_timeout = timeout
        transport.start_client(timeout=timeout)
        key = transport.get_remote_server_key()
        return key.get_name(), fingerprint(key)
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


def is_plain_name(name: str) -> bool:
    """A bare file name: nothing that could address another folder or confuse a log/terminal."""
    return (bool(name) and name not in (".", "..") and "/" not in name and "\\" not in name
            and ".." not in name and not any(ord(c) < 32 or ord(c) == 127 for c in name))


# ---------------------------------------------------------------- the source


class _Interrupted(Exception):
    """A transfer lost its connection after data had arrived: not retried within this call."""


class SftpSource:
    """ExportSource over SFTP. One session, opened lazily, reused, reconnected at most once
    per call; calls are serialised by a lock (one SFTP channel is not safe to share)."""

    def __init__(self, host: str, port: int, username: str, *, known_hosts: Path,
                 password: str | None = None, private_key: str | None = None,
                 private_key_passphrase: str | None = None, outbound_dir: str,
                 connect_timeout: float = 15, read_timeout: float = 60) -> None:
        if password is None and private_key is None:
            raise SourceError("no SFTP credential: set secret stampli.password or "
                              "stampli.private_key", transient=False)
        self.host, self.port, self.username = host, port, username
        self.outbound_dir = outbound_dir
        self.connect_timeout, self.read_timeout = connect_timeout, read_timeout
        self.pins = PinnedHostKeys(known_hosts)           # fail early on a missing file
        self._password = password
        self._pkey = load_private_key(private_key, private_key_passphrase) if private_key else None
        self._client: paramiko.SSHClient | None = None
        self._sftp: paramiko.SFTPClient | None = None
        self._lock = threading.RLock()

    @classmethod
    def from_settings(cls, settings: StampliSettings, secrets: Mapping[str, str],
                      base_dir: Path) -> SftpSource:
        """base_dir: the config file's folder, against which a relative known_hosts resolves."""
        from adapters.settings import parse_duration

        def need(name: str) -> str:
            value = secrets.get(name)
            if not value:
                raise SourceError(f"stampli.auth is {settings.auth!r} but secret {name} is not "
                                  f"set: run `ml-connector secrets set {name}`", transient=False)
            return value
        known_hosts = Path(settings.known_hosts).expanduser()
        if not known_hosts.is_absolute():
            known_hosts = Path(base_dir) / known_hosts
        credentials: dict[str, Any] = {}
        if settings.auth == "key":
            credentials["private_key"] = need("stampli.private_key")
            credentials["private_key_passphrase"] = secrets.get("stampli.private_key_passphrase")
        else:
            credentials["password"] = need("stampli.password")
        return cls(settings.host, settings.port, settings.username, known_hosts=known_hosts,
                   outbound_dir=settings.outbound_dir,
                   connect_timeout=parse_duration(settings.connect_timeout),
                   read_timeout=parse_duration(settings.read_timeout), **credentials)

    # ------------------------------------------------------------ session

    @property
    def _where(self) -> str:
        return f"{self.username}@{self.host}:{self.port}"

    def _auth_tried(self) -> str:
        tried = []
        if self._pkey is not None:
            tried.append(f"public key ({self._pkey.get_name()} {fingerprint(self._pkey)})")
        if self._password is not None:
            tried.append("password")
        return " then ".join(tried)

    def _alive(self) -> bool:
        transport = self._client.get_transport() if self._client else None
        return bool(self._sftp and transport and transport.is_active())

    def _connect(self) -> paramiko.SFTPClient:
        self._drop()
        client = paramiko.SSHClient()   # no host keys of its own: every key meets the policy
        client.set_missing_host_key_policy(_PinnedKeyPolicy(self.pins, self.host, self.port))
        timeout = self.connect_timeout
        began = time.monotonic()
        try:
            client.connect(
                self.host, self.port, self.username, password=self._password, pkey=self._pkey,
                timeout=timeout, banner_timeout=timeout, auth_timeout=timeout,
                channel_timeout=timeout, allow_agent=False, look_for_keys=False,
                transport_factory=_transport_factory(
                    self.pins.key_types_for(known_hosts_name(self.host, self.port))),
            )
            sftp = client.open_sftp()
            sftp.get_channel().settimeout(self.read_timeout)   # every SFTP reply waits this long
        except HostKeyRefused as exc:
            client.close()
            log.error("%s", exc)
            raise
        except paramiko.AuthenticationException as exc:
            client.close()
            allowed = getattr(exc, "allowed_types", None)
            hint = f" (the server allows: {', '.join(allowed)})" if allowed else ""
            raise SourceError(f"{self._where} refused the login; tried {self._auth_tried()}"
                              f"{hint}. Check stampli.username and the secret(s)",
                              transient=False) from None
        except (OSError, EOFError, paramiko.SSHException) as exc:
            client.close()
            # paramiko's start_client gives up silently at its timeout and the next step
            # says "No existing session": name the timeout instead
            reason = (f"timed out after {timeout:g}s" if time.monotonic() - began >= timeout
                      else _describe(exc))
            raise SourceError(f"cannot connect to {self._where}: {reason}",
                              transient=True) from None
        key = client.get_transport().get_remote_server_key()
        log.info("connected to %s (host key %s %s verified)", self._where, key.get_name(),
                 fingerprint(key))
        self._client, self._sftp = client, sftp
        return sftp

    def _drop(self) -> None:
        sftp, client = self._sftp, self._client
        self._sftp = self._client = None
        for thing in (sftp, client):
            try:
                if thing is not None:
                    thing.close()
            except Exception:   # closing a dead session may fail; nothing left to do
                pass

    def close(self) -> None:
        with self._lock:
            self._drop()

    def _run(self, what: str, op: Callable[[paramiko.SFTPClient, bool], T]) -> T:
        """Run op(sftp, retrying) with one reconnect per call: if the session is found dead
        (before the call, or by the call's first request), reconnect once and run op again."""
        with self._lock:
            reconnected = False
            if not self._alive():
                reconnected = self._client is not None
                self._connect()
            while True:
                try:
                    return op(self._sftp, reconnected)
                except SourceError:
                    raise
                except (_Interrupted, OSError, EOFError, paramiko.SSHException,
                        paramiko.SFTPError) as exc:
                    cause = exc.__cause__ if isinstance(exc, _Interrupted) else exc
                    if not isinstance(exc, _Interrupted) and not self._lost(exc):
                        raise _remote_error(what, self._where, exc) from None
                    self._drop()
                    if reconnected or isinstance(exc, _Interrupted):
                        raise SourceError(f"{what}: connection to {self._where} lost: "
                                          f"{_describe(cause)}", transient=True) from None
                    log.info("%s: session to %s dropped (%s); reconnecting once", what,
                             self._where, _describe(exc))
                    reconnected = True
                    self._connect()

    def _lost(self, exc: BaseException) -> bool:
        """Did exc come from the session (dropped, timed out) rather than from the server
        refusing an operation? After a timeout replies may still arrive: the session is spent."""
        lost = (TimeoutError, ConnectionError, paramiko.SSHException, paramiko.SFTPError)
        return isinstance(exc, lost) or not self._alive()

    # ------------------------------------------------------------ ExportSource

    def list_files(self, patterns: list[str]) -> list[RemoteFile]:
        def op(sftp: paramiko.SFTPClient, _: bool) -> list[RemoteFile]:
            try:
                entries = sftp.listdir_attr(self.outbound_dir)
            except UnicodeDecodeError:
                raise SourceError(f"a file name in {self.outbound_dir} on {self._where} is not "
                                  "UTF-8; ask Stampli to rename it", transient=False) from None
            found = []
            for entry in entries:
                name = entry.filename
                if not is_plain_name(name):
                    log.warning("ignoring %r in %s: not a plain file name", name,
                                self.outbound_dir)
                    continue
                if entry.st_mode is None or not stat.S_ISREG(entry.st_mode):
                    continue
                if any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns):
                    found.append(RemoteFile(name=name, size=int(entry.st_size or 0),
                                            mtime=float(entry.st_mtime or 0)))
            return sorted(found, key=lambda f: f.name)
        return self._run(f"listing {self.outbound_dir}", op)

    def download(self, name: str, dest_dir: Path) -> DownloadedFile:
        """Stream into dest_dir/<sha256[:2]>/<sha256>, hashing on the way; memory stays around
        one WINDOW whatever the size (measured: ~4 MiB for 50 MiB). Nothing partial is left behind on any failure."""
        _check_name(name)
        dest_dir = Path(dest_dir)
        dest_dir.mkdir(parents=True, exist_ok=True)
        remote = posixpath.join(self.outbound_dir, name)

        def op(sftp: paramiko.SFTPClient, _: bool) -> DownloadedFile:
            handles = [sftp.open(remote, "rb")]
            tmp: Path | None = None
            try:
                fd, tmp_name = tempfile.mkstemp(dir=dest_dir, prefix=".part-")
                tmp = Path(tmp_name)
                first = handles[0].stat()
                size = first.st_size or 0
                digest, received = hashlib.sha256(), 0
                with os.fdopen(fd, "wb") as out:
                    try:
                        for start in range(0, size, WINDOW):
                            if start:
                                # a fresh handle per window: paramiko's prefetch can race
                                # (a read falls back to a synchronous request and the
                                # prefetched blocks stay buffered in the handle until it is
                                # closed), so closing it is what keeps memory bounded
                                _quiet_close(handles.pop())
                                handles.append(sftp.open(remote, "rb"))
                                again = handles[0].stat()
                                if (again.st_size, again.st_mtime) != (size, first.st_mtime):
                                    break          # replaced or growing: reported below
                            # readv pipelines one window's requests (sequential 32 KiB reads
                            # are ~10x slower) and yields the blocks in order
                            end = min(start + WINDOW, size)
                            chunks = [(o, min(CHUNK, end - o)) for o in range(start, end, CHUNK)]
                            for data in handles[0].readv(chunks):
                                digest.update(data)
                                out.write(data)
                                received += len(data)
                        now = handles[0].stat().st_size
                    except (OSError, EOFError, paramiko.SSHException, paramiko.SFTPError) as exc:
                        if received and self._lost(exc):
                            raise _Interrupted() from exc
                        raise
                    out.flush()
                    os.fsync(out.fileno())
                if received != size or now != size:
                    raise SourceError(f"{remote} on {self._where} changed while downloading "
                                      f"({size} bytes at first, {received} read, {now} now); "
                                      "will retry", transient=True)
                sha = digest.hexdigest()
                final = dest_dir / sha[:2] / sha
                final.parent.mkdir(exist_ok=True)
                if final.exists():
                    tmp.unlink()          # same content already here: keep one copy
                else:
                    os.replace(tmp, final)
                log.info("downloaded %s (%d bytes, sha256 %s)", remote, size, sha)
                return DownloadedFile(name=name, path=final, sha256=sha, size=size)
            finally:
                if tmp is not None:
                    tmp.unlink(missing_ok=True)
                for handle in handles:
                    _quiet_close(handle)
        return self._run(f"downloading {remote}", op)

    def archive(self, name: str, archive_dir: str) -> None:
        """Move the file into archive_dir (relative paths are inside outbound_dir), never over
        an existing file: name, then name~1, name~2... SFTP rename refuses to overwrite."""
        _check_name(name)
        source = posixpath.join(self.outbound_dir, name)
        target_dir = posixpath.join(self.outbound_dir, archive_dir)
        stem, ext = posixpath.splitext(name)

        def op(sftp: paramiko.SFTPClient, retrying: bool) -> None:
            _makedirs(sftp, target_dir)
            for n in range(1000):
                target = posixpath.join(target_dir, name if n == 0 else f"{stem}~{n}{ext}")
                if _exists(sftp, target):
                    continue
                try:
                    sftp.rename(source, target)
                    log.info("archived %s to %s", source, target)
                    return
                except OSError as exc:
                    if not self._alive() or isinstance(exc, TimeoutError):
                        raise
                    if _exists(sftp, target):
                        continue            # another mover won the race for this name
                    if not _exists(sftp, source):
                        if retrying:        # the rename went through before the drop
                            log.info("%s already archived before the reconnect", source)
                            return
                        raise SourceError(f"cannot archive {source} on {self._where}: "
                                          "no such file", transient=False) from None
                    raise
            raise SourceError(f"cannot archive {source}: 1000 copies already in {target_dir}",
                              transient=False)
        self._run(f"archiving {source}", op)


# ---------------------------------------------------------------- helpers


def _check_name(name: str) -> None:
    if not is_plain_name(name):
        raise SourceError(f"{name!r} is not a plain file name", transient=False)


def _exists(sftp: paramiko.SFTPClient, path: str) -> bool:
    try:
        sftp.lstat(path)
    except FileNotFoundError:
        return False
    return True


def _makedirs(sftp: paramiko.SFTPClient, path: str) -> None:
    if _exists(sftp, path):
        return
    parent = posixpath.dirname(path.rstrip("/"))
    if parent and parent != path:
        _makedirs(sftp, parent)
    try:
        sftp.mkdir(path)
    except OSError:
        if not _exists(sftp, path):   # created concurrently is fine; anything else is not
            raise


def _quiet_close(handle: Any) -> None:
    try:
        handle.close()
    except Exception:   # the session may be gone already; the handle dies with it
        pass


def _describe(exc: BaseException | None) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    text = str(exc) if exc is not None else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _remote_error(what: str, where: str, exc: BaseException) -> SourceError:
    """The server refused an operation. Missing or forbidden paths need a person; a generic
    SFTP failure may pass (a file being replaced), so it is transient."""
    if isinstance(exc, FileNotFoundError):
        return SourceError(f"{what} on {where}: no such file or folder", transient=False)
    if isinstance(exc, PermissionError):
        return SourceError(f"{what} on {where}: permission denied", transient=False)
    return SourceError(f"{what} on {where} failed: {_describe(exc)}", transient=True)
