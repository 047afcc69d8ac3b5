"""ml-connector's command line: a thin layer over the library. Library errors become clear
messages with exit codes: 0 done, 1 the work could not be done, 2 usage or configuration."""
from __future__ import annotations

import logging
import sys
from pathlib import Path

import click

from adapters import actions_cli, console, users_cli
from adapters.secrets import KNOWN_NAMES, SecretsError
from adapters.settings import ConfigError, find_config, load_settings
from ledger.errors import LedgerError
from ledger.ports import FAILURE_KINDS, SourceError
from ledger.status import STATES
from projections.export import csv_header, iter_events, normalize_time, to_csv, to_jsonl
from projections.redact import redacted
from runtime import Runtime, init_project
from runtime import demo as run_demo

EXAMPLE = "\n\nExample:\n\n    "


class ConfigFailure(click.ClickException):
    exit_code = 2


class ConnectorCommand(click.Group):
    """The entry point's last word on failures: whatever goes wrong is one line on stderr and
    an exit code (2 configuration or usage, 1 the work could not be done), never a traceback
    (`-vv` logs it, for a bug report)."""

    def main(self, args=None, *more, **extra):
        argv = sys.argv[1:] if args is None else list(args)
        for number, arg in enumerate(argv, 1):
            if isinstance(arg, str) and not _is_utf8(arg):
                shown = arg.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
                click.echo(f"Error: argument {number} ({shown}) is not valid UTF-8; ml-connector"
                           " takes UTF-8 text (rename such a file, or pass a UTF-8 link to it)",
                           err=True)
                sys.exit(2)
        return super().main(argv, *more, **extra)

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except (ConfigError, SecretsError) as exc:
            raise ConfigFailure(str(exc)) from None
        except (LedgerError, SourceError) as exc:
            raise click.ClickException(str(exc)) from None
        except OSError as exc:
            where = f"{exc.filename}: " if exc.filename else ""
            raise click.ClickException(f"{where}{exc.strerror or exc}; check that path and"
                                       " its permissions") from None
        except Exception as exc:
            logging.getLogger("ml_connector.cli").debug("unexpected error", exc_info=True)
            raise click.ClickException(
                f"unexpected error ({type(exc).__name__}: {exc}); this is a bug: run again"
                " with -vv to see where, and report it") from None


def _print_version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value and not ctx.resilient_parsing:
        from ledger import __version__

        click.echo(f"ml-connector {__version__}")
        ctx.exit()


class VersionedCommand(click.Command):
    """Every command takes --version (and -h, from the group's context settings)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.params.append(click.Option(["--version"], is_flag=True, expose_value=False,
                                        is_eager=True, callback=_print_version,
                                        help="Print the version and exit."))


ConnectorCommand.command_class = VersionedCommand


class ConnectorGroup(ConnectorCommand):
    """Sub-groups (secrets, audit, ...): the same --version and error handling."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.params.append(click.Option(["--version"], is_flag=True, expose_value=False,
                                        is_eager=True, callback=_print_version,
                                        help="Print the version and exit."))


ConnectorCommand.group_class = ConnectorGroup


def _is_utf8(arg: str) -> bool:
    try:
        arg.encode("utf-8")
    except UnicodeEncodeError:       # undecodable bytes arrive as lone surrogates
        return False
    return True


def runtime(ctx: click.Context) -> Runtime:
    obj = ctx.ensure_object(dict)
    if "runtime" not in obj:
        path = find_config(obj.get("config"))
        try:
            obj["runtime"] = Runtime(load_settings(path))
        except ConfigError as exc:
            raise ConfigFailure(str(exc)) from None
        ctx.call_on_close(obj["runtime"].close)
    return obj["runtime"]


@click.group(cls=ConnectorGroup, context_settings={"help_option_names": ["-h", "--help"]},
             help="Moves approved Stampli invoices into IFS Cloud, every step on record."
             + EXAMPLE + "ml-connector --config ml-connector.toml status")
@click.option("--config", "config", metavar="PATH",
              help="Config file (default $ML_CONNECTOR_CONFIG, else ./ml-connector.toml).")
@click.option("--log-format", type=click.Choice(["text", "json"]), default="text",
              help="Logs on stderr: text, or JSON lines for log collectors.")
@click.option("-v", "--verbose", count=True, help="More log lines: -v info, -vv debug (default:"
              " warnings on a terminal, info otherwise).")
@click.option("-q", "--quiet", is_flag=True, help="Errors only.")
@click.pass_context
def main(ctx: click.Context, config: str | None, log_format: str, verbose: int,
         quiet: bool) -> None:
    ctx.ensure_object(dict).update(config=config, log_format=log_format, quiet=quiet)
    console.setup_logging(log_format, verbose, quiet)


@main.command(help="Write a commented ml-connector.toml, a master key and the audit key that"
              " MACs every event (secret audit.key)." + EXAMPLE
              + "ml-connector init --dir /etc/ml-connector")
@click.option("--dir", "directory", default=".", type=click.Path(file_okay=False),
              help="Where to write the config (default: here).")
@click.option("--force", is_flag=True, help="Overwrite an existing config file.")
def init(directory: str, force: bool) -> None:
    try:
        config, key = init_project(Path(directory), force=force)
    except FileExistsError as exc:
        raise ConfigFailure(f"{exc} already exists; use --force to overwrite it") from None
    click.echo(f"wrote {config}\nmaster key in {key} (mode 0600; keep a copy somewhere safe)\n"
               "audit key stored as secret audit.key (keep a backup of the secrets store:"
               " events cannot be verified without it)")
    click.echo("\n".join(_next_steps(config)))


def _next_steps(config: Path) -> list[str]:
    """What is left once `init` has written the files: every secret, and the host key pin."""
    from adapters.config_reference import needed_secrets

    at = f" --config {config}" if config.resolve() != Path("ml-connector.toml").resolve() else ""
    out = ["", "next:", f"  1. edit {config} (every key: docs/configuration.md)",
           "  2. store the secrets this config needs (hidden prompt, or stdin):"]
    settings = load_settings(config)
    for name, why in needed_secrets(settings):
        if name != "audit.key":
            out.append(f"       ml-connector{at} secrets set {name}    # {why}")
    out += ["     (with stampli.auth = \"key\": stampli.private_key --from-file KEY, and"
            " stampli.private_key_passphrase if the key is encrypted)",
            "  3. pin Stampli's SFTP host key: connect once, compare the SHA256 fingerprint"
            " with the one Stampli gives you, confirm:",
            f"       ml-connector{at} known-hosts fetch",
            f"  4. ml-connector{at} check"]
    return out


@main.group(help="Store and list secrets (encrypted; values are never shown)." + EXAMPLE
            + "ml-connector secrets set ifs.client_secret")
def secrets() -> None:
    pass


@secrets.command("set", help="Store a secret: from a hidden prompt, from stdin when it is not"
                 " a terminal, or --from-file." + EXAMPLE
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
        click.echo(console.dumps(names))
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


@secrets.command("rotate-key", help="Re-encrypt every secret under a new master key. The new"
                 " store and key are written whole first; the old ones are kept as"
                 " secrets.enc.old and master.key.old (delete them once the new key is backed"
                 " up)." + EXAMPLE + "ml-connector secrets rotate-key")
@click.pass_context
def secrets_rotate_key(ctx: click.Context) -> None:
    store = runtime(ctx).secrets
    key = store.rotate_key()
    click.echo(f"new master key in {key}; every secret re-encrypted under it.\n"
               f"the old store and key are kept as {store.path.name}.old and {key.name}.old:"
               " back up the new key, then delete them")


def _report(report, rt: Runtime) -> dict:
    return console.cycle_summary(report, rt.state_counts())


@main.command(help="One full cycle: poll Stampli, record new files, and move every ready"
              " invoice on until nothing is ready. Failed invoices are reported, not fatal."
              + EXAMPLE + "ml-connector sync --dry-run")
@click.option("--json", "as_json", is_flag=True)
@click.option("--dry-run", is_flag=True, help="Do everything up to the first write to IFS on a"
              " scratch copy of the ledger and print what would be posted and created; IFS,"
              " the ledger and the SFTP folder are left as they are.")
@click.pass_context
def sync(ctx: click.Context, as_json: bool, dry_run: bool) -> None:
    if dry_run:
        _dry_run(ctx, as_json)
        return
    rt = runtime(ctx)
    try:
        # Progress on stderr, a line per stage, so a slow IFS is never silence.
        data = _report(rt.sync_blocking(progress=_progress(ctx)), rt)
    except (LedgerError, SourceError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(console.dumps(data)) if as_json else console.print_cycle(data)
    if data["errors"]:
        ctx.exit(1)


def _progress(ctx: click.Context):
    """sync's progress lines: plain on stderr; as JSON log lines with --log-format json (every
    stderr line parses); none with -q."""
    obj = ctx.ensure_object(dict)
    if obj.get("quiet"):
        return None
    if obj.get("log_format") == "json":
        log = logging.getLogger("ml_connector.progress")
        return lambda line: log.info(line, extra={"event": "sync_progress"})
    return lambda line: click.echo(line, err=True)


def _dry_run(ctx: click.Context, as_json: bool) -> None:
    from dry_run import describe
    from dry_run import dry_run as plan_sync

    path = find_config(ctx.ensure_object(dict).get("config"))
    plan = plan_sync(load_settings(path))
    click.echo(console.dumps(plan) if as_json else "\n".join(describe(plan)))
    if plan["errors"]:
        ctx.exit(1)


@main.command(help="Record local export files exactly as if they had come from Stampli's SFTP"
              " folder (same identity and dedupe, a kept copy, sha256), for a migration or a"
              " file received by email. The files are left where they are; the next `sync`"
              " posts their invoices." + EXAMPLE
              + "ml-connector ingest ~/mail/invoices_C1042_20261106152500.csv")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def ingest(ctx: click.Context, files: tuple[str, ...], as_json: bool) -> None:
    from backfill import ingest_files

    result = ingest_files(runtime(ctx), [Path(f) for f in files])
    if as_json:
        click.echo(console.dumps(result))
    else:
        for taken in result["taken"]:
            facts = ", ".join(f"{k} {v}" for k, v in taken.items()
                              if k not in ("file", "failed") and v)
            click.echo(f"recorded {taken['file']}" + (f": {facts}" if facts else ""))
            for failed in taken.get("failed", []):
                click.echo(f"  {failed['invoice']}: {failed['message']}")
        for skipped in result["skipped"]:
            click.echo(f"skipped {skipped['name']}: {skipped['reason']}")
        for error in result["errors"]:
            click.echo(f"error: {error}", err=True)
    if result["errors"]:
        ctx.exit(1)


@main.group(help="The configuration in force." + EXAMPLE + "ml-connector config show --json")
def config() -> None:
    pass


@config.command("show", help="Print the effective configuration: every key with its default"
                " filled in, and each secret it needs as <set> or <missing> (values are never"
                " shown). Reference: docs/configuration.md." + EXAMPLE
                + "ml-connector config show")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def config_show(ctx: click.Context, as_json: bool) -> None:
    from adapters.config_reference import as_toml, effective

    from adapters.secrets import SecretStore

    settings = load_settings(find_config(ctx.ensure_object(dict).get("config")))
    try:
        stored = set(SecretStore(settings.data_dir).names())
    except SecretsError as exc:
        stored = set()
        click.echo(f"warning: secrets store not readable, so every secret shows <missing>:"
                   f" {exc}", err=True)
    shown = effective(settings, stored)
    click.echo(console.dumps(shown) if as_json else as_toml(shown), nl=as_json)


@main.group("known-hosts", help="Pin the SFTP server's host key." + EXAMPLE
            + "ml-connector known-hosts fetch")
def known_hosts() -> None:
    pass


@known_hosts.command("fetch", help="Connect once to the SFTP server (no login), show its host"
                     " key's SHA256 fingerprint to compare with the one Stampli gives you, and"
                     " write it to `stampli.known_hosts` after you confirm." + EXAMPLE
                     + "ml-connector known-hosts fetch --yes")
@click.option("--yes", is_flag=True, help="Write without asking (scripts: compare the printed"
              " fingerprint yourself).")
@click.option("--replace", is_flag=True, help="Replace a DIFFERENT key already pinned for this"
              " host (only after Stampli confirmed the change).")
@click.pass_context
def known_hosts_fetch(ctx: click.Context, yes: bool, replace: bool) -> None:
    from adapters.settings import parse_duration, resolve_path
    from adapters.stampli.known_hosts import offer, pin

    settings = load_settings(find_config(ctx.ensure_object(dict).get("config")))
    st = settings.stampli
    if st is None:
        raise ConfigFailure("no [stampli] section in the config: nothing to connect to")
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


@main.command(help="A consistent copy of the SQLite ledger (events and read models), taken"
              " with SQLite's online backup API while the daemon runs; `audit verify` passes on"
              " it. For PostgreSQL it says to use pg_dump." + EXAMPLE
              + "ml-connector backup /backup/ledger-$(date +%F).db")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def backup(ctx: click.Context, file: str, as_json: bool) -> None:
    from adapters.settings import ledger_url
    from ledger.backup import backup_sqlite

    settings = load_settings(find_config(ctx.ensure_object(dict).get("config")))
    size = _ledger_call(lambda: backup_sqlite(ledger_url(settings), Path(file)))
    if as_json:
        click.echo(console.dumps({"file": file, "bytes": size}))
    else:
        click.echo(f"wrote {file} ({size} bytes, mode 0600). To check it: point a config's"
                   " `connector.ledger` at it and run `ml-connector audit verify`")


@main.command(help="Ping your real systems: SFTP login, host key and listing; IFS token, one"
              " read per entity set, and the endpoint map against $metadata. Exit 1 if"
              " anything fails." + EXAMPLE + "ml-connector check --json")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def check(ctx: click.Context, as_json: bool) -> None:
    items = runtime(ctx).check()
    if as_json:
        click.echo(console.dumps(items))
    else:
        click.echo(console.table(items, (("", lambda i: "ok" if i["ok"] else "FAIL"),
                                         ("CHECK", lambda i: i["item"]),
                                         ("DETAIL", lambda i: i["detail"]))))
    failed = [i for i in items if not i["ok"]]
    if failed:
        click.echo(f"{len(failed)} check(s) failed: "
                   + "; ".join(i["item"] for i in failed), err=True)
        ctx.exit(1)


@main.command(help="The daemon: a cycle on every tick of `connector.schedule` (interval or"
              " cron line). SIGTERM/SIGINT finish the request in flight, record it, exit 0."
              " --serve also serves the exception workspace ([web])."
              + EXAMPLE + "ml-connector --log-format json run --serve")
@click.option("--serve", "with_web", is_flag=True,
              help="Also serve the web workspace on [web] host:port (default 127.0.0.1:8650).")
@click.pass_context
def run(ctx: click.Context, with_web: bool) -> None:
    import asyncio
    import logging

    rt = runtime(ctx)
    log = logging.getLogger("ml_connector.run")

    def on_cycle(report) -> None:
        pass                    # the cycle logs its own cycle_done line (runtime.py)

    def on_error(exc: Exception) -> None:
        log.error("cycle failed: %s", exc,
                  extra={"event": "cycle_failed", "error_type": type(exc).__name__})

    try:
        asyncio.run(rt.run_daemon(on_cycle, on_error, serve=with_web))
    except (LedgerError, SourceError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    log.info("stopped", extra={"event": "stopped"})


@main.command(help="Serve the exception workspace: a web page where the AP team sees, fixes"
              " and closes exceptions (login required; /healthz and /metrics open). Listens on"
              " [web] host:port, 127.0.0.1:8650 by default; put TLS in front (README)."
              + EXAMPLE + "ml-connector serve")
@click.pass_context
def serve(ctx: click.Context) -> None:
    import asyncio

    rt = runtime(ctx)
    web_settings = rt.settings.web
    rt.projector.catch_up()

    def ready() -> None:
        click.echo(f"workspace on http://{web_settings.host}:{web_settings.port}/"
                   " (Ctrl-C stops it)", err=True)

    asyncio.run(rt.serve(ready))


@main.command(help="Start an emulated Stampli SFTP server and IFS Cloud on loopback, seeded"
              " with sample exports, and write a config and secrets pointing at them. Each"
              " start is a fresh world. --demo runs one sync, prints the status and stops."
              + EXAMPLE + "ml-connector sandbox --dir /tmp/mlc-sandbox")
@click.option("--dir", "directory", default="sandbox-run", type=click.Path(file_okay=False),
              help="Where the sandbox keeps its config, ledger and SFTP folder.")
@click.option("--demo", is_flag=True, help="Run one sync, print the status table, and stop.")
def sandbox(directory: str, demo: bool) -> None:
    import time

    from sandbox.launch import start_sandbox

    box = start_sandbox(Path(directory))
    config = box.config
    try:
        click.echo(f"IFS Cloud emulator:  {box.ifs.base_url}  (inspect: {box.ifs.base_url}"
                   "/_emulator/state)")
        click.echo(f"Stampli SFTP:        sftp://{box.sftp.host}:{box.sftp.port}/outbound"
                   f"  (files in {box.outbound})")
        click.echo(f"config:              {config}\n")
        if not demo:
            click.echo("next, in another terminal:\n"
                       f"  ml-connector --config {config} check\n"
                       f"  ml-connector --config {config} sync\n"
                       f"  ml-connector --config {config} status\n"
                       "Ctrl-C stops the sandbox.")
            try:
                while True:
                    time.sleep(3600)
            except KeyboardInterrupt:
                return
        run_demo(box, click.echo)
    finally:
        box.stop()


@main.command(help="The current status of every invoice." + EXAMPLE
              + "ml-connector status --state failed --json")
@click.option("--json", "as_json", is_flag=True, help="A JSON array, for scripts.")
@click.option("--state", type=click.Choice(STATES), help="Only this state.")
@click.pass_context
def status(ctx: click.Context, as_json: bool, state: str | None) -> None:
    rows = runtime(ctx).status_rows(state)
    if as_json:
        click.echo(console.dumps([_public(r) for r in rows]))
    elif not rows:
        click.echo("no invoices" + (f" in state {state}" if state else ""))
    else:
        click.echo(console.table(rows, console.STATUS_COLUMNS))


def _public(row: dict) -> dict:
    return {k: v for k, v in row.items() if k not in ("stage", "content_hash")}


@main.command(help="Every event of one invoice, oldest first. REF is a ledger id,"
              " VENDOR_ID/INVOICE_NUMBER or COMPANY/VENDOR_ID/TYPE/INVOICE_NUMBER." + EXAMPLE
              + "ml-connector history V00231/INV-2026-0117")
@click.argument("ref")
@click.option("--json", "as_json", is_flag=True, help="A JSON array of events.")
@click.pass_context
def history(ctx: click.Context, ref: str, as_json: bool) -> None:
    rt = runtime(ctx)
    events = [dict(e, data=redacted(e["data"]))
              for e in _ledger_call(lambda: rt.ledger.history(rt.resolve(ref)))]
    if as_json:
        click.echo(console.dumps(events))
        return
    for event in events:
        click.echo(f"{event['version']:>3}  {event['recorded_at']}  {event['type']}")
        for key, value in event["data"].items():
            if key == "connector_version":
                continue
            click.echo(f"       {key}: {console.brief(value)}")


@main.command(help="Re-drive invoices: REF from an event number (default: before its last"
              " failure), or every parked invoice with --failed (`data` failures only with"
              " --kind data: they fail again until Stampli sends new content). Records who"
              " (--by, else your OS user) and why (--reason). Appends; never rewrites."
              + EXAMPLE + "ml-connector replay --failed --kind reference --reason 'account 6540"
              " created in IFS'")
@click.argument("ref", required=False)
@click.option("--from", "from_version", type=int,
              help="Event number to go back to: from its latest content on, never past the"
              " approval of content Stampli has not approved (a refusal lists the allowed"
              " ones).")
@click.option("--failed", is_flag=True, help="Every failed (parked) invoice.")
@click.option("--kind", type=click.Choice(FAILURE_KINDS), help="With --failed: only this kind.")
@actions_cli.who_options
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def replay(ctx: click.Context, ref: str | None, from_version: int | None, failed: bool,
           kind: str | None, reason: str | None, operator: str | None, as_json: bool) -> None:
    if bool(ref) == failed:
        raise click.UsageError("give either REF or --failed")
    operator, reason = actions_cli.who_and_why(operator, reason)
    rt = runtime(ctx)
    if failed:
        result = actions_cli.act(lambda: rt.replay_failed(kind, reason, operator))
    else:
        one = actions_cli.act(lambda: rt.replay_one(ref, from_version, reason, operator))
        result = {"replayed": [one], "left": {}, "refused": []}
    done = result["replayed"]
    if as_json:
        click.echo(console.dumps(done))
    else:
        for item in done:
            click.echo(f"{item['ref']}: back to {item['restored_state']} (after event"
                       f" {item['from_version']})")
        if not done:
            click.echo("nothing to replay")
    say = (lambda text: click.echo(text, err=True)) if as_json else click.echo
    for item in result["refused"]:
        say(f"not replayed {console.printable(item['ref'])}: {console.printable(item['reason'])}")
    if result["left"].get("data"):
        say(f"left {result['left']['data']} invoice(s) failed on `data`: they fail again at"
            " once unless Stampli sends new content (which moves them on by itself); correct"
            " them in Stampli, or `ml-connector replay --failed --kind data --reason \"...\"`"
            " once the cause is fixed")


@main.group(help="Rebuild the read models from the ledger." + EXAMPLE
            + "ml-connector projections rebuild")
def projections() -> None:
    pass


@projections.command("rebuild", help="Drop and rebuild the projections (or re-apply from a"
                     " position), with a progress bar on a terminal." + EXAMPLE
                     + "ml-connector projections rebuild --from 1200")
@click.option("--from", "from_position", type=int, help="Notification position to start at.")
@click.option("--include-audit-chain", is_flag=True,
              help="Also re-derive the audit chain from the events as they are now (only when"
              " its tables were lost; run `audit verify --digest` against a kept digest first)."
              " Refused while `audit verify` fails, unless --force. Recorded in the ledger.")
@click.option("--force", is_flag=True, help="With --include-audit-chain: rebuild even though"
              " `audit verify` fails (needs --reason; recorded with who and why).")
@click.option("--reason", default="", metavar="TEXT", help="Why (recorded with the rebuild).")
@click.option("--json", "as_json", is_flag=True, help="The outcome as a JSON object.")
@click.pass_context
def projections_rebuild(ctx: click.Context, from_position: int | None,
                        include_audit_chain: bool, force: bool, reason: str,
                        as_json: bool) -> None:
    if force and not (include_audit_chain and reason.strip()):
        raise click.UsageError("--force goes with --include-audit-chain and a --reason TEXT")
    rt = runtime(ctx)
    with console.progress("rebuilding") as progress:
        count, failure = _ledger_call(lambda: rt.rebuild_projections(
            from_position, progress, include_audit_chain=include_audit_chain, force=force,
            reason=reason.strip()))
    if as_json:
        click.echo(console.dumps({"from_position": from_position, "events_applied": count,
                                  "positions": rt.projector.positions(),
                                  "audit_chain_rebuilt": include_audit_chain,
                                  "verify_failure_overridden": failure or None}))
        return
    if failure:
        click.echo(f"audit chain rebuilt although `audit verify` failed ({failure});"
                   " recorded in the ledger with who and why", err=True)
    click.echo(f"rebuilt from {'the start' if from_position is None else from_position}:"
               f" {count} events applied; positions {rt.projector.positions()}")


actions_cli.register(main, lambda ctx: runtime(ctx))
users_cli.register(main, lambda ctx: runtime(ctx))


def _ledger_call(fn):
    try:
        return fn()
    except LedgerError as exc:
        raise click.ClickException(str(exc)) from None


@main.group(help="The ledger for auditors: export it as data." + EXAMPLE
            + "ml-connector audit export --since 2026-11-01 -o november.jsonl")
def audit() -> None:
    pass


@audit.command("digest", help="Print the ledger's current digest (position, hash, time) as"
               " JSON, to keep outside the system and verify against later." + EXAMPLE
               + "ml-connector audit digest > digest-2026-11-24.json")
@click.pass_context
def audit_digest(ctx: click.Context) -> None:
    from projections.audit_digest import current_digest

    rt = runtime(ctx)
    store = rt.projector.store
    if rt.evidence.chain_problem:
        raise click.ClickException(f"no digest: {rt.evidence.chain_problem}")
    click.echo(console.dumps(current_digest(rt.ledger, store)))


@audit.command("verify", help="Recompute the hash chain from the stored events, check every"
               " event's MAC (audit key in the secrets store), and report the first event where"
               " it breaks, or that it holds (up to the digest, if given). Exit 1 on any"
               " mismatch; until a later verify holds, other commands warn." + EXAMPLE
               + "ml-connector audit verify --digest digest-2026-11-24.json")
@click.option("--digest", "digest_file", type=click.File("r"), help="A digest kept earlier.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def audit_verify(ctx: click.Context, digest_file, as_json: bool) -> None:
    import json

    from projections.audit_guard import save_verdict

    rt = runtime(ctx)
    rt.evidence.warn_last_verify = False          # this run gives the new verdict
    try:
        digest = json.load(digest_file) if digest_file else None
        with console.progress("verifying") as progress:
            result = _ledger_call(lambda: rt.evidence.verify(rt.ledger, rt.projector, digest,
                                                             progress))
    except ValueError as exc:
        raise click.UsageError(f"--digest: {exc}") from None
    save_verdict(rt.projector.store, result)
    if as_json:
        click.echo(console.dumps(result.to_dict()))
    elif result.ok:
        against = f" and matches the digest at position {digest['position']}" if digest else ""
        click.echo(f"ledger holds: {result.checked} events chained up to position"
                   f" {result.last_position}{against}, {result.macs_checked} MACs valid"
                   f" (hash {result.hash})")
    else:
        click.echo(f"ledger does NOT hold: first break at position {result.first_break}:"
                   f" {result.reason}")
        for problem in result.problems[1:10]:
            click.echo(f"  also at {problem.position}: {problem.message}")
    if not result.ok:
        ctx.exit(1)


@audit.command("rotate-key", help="Make a new audit key for new events; old events keep"
               " verifying with the old key, which stays in the secrets store. Recorded in the"
               " ledger with who and why." + EXAMPLE
               + "ml-connector audit rotate-key --reason 'yearly rotation'")
@click.option("--reason", required=True, metavar="TEXT", help="Why (recorded).")
@click.pass_context
def audit_rotate_key(ctx: click.Context, reason: str) -> None:
    rt = runtime(ctx)
    old, new = _ledger_call(lambda: rt.evidence.rotate(rt.ledger, reason))
    click.echo(f"audit key {new} MACs new events from now on (was {old}, kept to verify older"
               " events); copy the secrets store to every host that shares this ledger")


@audit.command("export", help="Write the ledger (or a time range) as JSON lines or CSV, in"
               " the order it was recorded." + EXAMPLE
               + "ml-connector audit export --format csv --since 2026-11-01 --until 2026-12-01")
@click.option("--format", "fmt", type=click.Choice(["jsonl", "csv"]), default="jsonl")
@click.option("--since", default="", metavar="TIME", help="ISO date or time (inclusive).")
@click.option("--until", default="", metavar="TIME", help="ISO date or time (exclusive).")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="File (default stdout).")
@click.pass_context
def audit_export(ctx: click.Context, fmt: str, since: str, until: str, output: str | None) -> None:
    rt = runtime(ctx)
    try:
        since, until = normalize_time(since), normalize_time(until)
    except ValueError as exc:
        raise click.UsageError(f"--since/--until: {exc}") from None
    events = iter_events(rt.ledger, since, until)
    write = to_csv if fmt == "csv" else to_jsonl
    try:
        handle = open(output, "w", encoding="utf-8", newline="") if output else sys.stdout
    except OSError as exc:
        raise click.ClickException(f"cannot write {output}: {exc.strerror}; give a file in a"
                                   " folder that exists and that you can write to") from None
    count = 0
    try:
        if fmt == "csv":
            handle.write(csv_header())
        with console.progress("exporting") as progress:
            for event in events:
                handle.write(write(event))
                count += 1
                if progress and count % 1000 == 0:
                    progress(event["position"], rt.ledger.recorder.max_notification_id() or 0)
    finally:
        if output:
            handle.close()
    if output:
        click.echo(f"wrote {count} events to {output}", err=True)


@audit.command("register", help="The posting register: one flat row per document IFS"
               " received (company, vendor, supplier, invoice, amounts, IFS InvoiceId, voucher,"
               " posted at, source file and sha256), by posting time. Streams; CSV cells are"
               " safe to open in a spreadsheet." + EXAMPLE
               + "ml-connector audit register --since 2026-11-01 --until 2026-12-01"
               " --format csv -o register-2026-11.csv")
@click.option("--format", "fmt", type=click.Choice(["csv", "jsonl"]), default="csv")
@click.option("--since", default="", metavar="TIME", help="ISO date or time (inclusive).")
@click.option("--until", default="", metavar="TIME", help="ISO date or time (exclusive).")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="File (default stdout).")
@click.pass_context
def audit_register(ctx: click.Context, fmt: str, since: str, until: str,
                   output: str | None) -> None:
    from projections import register

    rt = runtime(ctx)
    try:
        since, until = normalize_time(since), normalize_time(until)
    except ValueError as exc:
        raise click.UsageError(f"--since/--until: {exc}") from None
    write = register.to_csv if fmt == "csv" else register.to_jsonl
    try:
        handle = open(output, "w", encoding="utf-8", newline="") if output else sys.stdout
    except OSError as exc:
        raise click.ClickException(f"cannot write {output}: {exc.strerror}; give a file in a"
                                   " folder that exists and that you can write to") from None
    count = 0
    try:
        if fmt == "csv":
            handle.write(register.csv_header())
        from zoneinfo import ZoneInfo

        tz = ZoneInfo(getattr(rt.settings.connector, "timezone", "UTC"))
        for row in register.iter_register(rt.ledger, since, until, tz):
            handle.write(write(row))
            count += 1
    finally:
        if output:
            handle.close()
    if output:
        click.echo(f"wrote {count} register rows to {output}", err=True)


@main.command(help="Reconcile a period: what Stampli approved, what the ledger did with it,"
              " and what IFS holds now (read-only), invoice by invoice. Exit 0 when everything"
              " matches, 1 on any discrepancy. Each run is recorded in the ledger."
              + EXAMPLE + "ml-connector reconcile --from 2026-11-01 --to 2026-11-30"
              " --format html -o close-2026-11.html")
@click.option("--company", help="IFS company (default: connector.company).")
@click.option("--from", "first", metavar="DATE", help="First day (default: first day of last"
              " month, in connector.timezone).")
@click.option("--to", "last", metavar="DATE", help="Last day, inclusive (default: last day"
              " of last month; today when --from is given).")
@click.option("--by", type=click.Choice(["approved", "invoice"]), default="approved",
              help="Select invoices by approval date (default) or invoice date.")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "csv", "html"]),
              default="table")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="File (default stdout).")
@click.pass_context
def reconcile(ctx: click.Context, company: str | None, first: str | None, last: str | None,
              by: str, fmt: str, output: str | None) -> None:
    from projections.reconcile import DISCREPANCIES, TITLES, period_from_options

    rt = runtime(ctx)
    try:
        period = period_from_options(company or rt.settings.connector.company, first, last, by,
                                     getattr(rt.settings.connector, "timezone", "UTC"))
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    report, text = rt.reconcile(period, fmt)
    if output:
        try:
            with open(output, "w", encoding="utf-8", newline="") as handle:
                handle.write(text)
        except OSError as exc:
            raise click.ClickException(f"cannot write {output}: {exc.strerror}; give a file"
                                       " in a folder that exists and that you can write to"
                                       " (the run is recorded in the ledger)") from None
        found = [f"{report['counts'][c]} {TITLES[c].lower()}" for c in DISCREPANCIES
                 if report["counts"][c]]
        click.echo(f"wrote {output}: {report['counts']['matched']} matched"
                   + (f"; {'; '.join(found)}" if found else ""), err=True)
    else:
        click.echo(text, nl=False)
    if not report["ok"]:
        ctx.exit(1)


@main.group(help="Notifications to people ([notify] in the config; destinations as apprise"
            " URLs in the secret notify.urls, one per line)." + EXAMPLE
            + "ml-connector notify test")
def notify() -> None:
    pass


@notify.command("test", help="Send a test message to every destination and report each"
                " result (recorded in the ledger). Exit 1 if any destination failed." + EXAMPLE
                + "ml-connector notify test")
@click.pass_context
def notify_test(ctx: click.Context) -> None:
    rt = runtime(ctx)
    notices = rt.notifications()
    if notices is None:
        raise ConfigFailure("no notification destinations: add a [notify] section to the config"
                            " and store the destinations with `ml-connector secrets set"
                            " notify.urls` (one apprise URL per line)")
    results = notices.test()
    for destination, error in results.items():
        click.echo(f"{'ok  ' if not error else 'FAIL'}  {destination}  {error or 'delivered'}")
    if any(results.values()):
        ctx.exit(1)
