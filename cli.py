"""ml-connector's command line: a thin layer over the library, and the one place where
errors become messages and exit codes: 0 done, 1 the work could not be done, 2 usage or
configuration. The commands live here and in commands/ (each module registers its own)."""
from __future__ import annotations

import logging
import sys
from pathlib import Path

import click

from commands import actions, audit, output, sandbox, secrets, setup, users
from commands.context import EXAMPLE, runtime, settings, subgroup
from adapters.settings import ConfigError
from ledger.errors import ConnectorError
from ledger.status import STATES
from projections.redact import redacted


def as_click_error(exc: Exception, ctx: click.Context) -> click.ClickException:
    """The one mapping from an error to what a person sees: a ConnectorError's message and
    exit code (its usage line too when the command's input was the obstacle), an OSError's
    path, and anything else as a bug to report (`-vv` logs the traceback)."""
    if isinstance(exc, ConnectorError):
        if exc.bad_input:
            return click.UsageError(str(exc), ctx)
        failure = click.ClickException(str(exc))
        failure.exit_code = exc.exit_code
        return failure
    if isinstance(exc, OSError):
        where = f"{exc.filename}: " if exc.filename else ""
        return click.ClickException(f"{where}{exc.strerror or exc}; check that path and its"
                                    " permissions")
    logging.getLogger("ml_connector.cli").debug("unexpected error", exc_info=True)
    return click.ClickException(f"unexpected error ({type(exc).__name__}: {exc}); this is a"
                                " bug: run again with -vv to see where, and report it")


def _print_version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value and not ctx.resilient_parsing:
        from ledger import __version__

        click.echo(f"ml-connector {__version__}")
        ctx.exit()


class _Connector:
    """What every command and group shares: --version (and -h, from the main group's context
    settings), and the entry point's last word on failures: one line on stderr and an exit
    code, never a traceback."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.params.append(click.Option(["--version"], is_flag=True, expose_value=False,
                                        is_eager=True, callback=_print_version,
                                        help="Print the version and exit."))

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except Exception as exc:
            raise as_click_error(exc, ctx) from None


class VersionedCommand(_Connector, click.Command):
    pass


class ConnectorGroup(_Connector, click.Group):
    command_class = VersionedCommand
    group_class = type                 # sub-groups (secrets, audit, ...) are ConnectorGroups

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


def _is_utf8(arg: str) -> bool:
    try:
        arg.encode("utf-8")
    except UnicodeEncodeError:       # undecodable bytes arrive as lone surrogates
        return False
    return True


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
    output.setup_logging(log_format, verbose, quiet)


for group in (setup, secrets, audit, actions, users, sandbox):
    group.register(main)


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
    # Progress on stderr, a line per stage, so a slow IFS is never silence.
    data = output.cycle_summary(rt.sync_blocking(progress=_progress(ctx)), rt.state_counts())
    click.echo(output.dumps(data)) if as_json else output.print_cycle(data)
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

    plan = plan_sync(settings(ctx))
    click.echo(output.dumps(plan) if as_json else "\n".join(describe(plan)))
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
        click.echo(output.dumps(result))
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

    size = backup_sqlite(ledger_url(settings(ctx)), Path(file))
    if as_json:
        click.echo(output.dumps({"file": file, "bytes": size}))
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
        click.echo(output.dumps(items))
    else:
        click.echo(output.table(items, (("", lambda i: "ok" if i["ok"] else "FAIL"),
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

    rt = runtime(ctx)
    log = logging.getLogger("ml_connector.run")

    def on_cycle(report) -> None:
        pass                    # the cycle logs its own cycle_done line (runtime.py)

    def on_error(exc: Exception) -> None:
        log.error("cycle failed: %s", exc,
                  extra={"event": "cycle_failed", "error_type": type(exc).__name__})

    try:
        asyncio.run(rt.run_daemon(on_cycle, on_error, serve=with_web))
    except ValueError as exc:
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


@main.command(help="The current status of every invoice." + EXAMPLE
              + "ml-connector status --state failed --json")
@click.option("--json", "as_json", is_flag=True, help="A JSON array, for scripts.")
@click.option("--state", type=click.Choice(STATES), help="Only this state.")
@click.pass_context
def status(ctx: click.Context, as_json: bool, state: str | None) -> None:
    rows = runtime(ctx).status_rows(state)
    if as_json:
        click.echo(output.dumps([_public(r) for r in rows]))
    elif not rows:
        click.echo("no invoices" + (f" in state {state}" if state else ""))
    else:
        click.echo(output.table(rows, output.STATUS_COLUMNS))


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
              for e in rt.ledger.history(rt.resolve(ref))]
    if as_json:
        click.echo(output.dumps(events))
        return
    for event in events:
        click.echo(f"{event['version']:>3}  {event['recorded_at']}  {event['type']}")
        for key, value in event["data"].items():
            if key == "connector_version":
                continue
            click.echo(f"       {key}: {output.brief(value)}")


projections = subgroup(main, "projections", "Rebuild the read models from the ledger."
                       + EXAMPLE + "ml-connector projections rebuild")


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
    with output.progress("rebuilding") as progress:
        count, failure = rt.rebuild_projections(
            from_position, progress, include_audit_chain=include_audit_chain, force=force,
            reason=reason.strip())
    if as_json:
        click.echo(output.dumps({"from_position": from_position, "events_applied": count,
                                  "positions": rt.projector.positions(),
                                  "audit_chain_rebuilt": include_audit_chain,
                                  "verify_failure_overridden": failure or None}))
        return
    if failure:
        click.echo(f"audit chain rebuilt although `audit verify` failed ({failure});"
                   " recorded in the ledger with who and why", err=True)
    click.echo(f"rebuilt from {'the start' if from_position is None else from_position}:"
               f" {count} events applied; positions {rt.projector.positions()}")


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


notify = subgroup(main, "notify", "Notifications to people ([notify] in the config;"
                  " destinations as apprise URLs in the secret notify.urls, one per line)."
                  + EXAMPLE + "ml-connector notify test")


@notify.command("test", help="Send a test message to every destination and report each"
                " result (recorded in the ledger). Exit 1 if any destination failed." + EXAMPLE
                + "ml-connector notify test")
@click.pass_context
def notify_test(ctx: click.Context) -> None:
    rt = runtime(ctx)
    notices = rt.notifications()
    if notices is None:
        raise ConfigError("no notification destinations: add a [notify] section to the config"
                            " and store the destinations with `ml-connector secrets set"
                            " notify.urls` (one apprise URL per line)")
    results = notices.test()
    for destination, error in results.items():
        click.echo(f"{'ok  ' if not error else 'FAIL'}  {destination}  {error or 'delivered'}")
    if any(results.values()):
        ctx.exit(1)
