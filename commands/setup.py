"""Setting a connector up: `init` (the config, master key and audit key, then what is left to
do), `config show`, and `known-hosts fetch` (pinning the SFTP server's host key)."""
from __future__ import annotations

from pathlib import Path

import click

from adapters.init_project import init_project
from adapters.secrets import SecretsError
from adapters.settings import ConfigError, load_settings
from commands import output
from commands.context import EXAMPLE, settings, subgroup


def register(main: click.Group) -> None:
    @main.command(help="Write a commented ml-connector.toml, a master key and the audit key"
                  " that MACs every event (secret audit.key)." + EXAMPLE
                  + "ml-connector init --dir /etc/ml-connector")
    @click.option("--dir", "directory", default=".", type=click.Path(file_okay=False),
                  help="Where to write the config (default: here).")
    @click.option("--force", is_flag=True, help="Overwrite an existing config file.")
    def init(directory: str, force: bool) -> None:
        config, key = init_project(Path(directory), force=force)
        click.echo(f"wrote {config}\nmaster key in {key} (mode 0600; keep a copy somewhere"
                   " safe)\naudit key stored as secret audit.key (keep a backup of the secrets"
                   " store: events cannot be verified without it)")
        click.echo("\n".join(_next_steps(config)))

    config = subgroup(main, "config", "The configuration in force." + EXAMPLE
                      + "ml-connector config show --json")

    @config.command("show", help="Print the effective configuration: every key with its"
                    " default filled in, and each secret it needs as <set> or <missing>"
                    " (values are never shown). Reference: docs/configuration.md." + EXAMPLE
                    + "ml-connector config show")
    @click.option("--json", "as_json", is_flag=True)
    @click.pass_context
    def config_show(ctx: click.Context, as_json: bool) -> None:
        from adapters.config_reference import as_toml, effective
        from adapters.secrets import SecretStore

        loaded = settings(ctx)
        try:
            stored = set(SecretStore(loaded.data_dir).names())
        except SecretsError as exc:
            stored = set()
            click.echo(f"warning: secrets store not readable, so every secret shows <missing>:"
                       f" {exc}", err=True)
        shown = effective(loaded, stored)
        click.echo(output.dumps(shown) if as_json else as_toml(shown), nl=as_json)

    known_hosts = subgroup(main, "known-hosts", "Pin the SFTP server's host key." + EXAMPLE
                           + "ml-connector known-hosts fetch")

    @known_hosts.command("fetch", help="Connect once to the SFTP server (no login), show its"
                         " host key's SHA256 fingerprint to compare with the one Stampli gives"
                         " you, and write it to `stampli.known_hosts` after you confirm."
                         + EXAMPLE + "ml-connector known-hosts fetch --yes")
    @click.option("--yes", is_flag=True, help="Write without asking (scripts: compare the"
                  " printed fingerprint yourself).")
    @click.option("--replace", is_flag=True, help="Replace a DIFFERENT key already pinned for"
                  " this host (only after Stampli confirmed the change).")
    @click.pass_context
    def known_hosts_fetch(ctx: click.Context, yes: bool, replace: bool) -> None:
        _fetch_host_key(settings(ctx), yes, replace)


def _next_steps(config: Path) -> list[str]:
    """What is left once `init` has written the files: every secret, and the host key pin."""
    from adapters.config_reference import needed_secrets

    at = f" --config {config}" if config.resolve() != Path("ml-connector.toml").resolve() else ""
    out = ["", "next:", f"  1. edit {config} (every key: docs/configuration.md)",
           "  2. store the secrets this config needs (hidden prompt, or stdin):"]
    for name, why in needed_secrets(load_settings(config)):
        if name != "audit.key":
            out.append(f"       ml-connector{at} secrets set {name}    # {why}")
    out += ["     (with stampli.auth = \"key\": stampli.private_key --from-file KEY, and"
            " stampli.private_key_passphrase if the key is encrypted)",
            "  3. pin Stampli's SFTP host key: connect once, compare the SHA256 fingerprint"
            " with the one Stampli gives you, confirm:",
            f"       ml-connector{at} known-hosts fetch",
            f"  4. ml-connector{at} check"]
    return out


def _fetch_host_key(settings, yes: bool, replace: bool) -> None:
    from adapters.settings import parse_duration, resolve_path
    from adapters.stampli.known_hosts import offer, pin

    st = settings.stampli
    if st is None:
        raise ConfigError("no [stampli] section in the config: nothing to connect to")
    path = resolve_path(settings, st.known_hosts)
    found = offer(st.host, st.port, path, parse_duration(st.connect_timeout))
    click.echo(f"{found.name} presents this {found.key_type} host key:\n\n"
               f"    {found.fingerprint}\n\n"
               "Compare it with the fingerprint Stampli gives you (by a channel other than"
               " this connection).")
    if found.already:
        click.echo(f"already pinned in {path}; nothing to do")
        return
    if found.replaces:
        click.echo(f"WARNING: {path} pins a DIFFERENT key for {found.name}"
                   f" ({', '.join(found.pinned)}). Either Stampli changed its key, or this"
                   " is not the server you think.", err=True)
        if not replace:
            raise click.ClickException("not replaced; confirm the new key with Stampli, then"
                                       " run again with --replace")
    if not yes and not click.confirm(f"write it to {path}?", default=False):
        raise click.ClickException("not written")
    pin(found)
    click.echo(f"pinned in {path}; next: `ml-connector check`")
