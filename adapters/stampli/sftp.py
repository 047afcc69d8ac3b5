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
import logging
import os
import posixpath
import stat
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import paramiko

from adapters.stampli.sshkeys import (  # noqa: F401  (re-exported: part of this adapter's API)
    fingerprint,
    known_hosts_name,
    known_hosts_line,
    HostKeyRefused,
    PinnedHostKeys,
    _PinnedKeyPolicy,
    _transport_factory,
    probe_host_key,
    load_private_key)
from ledger.ports import DownloadedFile, RemoteFile, SourceError

if TYPE_CHECKING:   # imported lazily: the source works without the config layer loaded
    from adapters.settings import StampliSettings

log = logging.getLogger(__name__)

CHUNK = 32 * 1024             # one SFTP read request (paramiko's and OpenSSH's safe maximum)
WINDOW = 4 * 1024 * 1024      # bytes requested per pipelined batch: memory stays a few windows
T = TypeVar("T")


def is_plain_name(name: str) -> bool:
    """A bare file name: nothing that could address another folder or confuse a log/terminal."""
    return (bool(name) and name not in (".", "..") and "/" not in name and "\\" not in name
            and ".." not in name and not any(ord(c) < 32 or ord(c) == 127 for c in name))


def _listdir_raw(sftp: paramiko.SFTPClient, path: str
                 ) -> list[tuple[bytes, paramiko.SFTPAttributes]]:
    """paramiko's listdir_attr, with each name as the server's bytes: listdir_attr decodes
    every name as UTF-8, so one file named in another encoding would fail the whole listing."""
    from paramiko.sftp import CMD_CLOSE, CMD_HANDLE, CMD_NAME, CMD_OPENDIR, CMD_READDIR

    kind, msg = sftp._request(CMD_OPENDIR, sftp._adjust_cwd(path))
    if kind != CMD_HANDLE:
        raise paramiko.SFTPError("Expected handle")
    handle = msg.get_binary()
    entries = []
    try:
        while True:
            try:
                kind, msg = sftp._request(CMD_READDIR, handle)
            except EOFError:
                break
            if kind != CMD_NAME:
                raise paramiko.SFTPError("Expected name response")
            for _ in range(msg.get_int()):
                raw, _long = msg.get_binary(), msg.get_binary()
                attr = paramiko.SFTPAttributes._from_msg(msg)
                if raw not in (b".", b".."):
                    entries.append((raw, attr))
    finally:
        sftp._request(CMD_CLOSE, handle)
    return entries


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
            found = []
            for raw, entry in _listdir_raw(sftp, self.outbound_dir):
                if entry.st_mode is None or not stat.S_ISREG(entry.st_mode):
                    continue
                size, mtime = int(entry.st_size or 0), float(entry.st_mtime or 0)
                try:
                    name = raw.decode("utf-8")
                except UnicodeDecodeError:
                    shown = raw.decode("utf-8", "backslashreplace")
                    found.append(RemoteFile(name=shown, size=size, mtime=mtime, problem=(
                        f"the file name is not UTF-8 (shown with \\x escapes), so it cannot "
                        f"be read safely; the other files go on: ask Stampli to rename it, "
                        f"or move it out of {self.outbound_dir}")))
                    continue
                if not is_plain_name(name):
                    log.warning("ignoring %r in %s: not a plain file name", name,
                                self.outbound_dir)
                    continue
                if any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns):
                    found.append(RemoteFile(name=name, size=size, mtime=mtime))
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
