"""`check` against the real sshd and the emulator: a table of what fits, exit 1 naming any
failure, with a message a person can act on."""
from __future__ import annotations

import json

from adapters.secrets import SecretStore


def test_everything_fits(world):
    result = world.cli("check", "--json")
    items = json.loads(result.stdout)
    assert all(i["ok"] for i in items), items
    names = [i["item"] for i in items]
    assert any(n.startswith("SFTP login") for n in names)
    assert any(n.startswith("$metadata invoice:") for n in names)


def test_unknown_host_key_fails_with_the_fingerprint_seen(world):
    world.config.write_text(world.config.read_text().replace(
        f'known_hosts = "{world.sshd.known_hosts}"', 'known_hosts = "other_known_hosts"'))
    (world.dir / "other_known_hosts").write_text(
        f"[127.0.0.1]:{world.sshd.port} ssh-ed25519 "
        "AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\n")
    result = world.cli("check", check=False)
    assert result.returncode == 1
    assert "FAIL" in result.stdout and "SHA256:" in result.stdout
    assert "SFTP login" in result.stderr


def test_endpoint_map_that_does_not_fit_metadata(make_world):
    world = make_world(extra_ifs='[ifs.endpoints]\naccount = { projection = "AccountsHandling",'
                       ' entity_set = "AccountsSet", keys = ["Company", "Account"] }')
    result = world.cli("check", "--json", check=False)
    assert result.returncode == 1
    failed = [i for i in json.loads(result.stdout) if not i["ok"]]
    assert failed and all("AccountsSet" in i["item"] or "AccountsSet" in i["detail"]
                          for i in failed)


def test_wrong_client_secret(world):
    SecretStore(world.dir / "data").set("ifs.client_secret", "not-the-secret")
    result = world.cli("check", check=False)
    assert result.returncode == 1
    assert "invalid_client" in result.stdout and "secrets set ifs.client_secret" in result.stdout
    assert "not-the-secret" not in result.stdout + result.stderr
