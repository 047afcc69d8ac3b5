"""The operator-action commands (`resolve`, `dismiss`, `reopen`, `replay`) and the options
they share: who acts (`--by`, else the OS user) and why (`--reason`, else a prompt on a
terminal). A refusal is an ActionRefused, reported by cli.py like every ConnectorError."""
from __future__ import annotations

import getpass
import os
import sys
from collections.abc import Callable
from typing import Any

import click

from commands import output
from commands.context import EXAMPLE, runtime
from ledger.ports import FAILURE_KINDS


def os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):          # no passwd entry (containers): the uid still says who
        return f"uid {os.getuid()}"


def who_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    fn = click.option("--by", "operator", metavar="NAME",
                      help="Who acts (default: your OS user name); recorded with the reason.")(fn)
    return click.option("--reason", metavar="TEXT",
                        help="Why (recorded for the audit; at most 2000 characters). Asked for"
                        " on a terminal when left out.")(fn)


def who_and_why(operator: str | None, reason: str | None) -> tuple[str, str]:
    """(operator, reason) from the options; the reason is prompted for on a terminal."""
    if reason is None:
        if not sys.stdin.isatty():
            raise click.UsageError("--reason is required: say why (it is recorded with your"
                                   " name)")
        reason = click.prompt("reason (recorded with your name)")
    return (operator if operator is not None else os_user()), reason


def _state_action(main: click.Group, name: str, help_text: str,
                  done: Callable[[dict[str, Any], str], str]) -> None:
    """`dismiss` and `reopen`: REF, who and why, the runtime method of the same name, and
    `done(result, operator)` as the line printed after the ref."""

    @main.command(name, help=help_text)
    @click.argument("ref")
    @who_options
    @click.option("--json", "as_json", is_flag=True)
    @click.pass_context
    def command(ctx: click.Context, ref: str, reason: str | None, operator: str | None,
                as_json: bool) -> None:
        operator, reason = who_and_why(operator, reason)
        result = getattr(runtime(ctx), name)(ref, operator, reason)
        if as_json:
            click.echo(output.dumps(result))
            return
        click.echo(f"{output.printable(result['ref'])}: "
                   + done(result, output.printable(operator)))


def register(main: click.Group) -> None:
    @main.command(help="Close an invoice a person entered in IFS by hand: reads IFS InvoiceId"
                  " N and checks that supplier, invoice number, currency and header amounts"
                  " match the invoice; it ends `resolved` and is never posted. A mismatch is"
                  " refused unless --force (the differences are then recorded)." + EXAMPLE
                  + "ml-connector resolve V00231/INV-2026-0117 --ifs-invoice-id 4711"
                  " --reason 'entered by hand, ticket AP-118'")
    @click.argument("ref")
    @click.option("--ifs-invoice-id", "ifs_invoice_id", required=True, metavar="N",
                  help="The InvoiceId IFS shows for the supplier invoice.")
    @click.option("--force", is_flag=True,
                  help="Resolve even when the IFS document differs (recorded as forced).")
    @who_options
    @click.option("--json", "as_json", is_flag=True)
    @click.pass_context
    def resolve(ctx: click.Context, ref: str, ifs_invoice_id: str, force: bool,
                reason: str | None, operator: str | None, as_json: bool) -> None:
        operator, reason = who_and_why(operator, reason)
        done = runtime(ctx).resolve_manually(ref, ifs_invoice_id, operator, reason, force)
        if as_json:
            click.echo(output.dumps(done))
            return
        how = "matches the invoice" if done["matches"] else (
            "forced: it differs in " + ", ".join(d["field"] for d in done["differences"]))
        click.echo(f"{output.printable(done['ref'])}: resolved by {output.printable(operator)}"
                   f" with IFS InvoiceId {done['ifs_invoice_id']} ({how}); it will not be"
                   " posted")

    _state_action(main, "dismiss", "Mark an invoice that must never go to IFS (a test, a"
                  " duplicate sent by mistake): it ends `dismissed`. `reopen` undoes it."
                  + EXAMPLE + "ml-connector dismiss V00231/TEST-1 --reason 'test invoice from"
                  " Stampli'",
                  lambda done, by: f"dismissed by {by}; it will not be posted (`ml-connector"
                  " reopen` undoes it)")
    _state_action(main, "reopen", "Undo a dismiss: the invoice goes back to where it was (to"
                  " `parsed` if Stampli sent new content meanwhile)." + EXAMPLE
                  + "ml-connector reopen V00231/TEST-1 --reason 'not a duplicate after all'",
                  lambda done, by: f"reopened by {by}, back to {done['state']}")

    @main.command(help="Re-drive invoices: REF from an event number (default: before its last"
                  " failure), or every parked invoice with --failed (`data` failures only with"
                  " --kind data: they fail again until Stampli sends new content). Records who"
                  " (--by, else your OS user) and why (--reason). Appends; never rewrites."
                  + EXAMPLE + "ml-connector replay --failed --kind reference --reason 'account"
                  " 6540 created in IFS'")
    @click.argument("ref", required=False)
    @click.option("--from", "from_version", type=int,
                  help="Event number to go back to: from its latest content on, never past the"
                  " approval of content Stampli has not approved (a refusal lists the allowed"
                  " ones).")
    @click.option("--failed", is_flag=True, help="Every failed (parked) invoice.")
    @click.option("--kind", type=click.Choice(FAILURE_KINDS),
                  help="With --failed: only this kind.")
    @who_options
    @click.option("--json", "as_json", is_flag=True)
    @click.pass_context
    def replay(ctx: click.Context, ref: str | None, from_version: int | None, failed: bool,
               kind: str | None, reason: str | None, operator: str | None,
               as_json: bool) -> None:
        if bool(ref) == failed:
            raise click.UsageError("give either REF or --failed")
        operator, reason = who_and_why(operator, reason)
        rt = runtime(ctx)
        if failed:
            result = rt.replay_failed(kind, reason, operator)
        else:
            one = rt.replay_one(ref, from_version, reason, operator)
            result = {"replayed": [one], "left": {}, "refused": []}
        _print_replayed(result, as_json)


def _print_replayed(result: dict[str, Any], as_json: bool) -> None:
    done = result["replayed"]
    if as_json:
        click.echo(output.dumps(done))
    else:
        for item in done:
            click.echo(f"{item['ref']}: back to {item['restored_state']} (after event"
                       f" {item['from_version']})")
        if not done:
            click.echo("nothing to replay")
    say = (lambda text: click.echo(text, err=True)) if as_json else click.echo
    for item in result["refused"]:
        say(f"not replayed {output.printable(item['ref'])}:"
            f" {output.printable(item['reason'])}")
    if result["left"].get("data"):
        say(f"left {result['left']['data']} invoice(s) failed on `data`: they fail again at"
            " once unless Stampli sends new content (which moves them on by itself); correct"
            " them in Stampli, or `ml-connector replay --failed --kind data --reason \"...\"`"
            " once the cause is fixed")
