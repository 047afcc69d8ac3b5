"""The sandbox's in-process SFTP server (sandbox/sftp.py), driven by the real SftpSource."""
from __future__ import annotations

import hashlib
import os

import paramiko
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from adapters.stampli.sftp import HostKeyRefused, SftpSource, probe_host_key
from ledger.ports import SourceError
from sandbox import sftp as sandbox_sftp

PATTERNS = ["invoices_*.csv"]
PASSWORD = "sandbox-" + os.urandom(6).hex()


def client_key() -> tuple[str, str]:
    private = ed25519.Ed25519PrivateKey.generate()
    text = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                 serialization.NoEncryption()).decode()
    public = private.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                               serialization.PublicFormat.OpenSSH).decode()
    return text, public


@pytest.fixture
def server(tmp_path):
    key_text, public = client_key()
    root = tmp_path / "root"
    (root / "outbound").mkdir(parents=True)
    handle = sandbox_sftp.start(root, username="acme-ap", password=PASSWORD,
                                authorized_key=public, host_key_path=tmp_path / "host_key")
    handle.client_key = key_text
    handle.write_known_hosts(tmp_path / "known_hosts")
    yield handle
    handle.stop()


def source(server, tmp_path, **credentials) -> SftpSource:
    credentials = credentials or {"password": PASSWORD}
    return SftpSource("127.0.0.1", server.port, "acme-ap", known_hosts=tmp_path / "known_hosts",
                      outbound_dir="/outbound", connect_timeout=5, read_timeout=5, **credentials)


def test_password_login_list_download(server, tmp_path):
    body = os.urandom(300_000)   # several windows of pipelined reads
    (server.root / "outbound" / "invoices_1.csv").write_bytes(body)
    (server.root / "outbound" / "other.txt").write_bytes(b"x")
    src = source(server, tmp_path)
    try:
        listed = src.list_files(PATTERNS)
        assert [(f.name, f.size) for f in listed] == [("invoices_1.csv", len(body))]
        got = src.download("invoices_1.csv", tmp_path / "files")
        assert got.sha256 == hashlib.sha256(body).hexdigest()
        assert got.path.read_bytes() == body
    finally:
        src.close()


def test_key_login(server, tmp_path):
    (server.root / "outbound" / "invoices_k.csv").write_bytes(b"k")
    src = source(server, tmp_path, private_key=server.client_key)
    try:
        assert [f.name for f in src.list_files(PATTERNS)] == ["invoices_k.csv"]
    finally:
        src.close()


def test_wrong_password_and_wrong_key_refused(server, tmp_path):
    with pytest.raises(SourceError) as caught:
        source(server, tmp_path, password="nope").list_files(PATTERNS)
    assert caught.value.transient is False
    stranger, _ = client_key()
    with pytest.raises(SourceError) as caught:
        source(server, tmp_path, private_key=stranger).list_files(PATTERNS)
    assert caught.value.transient is False


def test_archive_renames_without_overwriting(server, tmp_path):
    outbound = server.root / "outbound"
    (outbound / "invoices_1.csv").write_bytes(b"one")
    src = source(server, tmp_path)
    try:
        src.archive("invoices_1.csv", "archive")
        (outbound / "invoices_1.csv").write_bytes(b"two")
        src.archive("invoices_1.csv", "archive")
        assert (outbound / "archive" / "invoices_1.csv").read_bytes() == b"one"
        assert (outbound / "archive" / "invoices_1~1.csv").read_bytes() == b"two"
        assert src.list_files(PATTERNS) == []
    finally:
        src.close()


def test_host_key_persists_across_restarts(server, tmp_path):
    first = server.host_key.get_base64()
    assert probe_host_key("127.0.0.1", server.port, timeout=5)[1] == server.host_key.fingerprint
    server.stop()
    again = sandbox_sftp.start(server.root, username="acme-ap", password=PASSWORD,
                               host_key_path=tmp_path / "host_key")
    try:
        assert again.host_key.get_base64() == first
        assert again.known_hosts_line.endswith(f"ssh-ed25519 {first}")
        assert oct((tmp_path / "host_key").stat().st_mode & 0o777) == "0o600"
    finally:
        again.stop()


def test_unpinned_sandbox_key_refused(server, tmp_path):
    other = sandbox_sftp.load_or_create_host_key(tmp_path / "other_key")
    (tmp_path / "known_hosts").write_text(
        f"[127.0.0.1]:{server.port} ssh-ed25519 {other.get_base64()}\n")
    with pytest.raises(HostKeyRefused) as caught:
        source(server, tmp_path).list_files(PATTERNS)
    assert server.host_key.fingerprint in str(caught.value)


def test_paths_confined_to_root(server, tmp_path):
    outside = tmp_path / "secret.txt"
    outside.write_text("outside")
    (server.root / "outbound" / "escape").symlink_to(outside)
    transport = paramiko.Transport(("127.0.0.1", server.port))
    transport.connect(hostkey=server.host_key, username="acme-ap", password=PASSWORD)
    sftp = paramiko.SFTPClient.from_transport(transport)
    try:
        assert sorted(sftp.listdir("/../../..")) == ["outbound"]      # ".." stops at the root
        assert sftp.normalize("../../outbound/..") == "/"
        with pytest.raises(FileNotFoundError):
            sftp.open(f"/../..{outside}")                              # maps inside the root
        with pytest.raises(PermissionError):
            sftp.open("/outbound/escape")                              # symlink out: refused
        with pytest.raises(PermissionError):
            sftp.stat("/outbound/escape")
        # writes, renames and removes stay inside too
        with sftp.open("/outbound/new.csv", "wb") as handle:
            handle.write(b"written")
        assert (server.root / "outbound" / "new.csv").read_bytes() == b"written"
        sftp.posix_rename("/outbound/new.csv", "/../outbound/moved.csv")
        sftp.remove("/outbound/moved.csv")
        assert sorted(os.listdir(server.root / "outbound")) == ["escape"]
        assert outside.read_text() == "outside"
    finally:
        sftp.close()
        transport.close()


def test_start_needs_a_credential(tmp_path):
    with pytest.raises(ValueError):
        sandbox_sftp.start(tmp_path, username="u", host_key_path=tmp_path / "k")


def test_stop_refuses_new_connections(server, tmp_path):
    server.stop()
    with pytest.raises(SourceError) as caught:
        source(server, tmp_path).list_files(PATTERNS)
    assert caught.value.transient is True



def test_a_client_hanging_up_is_not_logged_as_a_socket_error(server, tmp_path, caplog):
    import logging
    import time

    caplog.set_level(logging.DEBUG, logger="paramiko")
    for _ in range(3):
        probe_host_key("127.0.0.1", server.port, timeout=5)       # a handshake, then close
    src = source(server, tmp_path)
    src.list_files(PATTERNS)
    src.close()
    time.sleep(0.3)                              # the server's transport threads notice
    assert [r.getMessage() for r in caplog.records if "Socket exception" in r.getMessage()] \
        == []
