"""`ml-connector secrets ...`: store, list, delete and re-key the encrypted secrets (values
are never shown)."""
from __future__ import annotations

import sys
from pathlib import Path

import click

from adapters.secrets import KNOWN_NAMES
from commands import output
from commands.context import EXAMPLE, runtime, subgroup


def register(main: click.Group) -> None:
    secrets = subgroup(main, "secrets", "Store and list secrets (encrypted; values are never"
                       " shown)." + EXAMPLE + "ml-connector secrets set ifs.client_secret")

    @secrets.command("set", help="Store a secret: from a hidden prompt, from stdin when it is"
                     " not a terminal, or --from-file." + EXAMPLE
                     + "printf '%s' \"$SECRET\" | ml-connector secrets set ifs.client_secret")
    @click.argument("name")
    @click.option("--from-file", type=click.Path(exists=True, dir_okay=False),
                  help="Read the value from this file (e.g. a private key).")
    @click.pass_context
    def secrets_set(ctx: click.Context, name: str, from_file: str | None) -> None:
        if name not in KNOWN_NAMES:
            raise click.UsageError(f"unknown secret {name!r}; known: {', '.join(KNOWN_NAMES)}")
        if from_file:
            value = Path(from_file).read_text()
        elif sys.stdin.isatty():
            value = click.prompt(f"value for {name}", hide_input=True, confirmation_prompt=True)
        else:
            value = sys.stdin.read()
            value = value if name == "stampli.private_key" else value.rstrip("\r\n")
        if not value:
            raise click.UsageError("empty value; nothing stored")
        runtime(ctx).secrets.set(name, value)
        click.echo(f"stored {name}")

    @secrets.command("list", help="List the names of stored secrets." + EXAMPLE
                     + "ml-connector secrets list")
    @click.option("--json", "as_json", is_flag=True, help="A JSON array of names.")
    @click.pass_context
    def secrets_list(ctx: click.Context, as_json: bool) -> None:
        names = runtime(ctx).secrets.names()
        if as_json:
            click.echo(output.dumps(names))
            return
        for name in names:
            click.echo(name)

    @secrets.command("delete", help="Remove a stored secret." + EXAMPLE
                     + "ml-connector secrets delete stampli.password")
    @click.argument("name")
    @click.pass_context
    def secrets_delete(ctx: click.Context, name: str) -> None:
        runtime(ctx).secrets.delete(name)
        click.echo(f"deleted {name}")

    @secrets.command("rotate-key", help="Re-encrypt every secret under a new master key. The"
                     " new store and key are written whole first; the old ones are kept as"
                     " secrets.enc.old and master.key.old (delete them once the new key is"
                     " backed up)." + EXAMPLE + "ml-connector secrets rotate-key")
    @click.pass_context
    def secrets_rotate_key(ctx: click.Context) -> None:
        store = runtime(ctx).secrets
        key = store.rotate_key()
        click.echo(f"new master key in {key}; every secret re-encrypted under it.\n"
                   f"the old store and key are kept as {store.path.name}.old and"
                   f" {key.name}.old: back up the new key, then delete them")
