"""The command line's output layer, what a person sees: tables for humans, JSON for
scripts, logs as text or JSON lines, and a progress bar only on a terminal."""
from __future__ import annotations

import logging
import re
import sys
from collections.abc import Callable, Sequence
from typing import Any

import click
import orjson

STATUS_COLUMNS = (("REF", lambda r: f"{r['vendor_id']}/{r['invoice_number']}"),
                  ("TYPE", lambda r: r["document_type"]),
                  ("CO", lambda r: r["company"]),
                  ("TOTAL", lambda r: f"{r['total']} {r['currency']}".strip()),
                  ("STATE", lambda r: r["state"]),
                  ("IFS INVOICE", lambda r: r["ifs_invoice_id"] or ""),
                  ("VOUCHER", lambda r: r["ifs_voucher_no"] or ""),
                  ("TRIES", lambda r: str(r["attempts"] or 0)),
                  ("PROBLEM", lambda r: _problem(r)))


# Control characters (a terminal escape), bidi overrides and lone surrogates never reach a
# terminal raw: export files and file names come from outside.
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u2028\u2029\u202a-\u202e"
                          "\u2066-\u2069\ud800-\udfff]")
ROWS_SHOWN = 20                        # rows not recorded, per file, in sync's plain output


def printable(text: object) -> str:
    """The text with every unprintable character written as its escape (\\x1b)."""
    return _UNPRINTABLE.sub(lambda m: m.group().encode("unicode_escape",
                                                       "backslashreplace").decode("ascii"),
                            str(text))


def _problem(row: dict[str, Any]) -> str:
    if not row.get("failure_kind"):
        return ""
    message = row["failure_message"] or ""
    if len(message) > 90:
        message = message[:87] + "..."
    return f"{row['failure_kind']}: {message}"


def table(rows: Sequence[dict[str, Any]],
          columns: Sequence[tuple[str, Callable[[dict[str, Any]], str]]]) -> str:
    cells = [[printable(fn(row)) for _, fn in columns] for row in rows]
    widths = [max([len(name)] + [len(c[i]) for c in cells]) for i, (name, _) in enumerate(columns)]
    lines = ["  ".join(name.ljust(w) for (name, _), w in zip(columns, widths)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(cell, widths)).rstrip() for cell in cells]
    return "\n".join(lines)


def brief(value: Any, width: int = 160) -> str:
    """One line for a person; `--json` has everything."""
    if isinstance(value, (dict, list)):
        text = orjson.dumps(value, default=str).decode()
    else:
        text = str(value)
    text = printable(text)
    return text if len(text) <= width else text[:width - 30] + f"... ({len(text)} chars; --json)"


def dumps(data: Any) -> str:
    return orjson.dumps(data, option=orjson.OPT_INDENT_2, default=str).decode()


def is_terminal(stream: Any = None) -> bool:
    stream = stream or sys.stderr
    return hasattr(stream, "isatty") and stream.isatty()


# What a LogRecord holds by itself; anything else on it came as `extra=` facts.
_RECORD_FIELDS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message", "asctime", "taskName", "event"}


def event_name(record: logging.LogRecord) -> str:
    """The line's stable name: `extra={"event": ...}` where the code gives one, else made from
    the message's template (never from the facts put into it), so it does not change between
    runs: "could not archive: %s" -> could_not_archive."""
    given = getattr(record, "event", None)
    if given:
        return str(given)
    words = re.sub(r"%[-#0 +]*\d*(?:\.\d+)?[sdrfgix]|[^A-Za-z]+", " ", str(record.msg)).split()
    return "_".join(words[:5]).lower() or "log"


def facts(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items()
            if k not in _RECORD_FIELDS and not k.startswith("_")}


def _utc_ms(created: float) -> str:
    from datetime import datetime, timezone

    stamp = datetime.fromtimestamp(created, timezone.utc)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{stamp.microsecond // 1000:03d}Z"


class JsonLogFormatter(logging.Formatter):
    """One JSON object per line for log collectors: `ts` (UTC, RFC 3339, milliseconds),
    `level`, `logger`, `event` (a stable name), `message`, and every fact (invoice, file,
    counts, duration_ms, ...) as its own key. An error carries its exception type, and its
    traceback when the log level is debug."""

    def format(self, record: logging.LogRecord) -> str:
        data = {"ts": _utc_ms(record.created), "level": record.levelname.lower(),
                "logger": record.name, "event": event_name(record),
                "message": record.getMessage()}
        for key, value in facts(record).items():
            data.setdefault(key, value)
        if record.exc_info and record.exc_info[0] is not None:
            data["error_type"] = record.exc_info[0].__name__
            data["error"] = str(record.exc_info[1])
            if logging.getLogger(record.name).isEnabledFor(logging.DEBUG):
                data["traceback"] = self.formatException(record.exc_info)
        return orjson.dumps(data, default=str).decode()


class TextLogFormatter(logging.Formatter):
    """A sentence per line, then the facts it is about: `invoice=V1/INV-1 counts=...`."""

    def format(self, record: logging.LogRecord) -> str:
        about = " ".join(f"{k}={_fact(v)}" for k, v in facts(record).items())
        text = f"{self.formatTime(record, '%H:%M:%S')} {record.levelname.lower():7} " \
               f"{record.getMessage()}"
        if record.exc_info and record.exc_info[0] is not None:
            text += f" ({record.exc_info[0].__name__}: {record.exc_info[1]})"
            if logging.getLogger(record.name).isEnabledFor(logging.DEBUG):
                text += "\n" + self.formatException(record.exc_info)
        return f"{text} [{about}]" if about else text


def _fact(value: Any) -> str:
    if isinstance(value, dict):
        return ",".join(f"{k}:{v}" for k, v in value.items())
    return str(value)


def setup_logging(fmt: str, verbose: int, quiet: bool = False) -> None:
    """-v info, -vv debug, -q errors only; by default warnings on a terminal (a person reads
    the command's own output) and info otherwise (a daemon's journal)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonLogFormatter() if fmt == "json" else TextLogFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose > 1 else logging.INFO if verbose else logging.WARNING)
    for noisy in ("paramiko", "aiohttp.access", "asyncio"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    if quiet:
        ours = logging.ERROR
    elif verbose:
        ours = logging.DEBUG if verbose > 1 else logging.INFO
    else:
        ours = logging.WARNING if is_terminal() else logging.INFO
    logging.getLogger("ml_connector").setLevel(ours)
    if quiet:
        root.setLevel(logging.ERROR)


def cycle_summary(report: Any, states: dict[str, int]) -> dict[str, Any]:
    """What one sync cycle did, as `sync --json` prints it."""
    return {"poll": report.poll, "moved": report.moved, "failed": report.failed,
            "errors": report.errors, "states": states}


def print_cycle(data: dict[str, Any]) -> None:
    """What `sync` prints without --json: every file, row and invoice that needs a person is
    named (escaped: it comes from outside), and counted on the `problems:` line."""
    poll, problems = data["poll"], 0
    say = click.echo
    if poll:
        taken = ", ".join(printable(t["file"]) for t in poll["taken"]) or "none"
        say(f"polled: {poll['listed']} files listed, taken: {taken}")
        for skip in poll.get("skipped", ()):
            if skip.get("problem"):
                problems += 1
                say(f"  skipped {printable(skip['name'])}: {printable(skip['reason'])}")
        for t in poll["taken"]:
            if "rejected" in t:
                problems += 1
                say(f"  rejected {printable(t['file'])}: {printable(t['rejected'])}")
            problems += _print_rows(t)
    moved = ", ".join(f"{k} {v}" for k, v in sorted(data["moved"].items())) or "nothing moved"
    say(f"moved: {moved}")
    for f in data["failed"]:
        say(f"  {printable(f['invoice'])}: {f['kind']} at {f['stage']}: "
            f"{printable(f['message'])}")
    say("now: " + ", ".join(f"{k} {v}" for k, v in sorted(data["states"].items())))
    if problems:
        say(f"problems: {problems} (files skipped or rejected, rows not recorded as "
            f"records); each is named above")
    for error in data["errors"]:
        click.echo(f"error: {printable(error)}", err=True)


def _print_rows(summary: dict[str, Any]) -> int:
    """The rows of one file that became no record (no vendor id, no invoice number, broken
    quoting): named, so they are not only in --json and the log. Returns how many."""
    count = summary.get("rejected_rows") or 0
    if not count:
        return 0
    name = printable(summary["file"])
    click.echo(f"  {name}: {count} row(s) not recorded (fix them in Stampli and export again):")
    listed = summary.get("rejected_rows_listed") or []
    for row in listed[:ROWS_SHOWN]:
        click.echo(f"    {name} line {row['line']}: {printable(row['message'])}")
    if count > min(len(listed), ROWS_SHOWN):
        click.echo(f"    ... and {count - min(len(listed), ROWS_SHOWN)} more (sync --json lists "
                   f"up to {len(listed)})")
    return count


class progress:
    """click's progress bar on a terminal; silent in a pipe. Yields update(done, total)."""

    def __init__(self, label: str) -> None:
        self.label, self.bar = label, None

    def __enter__(self) -> Callable[[int, int], None] | None:
        if not is_terminal():
            return None

        def update(done: int, total: int) -> None:
            if self.bar is None:
                self.bar = click.progressbar(length=total, label=self.label, file=sys.stderr)
                self.bar.__enter__()
            self.bar.update(done - self.bar.pos)
        return update

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)
