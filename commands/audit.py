"""`ml-connector audit ...`: the ledger for auditors: its digest, verifying the hash chain
and MACs, rotating the audit key, and exporting the events or the posting register."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any, TextIO

import click

from commands import output
from commands.context import EXAMPLE, output_file, runtime, subgroup
from projections.export import normalize_time, write_events, write_rows

_SINCE = click.option("--since", default="", metavar="TIME",
                      help="ISO date or time (inclusive).")
_UNTIL = click.option("--until", default="", metavar="TIME", help="ISO date or time (exclusive).")
_OUTPUT = click.option("-o", "--output", "path", type=click.Path(dir_okay=False),
                       help="File (default stdout).")


def _period(since: str, until: str) -> tuple[str, str]:
    try:
        return normalize_time(since), normalize_time(until)
    except ValueError as exc:
        raise click.UsageError(f"--since/--until: {exc}") from None


def _write(path: str | None, what: str, write: Callable[[TextIO], int]) -> None:
    """`write(handle)` to -o FILE or stdout; with a file, how many `what` it holds."""
    with output_file(path) as handle:
        count = write(handle)
    if path:
        click.echo(f"wrote {count} {what} to {path}", err=True)


def _events(ledger: Any, since: str, until: str, fmt: str) -> Callable[[TextIO], int]:
    def write(handle: TextIO) -> int:
        with output.progress("exporting") as progress:
            return write_events(handle, ledger, since, until, fmt, progress)
    return write


def register(main: click.Group) -> None:
    audit = subgroup(main, "audit", "The ledger for auditors: export it as data." + EXAMPLE
                     + "ml-connector audit export --since 2026-11-01 -o november.jsonl")

    @audit.command("digest", help="Print the ledger's current digest (position, hash, time)"
                   " as JSON, to keep outside the system and verify against later." + EXAMPLE
                   + "ml-connector audit digest > digest-2026-11-24.json")
    @click.pass_context
    def audit_digest(ctx: click.Context) -> None:
        from projections.audit_digest import current_digest

        rt = runtime(ctx)
        store = rt.projector.store
        if rt.evidence.chain_problem:
            raise click.ClickException(f"no digest: {rt.evidence.chain_problem}")
        click.echo(output.dumps(current_digest(rt.ledger, store)))

    @audit.command("verify", help="Recompute the hash chain from the stored events, check every"
                   " event's MAC (audit key in the secrets store), and report the first event"
                   " where it breaks, or that it holds (up to the digest, if given). Exit 1 on"
                   " any mismatch; until a later verify holds, other commands warn." + EXAMPLE
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
            with output.progress("verifying") as progress:
                result = rt.evidence.verify(rt.ledger, rt.projector, digest, progress)
        except ValueError as exc:
            raise click.UsageError(f"--digest: {exc}") from None
        save_verdict(rt.projector.store, result)
        if as_json:
            click.echo(output.dumps(result.to_dict()))
        elif result.ok:
            against = (f" and matches the digest at position {digest['position']}"
                       if digest else "")
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
                   " verifying with the old key, which stays in the secrets store. Recorded in"
                   " the ledger with who and why." + EXAMPLE
                   + "ml-connector audit rotate-key --reason 'yearly rotation'")
    @click.option("--reason", required=True, metavar="TEXT", help="Why (recorded).")
    @click.pass_context
    def audit_rotate_key(ctx: click.Context, reason: str) -> None:
        rt = runtime(ctx)
        old, new = rt.evidence.rotate(rt.ledger, reason)
        click.echo(f"audit key {new} MACs new events from now on (was {old}, kept to verify"
                   " older events); copy the secrets store to every host that shares this"
                   " ledger")

    @audit.command("export", help="Write the ledger (or a time range) as JSON lines or CSV, in"
                   " the order it was recorded." + EXAMPLE
                   + "ml-connector audit export --format csv --since 2026-11-01 --until"
                   " 2026-12-01")
    @click.option("--format", "fmt", type=click.Choice(["jsonl", "csv"]), default="jsonl")
    @_SINCE
    @_UNTIL
    @_OUTPUT
    @click.pass_context
    def audit_export(ctx: click.Context, fmt: str, since: str, until: str,
                     path: str | None) -> None:
        rt = runtime(ctx)
        since, until = _period(since, until)
        _write(path, "events", _events(rt.ledger, since, until, fmt))

    @audit.command("register", help="The posting register: one flat row per document IFS"
                   " received (company, vendor, supplier, invoice, amounts, IFS InvoiceId,"
                   " voucher, posted at, source file and sha256), by posting time. Streams; CSV"
                   " cells are safe to open in a spreadsheet." + EXAMPLE
                   + "ml-connector audit register --since 2026-11-01 --until 2026-12-01"
                   " --format csv -o register-2026-11.csv")
    @click.option("--format", "fmt", type=click.Choice(["csv", "jsonl"]), default="csv")
    @_SINCE
    @_UNTIL
    @_OUTPUT
    @click.pass_context
    def audit_register(ctx: click.Context, fmt: str, since: str, until: str,
                       path: str | None) -> None:
        from zoneinfo import ZoneInfo

        from projections import register

        rt = runtime(ctx)
        since, until = _period(since, until)
        tz = ZoneInfo(getattr(rt.settings.connector, "timezone", "UTC"))
        rows = register.iter_register(rt.ledger, since, until, tz)
        line, header = ((register.to_csv, register.csv_header()) if fmt == "csv"
                        else (register.to_jsonl, ""))
        _write(path, "register rows", lambda handle: write_rows(handle, rows, line, header))
