"""Secrets administration: delete, rotate the master key (the old store kept until the new one
is written), and secrets from $CREDENTIALS_DIRECTORY (systemd LoadCredential=)."""
from __future__ import annotations

import os
from unittest import mock

import pytest

from adapters.secrets import SecretsError, SecretStore, create_master_key
from tests.installed_cli import cli_env, run_cli


@pytest.fixture
def store(tmp_path):
    create_master_key(tmp_path / "data")
    store = SecretStore(tmp_path / "data")
    store.set("ifs.client_secret", "client-s3cret")
    store.set("stampli.password", "sftp-pw")
    return store


def test_delete_removes_one_secret_and_names_what_is_left(store):
    store.delete("stampli.password")
    assert store.names() == ["ifs.client_secret"]
    with pytest.raises(SecretsError, match="no stored secret 'stampli.password'"):
        store.delete("stampli.password")


def test_rotate_key_re_encrypts_and_keeps_the_old_until_done(store):
    old_key = store.key_path.read_bytes()
    old_token = store.path.read_bytes()
    store.rotate_key()
    assert store.key_path.read_bytes() != old_key
    assert store.get_all() == {"ifs.client_secret": "client-s3cret", "stampli.password": "sftp-pw"}
    assert (store.data_dir / "master.key.old").read_bytes() == old_key
    assert (store.data_dir / "secrets.enc.old").read_bytes() == old_token
    assert oct(store.key_path.stat().st_mode & 0o777) == "0o600"


def test_a_rotation_that_fails_midway_leaves_the_old_store_in_use(store, monkeypatch):
    def broken(*_args, **_kwargs):
        raise OSError(28, "No space left on device")

    with mock.patch("adapters.secrets.os.fsync", broken):
        with pytest.raises(OSError):
            store.rotate_key()
    assert store.get("ifs.client_secret") == "client-s3cret"         # the old key still opens it
    assert not (store.data_dir / "master.key.old").exists()


def test_credentials_directory_supplies_secrets_without_a_master_key(tmp_path, monkeypatch):
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "ifs.client_secret").write_text("from-systemd\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    store = SecretStore(tmp_path / "no-store")
    assert store.get("ifs.client_secret") == "from-systemd"
    assert store.names() == ["ifs.client_secret"]


def test_the_cli_deletes_and_rotates(tmp_path):
    config = tmp_path / "ml-connector.toml"
    config.write_text(f'[connector]\ncompany = "10"\nledger = "sqlite:///{tmp_path}/l.db"\n')
    assert run_cli("--config", str(config), "secrets", "set", "ifs.client_secret", cwd=tmp_path,
                   input="abc\n").returncode == 0
    rotated = run_cli("--config", str(config), "secrets", "rotate-key", cwd=tmp_path)
    assert rotated.returncode == 0 and "master.key.old" in rotated.stdout
    deleted = run_cli("--config", str(config), "secrets", "delete", "ifs.client_secret",
                      cwd=tmp_path)
    assert deleted.returncode == 0, deleted.stderr
    listed = run_cli("--config", str(config), "secrets", "list", cwd=tmp_path)
    assert "ifs.client_secret" not in listed.stdout
    again = run_cli("--config", str(config), "secrets", "delete", "ifs.client_secret",
                    cwd=tmp_path)
    assert again.returncode == 2 and "no stored secret" in again.stderr
