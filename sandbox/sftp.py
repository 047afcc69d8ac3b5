"""An in-process SFTP server for `ml-connector sandbox`: Stampli's outbound folder emulated on
loopback (modelled on paramiko's own test stub server, tests/_stub_sftp.py).

    server = start(root, username="acme-ap", password=pw, host_key_path=sandbox / "host_key")
    server.port, server.known_hosts_line   # -> config's [stampli] port and its known_hosts file
    server.stop()

The host key is kept in host_key_path (created on first start, mode 0600), so a known_hosts
file written once stays valid across sandbox restarts. Every path the client sends is mapped
into `root` ("/" is the root; "..", absolute paths and symlinks cannot leave it). Rename
refuses to overwrite, like OpenSSH's SSH_FXP_RENAME; posix-rename overwrites.
"""
from __future__ import annotations

import hmac
import logging
import os
import posixpath
import socket
import threading
from dataclasses import dataclass, field
from pathlib import Path

import paramiko
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from paramiko.sftp import SFTP_FAILURE, SFTP_OK, SFTP_OP_UNSUPPORTED, SFTP_PERMISSION_DENIED

log = logging.getLogger(__name__)


# The server side's transports log here: a client that hangs up without a goodbye (a host key
# probe, a killed sync) is a normal end of a session, not an error worth a line.
SERVER_LOG_CHANNEL = "paramiko.sandbox_server"


class _NormalDisconnects(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        return not (text.startswith("Socket exception:") and (
            "reset by peer" in text or "Broken pipe" in text))


logging.getLogger(SERVER_LOG_CHANNEL).addFilter(_NormalDisconnects())


def load_or_create_host_key(path: Path) -> paramiko.PKey:
    path = Path(path)
    if not path.exists():
        # paramiko cannot generate ed25519 keys; cryptography writes the OpenSSH format
        pem = ed25519.Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
            serialization.NoEncryption())
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(pem)
    return paramiko.Ed25519Key.from_private_key_file(str(path))


def _public_key(value: str | paramiko.PKey) -> paramiko.PKey:
    """A public key line 'ssh-ed25519 AAAA... comment' (or a PKey) as a PKey."""
    if isinstance(value, paramiko.PKey):
        return value
    blob = paramiko.PublicBlob.from_string(value.strip())
    return paramiko.PKey.from_type_string(blob.key_type, blob.key_blob)


class _Auth(paramiko.ServerInterface):
    def __init__(self, username: str, password: str | None,
                 authorized: paramiko.PKey | None) -> None:
        self.username, self.password, self.authorized = username, password, authorized

    def get_allowed_auths(self, username: str) -> str:
        methods = (["publickey"] if self.authorized else []) + (["password"] if self.password else [])
        return ",".join(methods)

    def check_auth_password(self, username: str, password: str) -> int:
        ok = (self.password is not None and username == self.username
              and hmac.compare_digest(password.encode(), self.password.encode()))
        return paramiko.AUTH_SUCCESSFUL if ok else paramiko.AUTH_FAILED

    def check_auth_publickey(self, username: str, key: paramiko.PKey) -> int:
        ok = (self.authorized is not None and username == self.username
              and key.asbytes() == self.authorized.asbytes())
        return paramiko.AUTH_SUCCESSFUL if ok else paramiko.AUTH_FAILED

    def check_channel_request(self, kind: str, chanid: int) -> int:
        if kind == "session":
            return paramiko.OPEN_SUCCEEDED
        return paramiko.OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED


class _Handle(paramiko.SFTPHandle):
    def stat(self):  # type: ignore[no-untyped-def]
        try:
            return paramiko.SFTPAttributes.from_stat(os.fstat(self.readfile.fileno()))
        except OSError as exc:
            return paramiko.SFTPServer.convert_errno(exc.errno)

    def chattr(self, attr):  # type: ignore[no-untyped-def]
        return SFTP_OP_UNSUPPORTED


class _RootedSFTP(paramiko.SFTPServerInterface):
    """The client's view: '/' is root; nothing outside root is reachable."""

    def __init__(self, server: paramiko.ServerInterface, *args, root: Path, **kwargs) -> None:
        super().__init__(server, *args, **kwargs)
        self.root = os.path.realpath(root)

    def _real(self, path: str) -> str:
        virtual = posixpath.normpath("/" + path)           # ".." cannot climb above "/"
        real = os.path.realpath(os.path.join(self.root, virtual.lstrip("/")))
        # realpath resolved symlinks; one pointing outside the root is refused
        if os.path.commonpath([self.root, real]) != self.root:
            raise PermissionError(f"{path} is outside the served folder")
        return real

    def _call(self, fn, *args):  # type: ignore[no-untyped-def]
        """Run a filesystem call, turning OSError into an SFTP status like the stub does."""
        try:
            return fn(*args)
        except PermissionError:
            return SFTP_PERMISSION_DENIED
        except OSError as exc:
            return paramiko.SFTPServer.convert_errno(exc.errno) if exc.errno else SFTP_FAILURE

    def canonicalize(self, path: str) -> str:
        return posixpath.normpath("/" + path)

    def list_folder(self, path: str):  # type: ignore[no-untyped-def]
        def listing():  # type: ignore[no-untyped-def]
            real = self._real(path)
            out = []
            for name in os.listdir(real):
                attr = paramiko.SFTPAttributes.from_stat(os.lstat(os.path.join(real, name)))
                attr.filename = name
                out.append(attr)
            return out
        return self._call(listing)

    def stat(self, path: str):  # type: ignore[no-untyped-def]
        return self._call(lambda: paramiko.SFTPAttributes.from_stat(os.stat(self._real(path))))

    def lstat(self, path: str):  # type: ignore[no-untyped-def]
        return self._call(lambda: paramiko.SFTPAttributes.from_stat(os.lstat(self._real(path))))

    def open(self, path: str, flags: int, attr):  # type: ignore[no-untyped-def]
        def opening():  # type: ignore[no-untyped-def]
            real = self._real(path)
            mode = getattr(attr, "st_mode", None) or 0o644
            fd = os.open(real, flags | getattr(os, "O_BINARY", 0), mode)
            if flags & os.O_WRONLY:
                fmode = "ab" if flags & os.O_APPEND else "wb"
            elif flags & os.O_RDWR:
                fmode = "a+b" if flags & os.O_APPEND else "r+b"
            else:
                fmode = "rb"
            handle = _Handle(flags)
            handle.filename = real
            handle.readfile = handle.writefile = os.fdopen(fd, fmode)
            return handle
        return self._call(opening)

    def remove(self, path: str) -> int:
        return self._call(lambda: (os.remove(self._real(path)), SFTP_OK)[1])

    def rename(self, oldpath: str, newpath: str) -> int:
        def renaming() -> int:
            old, new = self._real(oldpath), self._real(newpath)
            if os.path.lexists(new):
                return SFTP_FAILURE          # SFTP v3 rename never overwrites
            os.rename(old, new)
            return SFTP_OK
        return self._call(renaming)

    def posix_rename(self, oldpath: str, newpath: str) -> int:
        return self._call(lambda: (os.replace(self._real(oldpath), self._real(newpath)), SFTP_OK)[1])

    def mkdir(self, path: str, attr) -> int:  # type: ignore[no-untyped-def]
        return self._call(lambda: (os.mkdir(self._real(path)), SFTP_OK)[1])

    def rmdir(self, path: str) -> int:
        return self._call(lambda: (os.rmdir(self._real(path)), SFTP_OK)[1])

    def chattr(self, path: str, attr) -> int:  # type: ignore[no-untyped-def]
        return SFTP_OP_UNSUPPORTED


@dataclass
class SandboxSftp:
    host: str
    port: int
    host_key: paramiko.PKey
    root: Path
    _listener: socket.socket = field(repr=False)
    _transports: list[paramiko.Transport] = field(default_factory=list, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)
    _stopping: threading.Event = field(default_factory=threading.Event, repr=False)

    @property
    def known_hosts_line(self) -> str:
        name = self.host if self.port == 22 else f"[{self.host}]:{self.port}"
        return f"{name} {self.host_key.get_name()} {self.host_key.get_base64()}"

    def write_known_hosts(self, path: Path) -> Path:
        Path(path).write_text(self.known_hosts_line + "\n")
        return Path(path)

    def stop(self) -> None:
        self._stopping.set()
        try:
            # close() alone does not wake a thread blocked in accept() on Linux; shutdown does
            self._listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._listener.close()
        for transport in list(self._transports):
            transport.close()
        if self._thread is not None:
            self._thread.join(5)

    def __enter__(self) -> SandboxSftp:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start(root: Path, *, username: str, password: str | None = None,
          authorized_key: str | paramiko.PKey | None = None, host_key_path: Path,
          host: str = "127.0.0.1", port: int = 0) -> SandboxSftp:
    """Serve root over SFTP on host:port (0 = a free port) in a background thread."""
    if password is None and authorized_key is None:
        raise ValueError("give a password, an authorized key, or both")
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    host_key = load_or_create_host_key(Path(host_key_path))
    authorized = _public_key(authorized_key) if authorized_key is not None else None
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((host, port))
    listener.listen(16)
    listener.settimeout(0.5)   # the accept loop also re-checks for stop() this often
    server = SandboxSftp(host=host, port=listener.getsockname()[1], host_key=host_key,
                         root=root, _listener=listener)

    def serve() -> None:
        while not server._stopping.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return                      # listener closed by stop()
            try:
                transport = paramiko.Transport(conn)
                transport.set_log_channel(SERVER_LOG_CHANNEL)
                transport.add_server_key(host_key)
                transport.set_subsystem_handler("sftp", paramiko.SFTPServer, _RootedSFTP,
                                                root=root)
                # with an event, negotiation runs in the transport's thread: a slow or
                # hostile client cannot hold up the accept loop
                transport.start_server(threading.Event(),
                                       server=_Auth(username, password, authorized))
            except (OSError, EOFError, paramiko.SSHException) as exc:
                log.info("sandbox SFTP: connection failed: %s", exc)
                conn.close()
                continue
            # forget finished sessions so a long sandbox run does not accumulate them
            server._transports[:] = [t for t in server._transports if t.is_active()]
            server._transports.append(transport)

    server._thread = threading.Thread(target=serve, name="sandbox-sftp", daemon=True)
    server._thread.start()
    log.info("sandbox SFTP serving %s on %s:%d", root, host, server.port)
    return server
