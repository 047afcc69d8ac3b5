"""Conventions every command keeps: --version and -h everywhere; --json where the output is
meant for scripts."""
from __future__ import annotations

import json

import click
from click.testing import CliRunner

from cli import main
from ledger import __version__
from tests.installed_cli import run_cli


def _commands(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    out = [prefix]
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            out += _commands(command, (*prefix, name))
        else:
            out.append((*prefix, name))
    return out


def test_every_command_has_version_and_short_help():
    runner = CliRunner()
    for path in _commands(main):
        version = runner.invoke(main, [*path, "--version"])
        assert version.exit_code == 0 and version.output == f"ml-connector {__version__}\n", path
        short = runner.invoke(main, [*path, "-h"])
        assert short.exit_code == 0 and "Usage: " in short.output, path


def test_projections_rebuild_and_secrets_list_speak_json(tmp_path):
    config = tmp_path / "ml-connector.toml"
    config.write_text(f'[connector]\ncompany = "10"\nledger = "sqlite:///{tmp_path}/l.db"\n')
    assert run_cli("--config", str(config), "secrets", "set", "ifs.client_secret", cwd=tmp_path,
                   input="x\n").returncode == 0
    rebuilt = run_cli("--config", str(config), "projections", "rebuild", "--json", cwd=tmp_path)
    assert rebuilt.returncode == 0, rebuilt.stderr
    outcome = json.loads(rebuilt.stdout)
    assert outcome["events_applied"] >= 0 and isinstance(outcome["positions"], dict)
    names = run_cli("--config", str(config), "secrets", "list", "--json", cwd=tmp_path)
    assert "ifs.client_secret" in json.loads(names.stdout)
