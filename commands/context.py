"""What the commands share: the settings and runtime of this invocation (built once, closed
when the command ends), the help's example marker, and `-o FILE` output."""
from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO

import click

from adapters.settings import Settings, find_config, load_settings
from runtime import Runtime

EXAMPLE = "\n\nExample:\n\n    "


def settings(ctx: click.Context) -> Settings:
    """The settings from --config (else $ML_CONNECTOR_CONFIG, else ./ml-connector.toml)."""
    return load_settings(find_config(ctx.ensure_object(dict).get("config")))


def runtime(ctx: click.Context) -> Runtime:
    obj = ctx.ensure_object(dict)
    if "runtime" not in obj:
        obj["runtime"] = Runtime(settings(ctx))
        ctx.call_on_close(obj["runtime"].close)
    return obj["runtime"]


@contextmanager
def output_file(path: str | None) -> Iterator[TextIO]:
    """`-o FILE` (closed at the end), or stdout; a file that cannot be opened is one clear
    message, before anything is written."""
    if not path:
        yield sys.stdout
        return
    try:
        handle = open(path, "w", encoding="utf-8", newline="")
    except OSError as exc:
        raise click.ClickException(f"cannot write {path}: {exc.strerror}; give a file in a"
                                   " folder that exists and that you can write to") from None
    with handle:
        yield handle


def subgroup(main: click.Group, name: str, help_text: str) -> click.Group:
    """A group of commands under `main` (`secrets`, `audit`, ...), with no options of its own."""
    return main.group(name, help=help_text)(lambda: None)
