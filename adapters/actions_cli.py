"""The operator-action commands (`resolve`, `dismiss`, `reopen`) and the options they share
with `replay`: who acts (`--by`, else the OS user) and why (`--reason`, else a prompt on a
terminal). Registered on the main group by cli.py, which passes its runtime getter."""
from __future__ import annotations

import getpass
import os
import sys
from collections.abc import Callable
from typing import Any

import click

from adapters import console
from ledger.actions import ActionRefused


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


def act(fn: Callable[[], Any]) -> Any:
    """fn(), with a refusal as a clear message: bad input exits 2, anything else 1."""
    try:
        return fn()
    except ActionRefused as exc:
        if exc.bad_input:
            raise click.UsageError(str(exc)) from None
        raise click.ClickException(str(exc)) from None


def register(main: click.Group, runtime: Callable[[click.Context], Any]) -> None:
    example = "\n\nExample:\n\n    "

    @main.command(help="Close an invoice a person entered in IFS by hand: reads IFS InvoiceId"
                  " N and checks that supplier, invoice number, currency and header amounts"
                  " match the invoice; it ends `resolved` and is never posted. A mismatch is"
                  " refused unless --force (the differences are then recorded)." + example
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
        rt = runtime(ctx)
        done = act(lambda: rt.resolve_manually(ref, ifs_invoice_id, operator, reason, force))
        if as_json:
            click.echo(console.dumps(done))
            return
        how = "matches the invoice" if done["matches"] else (
            "forced: it differs in " + ", ".join(d["field"] for d in done["differences"]))
        click.echo(f"{console.printable(done['ref'])}: resolved by {console.printable(operator)}"
                   f" with IFS InvoiceId {done['ifs_invoice_id']} ({how}); it will not be"
                   " posted")

    @main.command(help="Mark an invoice that must never go to IFS (a test, a duplicate sent by"
                  " mistake): it ends `dismissed`. `reopen` undoes it." + example
                  + "ml-connector dismiss V00231/TEST-1 --reason 'test invoice from Stampli'")
    @click.argument("ref")
    @who_options
    @click.option("--json", "as_json", is_flag=True)
    @click.pass_context
    def dismiss(ctx: click.Context, ref: str, reason: str | None, operator: str | None,
                as_json: bool) -> None:
        operator, reason = who_and_why(operator, reason)
        rt = runtime(ctx)
        done = act(lambda: rt.dismiss(ref, operator, reason))
        if as_json:
            click.echo(console.dumps(done))
            return
        click.echo(f"{console.printable(done['ref'])}: dismissed by"
                   f" {console.printable(operator)}; it will not be posted (`ml-connector"
                   " reopen` undoes it)")

    @main.command(help="Undo a dismiss: the invoice goes back to where it was (to `parsed`"
                  " if Stampli sent new content meanwhile)." + example
                  + "ml-connector reopen V00231/TEST-1 --reason 'not a duplicate after all'")
    @click.argument("ref")
    @who_options
    @click.option("--json", "as_json", is_flag=True)
    @click.pass_context
    def reopen(ctx: click.Context, ref: str, reason: str | None, operator: str | None,
               as_json: bool) -> None:
        operator, reason = who_and_why(operator, reason)
        rt = runtime(ctx)
        done = act(lambda: rt.reopen(ref, operator, reason))
        if as_json:
            click.echo(console.dumps(done))
            return
        click.echo(f"{console.printable(done['ref'])}: reopened by"
                   f" {console.printable(operator)}, back to {done['state']}")
