"""`ml-connector known-hosts fetch` against the real OpenSSH sshd: it shows the key's SHA256
fingerprint, writes it only after confirmation, never silently replaces a different pin; and
`init` ends by listing every secret and the host key step."""
from __future__ import annotations

import subprocess
from pathlib import Path

import paramiko

from adapters.stampli.sshkeys import PinnedHostKeys
from tests.installed_cli import run_cli


def _config(tmp_path: Path, sshd) -> Path:
    config = tmp_path / "ml-connector.toml"
    config.write_text(f'[connector]\ncompany = "10"\n[stampli]\nhost = "{sshd.host}"\n'
                      f'port = {sshd.port}\nusername = "u"\nknown_hosts = "pins/known_hosts"\n')
    return config


def _served_fingerprint(sshd) -> str:
    out = subprocess.run(["ssh-keygen", "-lf", str(sshd.host_key_path) + ".pub"],
                         capture_output=True, text=True, check=True).stdout
    return out.split()[1]


def test_fetch_shows_the_fingerprint_and_writes_only_when_confirmed(tmp_path, sshd):
    config = _config(tmp_path, sshd)
    pins = tmp_path / "pins" / "known_hosts"
    served = _served_fingerprint(sshd)

    refused = run_cli("--config", str(config), "known-hosts", "fetch", cwd=tmp_path, input="n\n")
    assert served in refused.stdout and refused.returncode == 1
    assert "not written" in refused.stderr and not pins.exists()

    accepted = run_cli("--config", str(config), "known-hosts", "fetch", cwd=tmp_path,
                       input="y\n")
    assert accepted.returncode == 0, accepted.stderr
    pinned = PinnedHostKeys(pins).keys_for(f"[{sshd.host}]:{sshd.port}")
    assert [k.fingerprint for k in pinned] == [served]

    again = run_cli("--config", str(config), "known-hosts", "fetch", "--yes", cwd=tmp_path)
    assert "already pinned" in again.stdout and pins.read_text().count("\n") == 1


def test_a_different_pinned_key_is_not_replaced_without_replace(tmp_path, sshd):
    config = _config(tmp_path, sshd)
    pins = tmp_path / "pins" / "known_hosts"
    pins.parent.mkdir()
    other = paramiko.Ed25519Key.from_private_key_file(str(_other_key(tmp_path)))
    stale = f"[{sshd.host}]:{sshd.port} ssh-ed25519 {other.get_base64()}\nelsewhere ssh-ed25519 {other.get_base64()}\n"
    pins.write_text(stale)
    result = run_cli("--config", str(config), "known-hosts", "fetch", "--yes", cwd=tmp_path)
    assert result.returncode == 1 and "DIFFERENT key" in result.stderr
    assert pins.read_text() == stale
    replaced = run_cli("--config", str(config), "known-hosts", "fetch", "--yes", "--replace",
                       cwd=tmp_path)
    assert replaced.returncode == 0, replaced.stderr
    pinned = PinnedHostKeys(pins)
    assert [k.fingerprint for k in pinned.keys_for(f"[{sshd.host}]:{sshd.port}")] == \
        [_served_fingerprint(sshd)]
    assert pinned.keys_for("elsewhere")                      # other hosts' lines kept


def _other_key(tmp_path: Path) -> Path:
    path = tmp_path / "other"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    return path


def test_init_lists_every_secret_and_the_host_key_step(tmp_path):
    result = run_cli("init", "--dir", str(tmp_path / "etc"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "secrets set stampli.password" in result.stdout
    assert "secrets set ifs.client_secret" in result.stdout
    assert "known-hosts fetch" in result.stdout and "SHA256 fingerprint" in result.stdout
