"""The systemd unit in deploy/ is one systemd accepts, and keeps what the README promises:
a dedicated user, Restart=on-failure, secrets by LoadCredential=, hardening. And the version
lives in one place, with a CHANGELOG entry for it."""
from __future__ import annotations

import shutil
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

from ledger import __version__

ROOT = Path(__file__).resolve().parent.parent
UNIT = ROOT / "deploy" / "ml-connector.service"


def _settings() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        if "=" in line and not line.lstrip().startswith(("#", "[")):
            key, value = line.split("=", 1)
            found.setdefault(key.strip(), []).append(value.strip())
    return found


def test_the_unit_runs_the_daemon_as_a_dedicated_user_with_credentials_and_hardening():
    unit = _settings()
    assert unit["User"] == ["ml-connector"] and unit["Restart"] == ["on-failure"]
    assert unit["ExecStart"][0].endswith("run")
    names = {c.split(":")[0] for c in unit["LoadCredential"]}
    assert {"ifs.client_secret", "audit.key"} <= names
    for option in ("NoNewPrivileges", "ProtectSystem", "ProtectHome", "PrivateTmp",
                   "CapabilityBoundingSet", "RestrictAddressFamilies", "SystemCallFilter"):
        assert option in unit, option


def test_systemd_accepts_the_unit(tmp_path):
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed here: the unit is checked where systemd is")
    script = Path(sys.executable).with_name("ml-connector")
    unit = tmp_path / "ml-connector.service"
    unit.write_text(UNIT.read_text().replace("/usr/local/bin/ml-connector", str(script)))
    result = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True,
                            timeout=60)
    complaints = [line for line in (result.stdout + result.stderr).splitlines()
                  if "ml-connector.service" in line]
    assert result.returncode == 0 and complaints == [], result.stdout + result.stderr


def test_the_version_is_held_in_one_place_and_has_a_changelog_entry():
    assert version("ml-connector") == __version__
    assert 'version = "' not in (ROOT / "pyproject.toml").read_text().split("[project]")[1] \
        .split("[")[0]
    changelog = (ROOT / "CHANGELOG.md").read_text()
    assert f"## {__version__}" in changelog
