"""SftpSource against a real OpenSSH sshd (tests/fixtures/sshd.py)."""
from __future__ import annotations

import hashlib
import logging
import os
import signal
import socket
import subprocess
import threading
import tracemalloc
from pathlib import Path

import paramiko
import pytest

import adapters.stampli.sftp as sftp_module
from adapters.stampli.sftp import (HostKeyRefused, SftpSource, fingerprint, load_private_key,
                                   probe_host_key)
from ledger.ports import SourceError
from tests.fixtures.sshd import SshdServer, _children, keygen

pytestmark = pytest.mark.sshd
REAL_SHA256 = hashlib.sha256   # the drop test patches hashlib.sha256 (one module for all)
PATTERNS = ["invoices_*.csv", "invoices_*.xml", "vendors_*.csv"]


def key_source(sshd: SshdServer, **overrides) -> SftpSource:
    options = dict(known_hosts=sshd.known_hosts, private_key=sshd.client_key,
                   outbound_dir=str(sshd.outbound), connect_timeout=5, read_timeout=10)
    options.update(overrides)
    return SftpSource(sshd.host, sshd.port, sshd.login_user, **options)


def password_source(sshd: SshdServer, password: str | None = None, **overrides) -> SftpSource:
    options = dict(known_hosts=sshd.known_hosts, password=password or sshd.password,
                   outbound_dir=str(sshd.outbound), connect_timeout=5, read_timeout=10)
    options.update(overrides)
    return SftpSource(sshd.host, sshd.port, sshd.password_user, **options)


def drop(sshd: SshdServer, name: str, data: bytes) -> Path:
    path = sshd.outbound / name
    path.write_bytes(data)
    return path


def ssh_keygen_fingerprint(public_key_file: Path) -> str:
    out = subprocess.run(["ssh-keygen", "-lf", str(public_key_file)], check=True,
                         capture_output=True, text=True).stdout
    return out.split()[1]


def files_under(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file())


# ---------------------------------------------------------------- login, list, download


def test_key_login_lists_and_downloads_content_addressed(sshd, tmp_path):
    body = b"InvoiceNumber,Amount\nINV-1,100.00\n"
    path = drop(sshd, "invoices_20260101.csv", body)
    drop(sshd, "vendors_1.csv", b"v")
    drop(sshd, "readme.txt", b"not an export")
    source = key_source(sshd)
    try:
        listed = source.list_files(PATTERNS)
        assert [f.name for f in listed] == ["invoices_20260101.csv", "vendors_1.csv"]
        assert listed[0].size == len(body)
        assert listed[0].mtime == int(path.stat().st_mtime)

        got = source.download("invoices_20260101.csv", tmp_path / "files")
        sha = hashlib.sha256(body).hexdigest()
        assert got.sha256 == sha and got.size == len(body) and got.name == "invoices_20260101.csv"
        assert got.path == tmp_path / "files" / sha[:2] / sha
        assert got.path.read_bytes() == body
        again = source.download("invoices_20260101.csv", tmp_path / "files")
        assert again.path == got.path
        assert files_under(tmp_path / "files") == [got.path]   # one copy, no temp files left
    finally:
        source.close()


def test_password_login_lists_and_downloads(sshd, tmp_path):
    body = os.urandom(100_000)
    drop(sshd, "invoices_2.xml", body)
    before = sshd.log_path.read_text()
    source = password_source(sshd)
    try:
        assert [f.name for f in source.list_files(PATTERNS)] == ["invoices_2.xml"]
        got = source.download("invoices_2.xml", tmp_path)
        assert got.path.read_bytes() == body
        assert got.sha256 == hashlib.sha256(body).hexdigest()
    finally:
        source.close()
    new_log = sshd.log_path.read_text()[len(before):]
    assert f"Accepted password for {sshd.password_user}" in new_log


@pytest.mark.parametrize("kind,bits,passphrase,name", [
    ("ecdsa", None, "", "ecdsa-sha2-nistp256"),
    ("rsa", 2048, "correct horse", "ssh-rsa"),
    ("ed25519", None, "battery staple", "ssh-ed25519"),
])
def test_key_types_detected_and_accepted(sshd, tmp_path, kind, bits, passphrase, name):
    private, public = keygen(tmp_path / f"id_{kind}", kind, bits, passphrase)
    if kind == "rsa":   # also the legacy PEM container
        subprocess.run(["ssh-keygen", "-q", "-p", "-m", "PEM", "-P", passphrase, "-N", passphrase,
                        "-f", str(tmp_path / f"id_{kind}")], check=True, capture_output=True)
        private = (tmp_path / f"id_{kind}").read_text()
        assert "BEGIN RSA PRIVATE KEY" in private
    sshd.authorize(public)
    assert load_private_key(private, passphrase or None).get_name() == name
    drop(sshd, "invoices_k.csv", b"k")
    source = key_source(sshd, private_key=private, private_key_passphrase=passphrase or None)
    try:
        assert [f.name for f in source.list_files(PATTERNS)] == ["invoices_k.csv"]
    finally:
        source.close()
    assert ssh_keygen_fingerprint(Path(f"{tmp_path}/id_{kind}.pub")) in sshd.log_path.read_text()


def test_bad_password_is_refused_naming_the_method(sshd):
    source = password_source(sshd, password="wrong-" + sshd.password)
    with pytest.raises(SourceError) as caught:
        source.list_files(PATTERNS)
    assert caught.value.transient is False
    assert "refused the login" in str(caught.value) and "password" in str(caught.value)
    assert sshd.password not in str(caught.value)


def test_unauthorized_key_is_refused(sshd, tmp_path):
    private, _ = keygen(tmp_path / "stranger")
    source = key_source(sshd, private_key=private)
    with pytest.raises(SourceError) as caught:
        source.list_files(PATTERNS)
    assert caught.value.transient is False
    assert "public key (ssh-ed25519 SHA256:" in str(caught.value)


# ---------------------------------------------------------------- host keys


def test_unknown_host_key_refused_before_any_login(sshd, tmp_path):
    known = tmp_path / "known_hosts"
    _, other = keygen(tmp_path / "other_host")
    known.write_text(f"[127.0.0.1]:1 {other}\nsftp.example.com {other}\n")   # other hosts only
    logins = sshd.accepted_logins()
    source = password_source(sshd, known_hosts=known)
    with pytest.raises(HostKeyRefused) as caught:
        source.list_files(PATTERNS)
    served = ssh_keygen_fingerprint(Path(str(sshd.host_key_path) + ".pub"))
    message = str(caught.value)
    assert caught.value.transient is False
    assert "UNKNOWN" in message and f"ssh-ed25519 key {served}" in message
    assert f"127.0.0.1:{sshd.port}" in message
    assert "add it to known_hosts after verifying it with Stampli" in message
    assert caught.value.fingerprint == served
    assert caught.value.known_hosts_line == sshd.known_hosts_line
    assert sshd.accepted_logins() == logins
    assert source._client is None


def test_changed_host_key_refused(sshd, tmp_path):
    _, old = keygen(tmp_path / "old_host")
    known = sshd.write_known_hosts(tmp_path / "known_hosts", " ".join(old.split()[:2]))
    logins = sshd.accepted_logins()
    with pytest.raises(HostKeyRefused) as caught:
        key_source(sshd, known_hosts=known).list_files(PATTERNS)
    message = str(caught.value)
    assert "CHANGED" in message
    assert ssh_keygen_fingerprint(tmp_path / "old_host.pub") in message       # what is pinned
    assert ssh_keygen_fingerprint(Path(str(sshd.host_key_path) + ".pub")) in message  # seen
    assert sshd.accepted_logins() == logins


def test_missing_known_hosts_file_is_a_config_error(sshd, tmp_path):
    with pytest.raises(SourceError) as caught:
        key_source(sshd, known_hosts=tmp_path / "nope")
    assert caught.value.transient is False and "nope" in str(caught.value)


@pytest.mark.parametrize("order", ["old-first", "new-first"])
def test_several_pinned_keys_for_rotation(sshd, tmp_path, order):
    _, old = keygen(tmp_path / "old_host")
    _, ecdsa = keygen(tmp_path / "ecdsa_host", "ecdsa")
    keys = [" ".join(old.split()[:2]), " ".join(ecdsa.split()[:2]), sshd.host_public_key]
    if order == "new-first":
        keys.reverse()
    known = sshd.write_known_hosts(tmp_path / "known_hosts", *keys)
    drop(sshd, "invoices_r.csv", b"r")
    source = key_source(sshd, known_hosts=known)
    try:
        assert [f.name for f in source.list_files(PATTERNS)] == ["invoices_r.csv"]
    finally:
        source.close()


def test_hashed_known_hosts_entry_accepted(sshd, tmp_path):
    known = tmp_path / "known_hosts"
    known.write_text(sshd.known_hosts_line + "\n")
    subprocess.run(["ssh-keygen", "-q", "-H", "-f", str(known)], check=True, capture_output=True)
    assert known.read_text().startswith("|1|")
    source = key_source(sshd, known_hosts=known)
    try:
        assert source.list_files(PATTERNS) == []
    finally:
        source.close()


def test_probe_and_fingerprint_match_ssh_keygen(sshd):
    served = ssh_keygen_fingerprint(Path(str(sshd.host_key_path) + ".pub"))
    assert probe_host_key(sshd.host, sshd.port, timeout=5) == ("ssh-ed25519", served)
    key = paramiko.Ed25519Key.from_private_key_file(str(sshd.host_key_path))
    assert fingerprint(key) == served


# ---------------------------------------------------------------- names


def test_patterns_and_unsafe_names(sshd, tmp_path):
    for name in ["invoices_1.csv", "invoices_2.xml", "Invoices_3.CSV", "invoices_x.csv.part",
                 "invoices_ctl\x01.csv", "invoices_nl\n.csv", "invoices_a\\b.csv",
                 "invoices_..csv", "vendors_9.csv"]:
        drop(sshd, name, b"x")
    (sshd.outbound / "invoices_dir.csv").mkdir()
    (sshd.outbound / "invoices_link.csv").symlink_to("/etc/passwd")
    source = key_source(sshd)
    try:
        assert [f.name for f in source.list_files(PATTERNS)] == [
            "invoices_1.csv", "invoices_2.xml", "vendors_9.csv"]
        assert [f.name for f in source.list_files(["*.xml"])] == ["invoices_2.xml"]
        for bad in ["../etc/passwd", "a/b.csv", "..", "", "x\x00.csv"]:
            with pytest.raises(SourceError) as caught:
                source.download(bad, tmp_path)
            assert caught.value.transient is False
        with pytest.raises(SourceError) as caught:
            source.download("invoices_missing.csv", tmp_path)
        assert caught.value.transient is False and "no such file" in str(caught.value)
        assert files_under(tmp_path) == []
    finally:
        source.close()


# ---------------------------------------------------------------- big files, drops, timeouts


def test_large_file_streams_with_bounded_memory(sshd, tmp_path):
    size = 50 * 1024 * 1024
    digest = hashlib.sha256()
    with open(sshd.outbound / "invoices_big.csv", "wb") as handle:
        block = os.urandom(1 << 20)
        for i in range(50):
            chunk = i.to_bytes(4, "big") + block[4:]
            digest.update(chunk)
            handle.write(chunk)
    source = key_source(sshd)
    try:
        source.list_files(PATTERNS)               # connect outside the measurement
        tracemalloc.start()
        try:
            got = source.download("invoices_big.csv", tmp_path)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    finally:
        source.close()
    assert got.size == size and got.sha256 == digest.hexdigest()
    assert got.path.stat().st_size == size
    assert peak < 16 * 1024 * 1024, f"peak {peak / 2**20:.1f} MiB for a 50 MiB file"


class _KillingDigest:
    """sha256 that kills the sshd sessions once `after` bytes went through: a drop
    mid-transfer, at a known point."""

    def __init__(self, sshd: SshdServer, after: int) -> None:
        self.inner, self.sshd, self.after, self.seen = REAL_SHA256(), sshd, after, 0

    def update(self, data: bytes) -> None:
        self.inner.update(data)
        self.seen += len(data)
        if self.seen >= self.after and self.after:
            self.after = 0
            assert self.sshd.kill_sessions() > 0

    def hexdigest(self) -> str:
        return self.inner.hexdigest()


def test_connection_dropped_mid_download(sshd, tmp_path, monkeypatch):
    drop(sshd, "invoices_drop.csv", os.urandom(12 * 1024 * 1024))
    source = key_source(sshd)
    digests: list[_KillingDigest] = []

    def make_digest():
        digests.append(_KillingDigest(sshd, after=5 * 1024 * 1024))
        return digests[-1]
    try:
        source.list_files(PATTERNS)
        monkeypatch.setattr(sftp_module.hashlib, "sha256", make_digest)
        with pytest.raises(SourceError) as caught:
            source.download("invoices_drop.csv", tmp_path / "files")
        monkeypatch.undo()
        assert caught.value.transient is True
        assert "lost" in str(caught.value)
        assert len(digests) == 1 and digests[0].seen >= 5 * 1024 * 1024   # no silent retry
        assert files_under(tmp_path / "files") == []                    # nothing partial
        # the next call reconnects by itself
        again = source.download("invoices_drop.csv", tmp_path / "files")
        assert again.path.read_bytes() == (sshd.outbound / "invoices_drop.csv").read_bytes()
    finally:
        source.close()


class _GrowingDigest:
    """sha256 that appends to the remote file once `after` bytes went through: an export
    still being written while we read it."""

    def __init__(self, path: Path, after: int) -> None:
        self.inner, self.path, self.after, self.seen = REAL_SHA256(), path, after, 0

    def update(self, data: bytes) -> None:
        self.inner.update(data)
        self.seen += len(data)
        if self.seen >= self.after and self.after:
            self.after = 0
            with open(self.path, "ab") as handle:
                handle.write(b"more rows\n")

    def hexdigest(self) -> str:
        return self.inner.hexdigest()


def test_file_changing_during_download_is_refused(sshd, tmp_path, monkeypatch):
    path = drop(sshd, "invoices_grow.csv", os.urandom(9 * 1024 * 1024))
    source = key_source(sshd)
    try:
        monkeypatch.setattr(sftp_module.hashlib, "sha256",
                            lambda: _GrowingDigest(path, after=1024 * 1024))
        with pytest.raises(SourceError) as caught:
            source.download("invoices_grow.csv", tmp_path / "files")
        monkeypatch.undo()
        assert caught.value.transient is True and "changed while downloading" in str(caught.value)
        assert files_under(tmp_path / "files") == []
    finally:
        source.close()


def test_reconnects_after_server_restart(sshd):
    drop(sshd, "invoices_1.csv", b"1")
    source = key_source(sshd)
    try:
        assert len(source.list_files(PATTERNS)) == 1
        logins = sshd.accepted_logins()
        sshd.restart()                             # every session dies with it
        assert len(source.list_files(PATTERNS)) == 1
        assert sshd.accepted_logins() == logins + 1

        sshd.stop()
        with pytest.raises(SourceError) as caught:
            source.list_files(PATTERNS)
        assert caught.value.transient is True
        sshd.start()
        assert len(source.list_files(PATTERNS)) == 1
    finally:
        source.close()


def test_read_timeout_is_transient(sshd, caplog):
    caplog.set_level(logging.INFO, logger="adapters.stampli.sftp")
    source = key_source(sshd, read_timeout=1, connect_timeout=1)
    try:
        source.list_files(PATTERNS)
        # a server that stops answering: the session and (for the one reconnect) the listener
        pids = [sshd.process.pid] + _children(sshd.process.pid)
        for pid in pids:
            os.kill(pid, signal.SIGSTOP)
        try:
            with pytest.raises(SourceError) as caught:
                source.list_files(PATTERNS)
        finally:
            for pid in pids:
                os.kill(pid, signal.SIGCONT)
        assert caught.value.transient is True and "timed out" in str(caught.value)
        assert "dropped (timed out); reconnecting once" in caplog.text
    finally:
        source.close()


def test_connect_timeout_is_transient(sshd, tmp_path):
    silent = socket.socket()                       # accepts TCP, never says SSH-2.0
    silent.bind(("127.0.0.1", 0))
    silent.listen(1)
    port = silent.getsockname()[1]
    known = tmp_path / "known_hosts"
    known.write_text(f"[127.0.0.1]:{port} {sshd.host_public_key}\n")
    try:
        source = SftpSource("127.0.0.1", port, "root", known_hosts=known,
                            private_key=sshd.client_key, outbound_dir="/", connect_timeout=1)
        with pytest.raises(SourceError) as caught:
            source.list_files(PATTERNS)
        assert caught.value.transient is True
    finally:
        silent.close()


# ---------------------------------------------------------------- archive


def test_archive_moves_without_overwriting(sshd, tmp_path):
    drop(sshd, "invoices_1.csv", b"first")
    source = password_source(sshd)
    try:
        source.archive("invoices_1.csv", "archive")
        assert not (sshd.outbound / "invoices_1.csv").exists()
        assert (sshd.outbound / "archive" / "invoices_1.csv").read_bytes() == b"first"
        drop(sshd, "invoices_1.csv", b"second")
        source.archive("invoices_1.csv", str(sshd.outbound / "archive"))   # absolute works too
        assert (sshd.outbound / "archive" / "invoices_1.csv").read_bytes() == b"first"
        assert (sshd.outbound / "archive" / "invoices_1~1.csv").read_bytes() == b"second"
        assert source.list_files(PATTERNS) == []   # the archive folder is not listed
        with pytest.raises(SourceError) as caught:
            source.archive("invoices_1.csv", "archive")
        assert caught.value.transient is False
    finally:
        source.close()


# ---------------------------------------------------------------- secrets


def test_no_secret_in_errors_or_logs(sshd, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    # The CLI's logging set-up quietens paramiko; an earlier in-process CLI test may have run.
    caplog.set_level(logging.DEBUG, logger="paramiko")
    passphrase = "pass-phrase-" + os.urandom(6).hex()
    private, public = keygen(tmp_path / "locked", "ed25519", passphrase=passphrase)
    sshd.authorize(public)
    key_body = private.splitlines()[2]             # a line of the key's base64 body
    secrets = [sshd.password, passphrase, key_body]
    texts: list[str] = []

    def attempt(make):
        try:
            source = make()
            source.list_files(PATTERNS)
            source.download("invoices_s.csv", tmp_path / "files")
            texts.append(repr(source.__dict__.keys()) + repr(source))
            source.close()
        except SourceError as exc:
            texts.append(str(exc) + repr(exc))
    drop(sshd, "invoices_s.csv", b"s")
    attempt(lambda: password_source(sshd))
    attempt(lambda: password_source(sshd, password=sshd.password + "x"))
    attempt(lambda: key_source(sshd, private_key=private, private_key_passphrase=passphrase))
    attempt(lambda: key_source(sshd, private_key=private, private_key_passphrase="wrong"))
    attempt(lambda: key_source(sshd, private_key=private))
    attempt(lambda: password_source(sshd, known_hosts=tmp_path / "known_hosts_missing"))
    assert len(texts) == 6 and any("refused the login" in t for t in texts)
    assert any("passphrase" in t and "wrong" in t for t in texts)
    everything = "\n".join(texts) + caplog.text
    assert "Authentication" in caplog.text       # paramiko's debug log was captured
    for secret in secrets:
        assert secret not in everything


def test_from_settings_builds_the_source(sshd, tmp_path):
    from adapters.settings import StampliSettings
    (tmp_path / "known_hosts").write_text(sshd.known_hosts_line + "\n")
    settings = StampliSettings(host=sshd.host, port=sshd.port, username=sshd.password_user,
                               outbound_dir=str(sshd.outbound), read_timeout="5s")
    drop(sshd, "invoices_f.csv", b"f")
    source = SftpSource.from_settings(settings, {"stampli.password": sshd.password}, tmp_path)
    try:
        assert source.read_timeout == 5 and source.pins.path == tmp_path / "known_hosts"
        assert [f.name for f in source.list_files(PATTERNS)] == ["invoices_f.csv"]
    finally:
        source.close()
    with pytest.raises(SourceError) as caught:
        SftpSource.from_settings(settings, {}, tmp_path)
    assert "ml-connector secrets set stampli.password" in str(caught.value)
    key_settings = StampliSettings(host=sshd.host, port=sshd.port, username="root", auth="key",
                                   outbound_dir=str(sshd.outbound))
    source = SftpSource.from_settings(key_settings, {"stampli.private_key": sshd.client_key},
                                      tmp_path)
    try:
        assert [f.name for f in source.list_files(PATTERNS)] == ["invoices_f.csv"]
    finally:
        source.close()


def test_concurrent_calls_share_one_session(sshd, tmp_path):
    for i in range(4):
        drop(sshd, f"invoices_{i}.csv", os.urandom(300_000))
    source = key_source(sshd)
    results, errors = [], []

    def worker(i):
        try:
            results.append(source.download(f"invoices_{i}.csv", tmp_path / "files"))
        except Exception as exc:   # collected and asserted below
            errors.append(exc)
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    source.close()
    assert errors == [] and len(results) == 4
    assert len(files_under(tmp_path / "files")) == 4
