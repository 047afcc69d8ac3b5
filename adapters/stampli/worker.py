"""Pass 2 of a large invoice CSV in a worker process, while this process records.

An ingest's CPU splits roughly in half between applying the rules to the spilled rows (pass 2)
and recording the invoices in the ledger, and both are Python: one process does one at a time.
For a large file on a machine with a core to spare, pass 1 still runs here (a file that cannot
be read is rejected before anything is yielded, as always), then a worker process reads the
sealed spill, applies the rules and streams the invoices back in msgpack batches while this
process records the ones before. The output is the in-process pass 2's, item for item.

The worker is a plain `python -m adapters.stampli.worker` child: no fork of a process whose
other threads may hold locks (SQLite's among them), no re-import of the caller's __main__. It
is killed when the reader is closed early. If it cannot be started, or stops before its first
batch, pass 2 runs here (a warning is logged); if it stops later, that is an error.
"""
from __future__ import annotations

import logging
import os
import queue
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import msgspec

from adapters.stampli.invoice_groups import build_groups
from adapters.stampli.spill import Spill, read_groups
from adapters.stampli.values import Formats
from ledger.model import ParsedInvoice, RejectedRow

PARALLEL_ROWS = 50_000  # rows from which a worker pays for its start (~0.3 s of CPU)
_BATCH = 500            # items per message
_AHEAD = 64             # messages the worker may be ahead of the recording (bounds memory)
_DONE = b""             # the last message: everything was sent
_COMMAND = ("-m", "adapters.stampli.worker")

_Batch = tuple[list[ParsedInvoice], list[tuple[int, RejectedRow]]]
_encode = msgspec.msgpack.Encoder().encode
_decode_batch = msgspec.msgpack.Decoder(_Batch).decode
log = logging.getLogger(__name__)


def worth_it(rows: int) -> bool:
    return rows >= PARALLEL_ROWS and _cores() > 1


def pass_2(spill: Spill, groups: Iterator[list[Any]], fields: tuple[str, ...],
           labels: dict[str, str], formats: Formats, default_company: str,
           companies: dict[str, str]) -> Iterator[ParsedInvoice | RejectedRow]:
    """What build_groups(groups, ...) yields: computed by a worker process when the spill is
    large and there is a core to spare; here otherwise, or when no worker can be started or it
    fails before its first batch (nothing yielded yet)."""
    if worth_it(spill.count):
        path, in_order = spill.seal()
        job = _encode({"spill": str(path), "in_order": in_order, "fields": list(fields),
                       "labels": labels, "default_company": default_company,
                       "companies": companies,
                       "formats": [formats.decimal_separator, formats.thousands_separator,
                                   formats.date_format, formats.config_key]})
        try:
            yield from _from_worker(job, path.parent / "worker-errors.txt")
            return
        except _NoStart as exc:
            log.warning("Stampli pass 2 runs in this process: %s", exc)
    yield from build_groups(groups, fields, labels, formats, default_company, companies)


class _NoStart(Exception):
    """The worker could not start, or stopped before sending anything."""


def _from_worker(job: bytes, errors_path: Path) -> Iterator[ParsedInvoice | RejectedRow]:
    try:
        # Its stderr goes to a file beside the spill (a pipe could fill up and stall it).
        errors = open(errors_path, "w+b")   # noqa: SIM115 - closed below
    except OSError as exc:
        raise _NoStart(f"no file for its messages: {exc}") from None
    try:
        process = subprocess.Popen([sys.executable, *_COMMAND], stdin=subprocess.PIPE,
                                   stdout=subprocess.PIPE, stderr=errors, env=_env())
    except OSError as exc:
        errors.close()
        raise _NoStart(f"cannot start {sys.executable}: {exc}") from None
    assert process.stdin is not None and process.stdout is not None
    frames = _Frames(process.stdout)
    received = done = False
    try:
        try:
            process.stdin.write(job)
            process.stdin.close()
        except BrokenPipeError:
            pass                       # it died at start: reported below, with its stderr
        for frame in frames:
            received = True
            if frame == _DONE:
                done = True
                break
            invoices, rejected = _decode_batch(frame)
            items: list[Any] = list(invoices)
            for position, row in rejected:
                items.insert(position, row)
            yield from items
        code = process.wait()
        if not done or code:
            errors.seek(0)
            detail = errors.read()[-4000:].decode("utf-8", "replace").strip()
            message = (f"the Stampli pass-2 worker stopped (exit code {code}) before it was "
                       f"done: {detail or 'no message'}")
            if not received:
                raise _NoStart(message)
            raise RuntimeError(message)
    finally:
        if process.poll() is None:
            process.kill()
        frames.stop()
        process.wait()
        process.stdout.close()
        errors.close()


class _Frames:
    """The worker's messages, read on a thread into a bounded queue: a pipe holds 64 KB, so
    without it the worker would wait for every read while this process records."""

    def __init__(self, stream: IO[bytes]) -> None:
        self._queue: queue.Queue[bytes | None] = queue.Queue(maxsize=_AHEAD)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._pump, args=(stream,), daemon=True,
                                        name="stampli-pass-2")
        self._thread.start()

    def __iter__(self) -> Iterator[bytes]:
        while (frame := self._queue.get()) is not None:
            yield frame
            if frame == _DONE:
                return

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _pump(self, stream: IO[bytes]) -> None:
        try:
            while True:
                head = stream.read(4)
                size = int.from_bytes(head, "little") if len(head) == 4 else -1
                frame = stream.read(size) if size > 0 else _DONE
                if size < 0 or len(frame) < size:      # end of output before _DONE
                    break
                if not self._put(frame) or frame == _DONE:
                    return
        except (OSError, ValueError):                  # closed under us: stopping anyway
            pass
        self._put(None)

    def _put(self, item: bytes | None) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:     # not on Linux
        return os.cpu_count() or 1


def _env() -> dict[str, str]:
    """This process's environment, with the project importable however it was started."""
    root = str(Path(__file__).resolve().parents[2])
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    return env


def main() -> None:
    """The worker: reads the job on stdin, writes length-prefixed msgpack batches on stdout."""
    job = msgspec.msgpack.decode(sys.stdin.buffer.read())
    out = sys.stdout.buffer
    invoices: list[ParsedInvoice] = []
    rejected: list[tuple[int, RejectedRow]] = []
    for item in build_groups(read_groups(Path(job["spill"]), job["in_order"]),
                             tuple(job["fields"]), job["labels"], Formats(*job["formats"]),
                             job["default_company"], job["companies"]):
        if isinstance(item, RejectedRow):
            rejected.append((len(invoices) + len(rejected), item))
        else:
            invoices.append(item)
        if len(invoices) + len(rejected) >= _BATCH:
            _send(out, _encode((invoices, rejected)))
            invoices, rejected = [], []
    if invoices or rejected:
        _send(out, _encode((invoices, rejected)))
    _send(out, _DONE)
    out.flush()


def _send(out: IO[bytes], frame: bytes) -> None:
    out.write(len(frame).to_bytes(4, "little"))
    out.write(frame)


if __name__ == "__main__":
    main()
