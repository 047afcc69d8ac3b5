"""Every command of the CLI is in the README's command table (a new command is documented)."""
from __future__ import annotations

from pathlib import Path

import click

from cli import main

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


def _commands(group: click.Group, prefix: str) -> list[str]:
    out = []
    for name, command in group.commands.items():
        path = f"{prefix} {name}"
        if isinstance(command, click.Group):
            out += _commands(command, path)
        else:
            out.append(path)
    return out


def test_every_command_is_in_the_readme():
    missing = [c for c in _commands(main, "ml-connector") if f"`{c}" not in README]
    assert missing == [], f"document these in README.md's command table: {missing}"
