"""Pass 2 of a large invoice CSV in worker processes, while this process records.

Applying the rules to the spilled rows (pass 2) takes about twice the CPU of recording the
invoices in the ledger, and both are Python: one process does one at a time. For a large file
on a machine with a core to spare, pass 1 still runs here (a file that cannot be read is
rejected before anything is yielded, as always), while a team of workers, one per core, reads
the spill as it grows; each applies the rules to every n-th batch of invoices and streams them
back in msgpack batches, which this process reads in turn and records once pass 1 is over.
The output is the in-process pass 2's, item for item.

A worker is a plain `python -m adapters.stampli.worker` child: no fork of a process whose
other threads may hold locks (SQLite's among them), no re-import of the caller's __main__. The
team is killed when the reader is closed early. If a worker cannot be started, or stops
before the first batch arrived, pass 2 runs here (a warning is logged); if one stops later,
that is an error.
"""
from __future__ import annotations

import itertools
import logging
import os
import queue
import select
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
from ledger.new_invoice import ExportFileRef, PreparedInvoice, prepare

try:
    import fcntl
except ImportError:                    # not on a Unix: pipes keep their default size
    fcntl = None  # type: ignore[assignment]

PARALLEL_ROWS = 50_000  # rows from which a worker pays for its start (~0.3 s of CPU)
PARALLEL_BYTES = 10 << 20  # a file this large has about that many rows: start at once
MAX_WORKERS = 4         # per file; recording (about half pass 2's CPU) is the limit past 2-3
_BATCH = 500            # groups (so items) per message
_AHEAD = 64             # messages a team may be ahead of the recording (bounds memory)
_DONE = b""             # the last message: everything was sent
_PIPE_BYTES = 1 << 20   # Linux's default limit for an unprivileged process
_COMMAND = ("-m", "adapters.stampli.worker")
# The recording process is the serial part (pass 1, then every save): at equal priority the
# team took a third of its core and it recorded the last batches alone, one core idle.
# Yielding to it: 100k invoices, 2 cores, 8.0 -> 7.3 s (means of 8 A/B pairs, 7 won; issue 16).
WORKER_NICENESS = 10
# glibc handed a worker's heap back to the kernel between batches and faulted it in again:
# 100k invoices, 163k page faults and 0.8 s of kernel time in the two workers. Keeping 16 MB
# on top of the heap: 10k faults, 0.3 s. (An environment variable of glibc; others ignore it.)
WORKER_MALLOC = {"MALLOC_TOP_PAD_": str(16 << 20)}

_Batch = tuple[list[ParsedInvoice], list[tuple[int, RejectedRow]]]
_encode = msgspec.msgpack.Encoder().encode
_decode_batch = msgspec.msgpack.Decoder(_Batch).decode
_decode_prepared = msgspec.msgpack.Decoder(
    tuple[list[PreparedInvoice], list[tuple[int, RejectedRow]]]).decode
log = logging.getLogger(__name__)


def worth_it(rows: int) -> bool:
    return rows >= PARALLEL_ROWS and _cores() > 1


class Pass2:
    """Pass 2 of one file: what build_groups(groups, ...) yields, computed by a worker
    process when the spill is large and there is a core to spare; here otherwise, or when no
    worker can be started or it fails before its first batch (nothing yielded yet).

    The worker starts early, while pass 1 still writes the spill: as soon as the file is
    known to be large, if every invoice's rows were adjacent so far (the spill is then in
    group order and can be read as it grows). A later row that breaks the order stops it, and
    pass 2 starts over once the spill is sealed. Nothing is yielded before pass 1 is done."""

    def __init__(self, spill: Spill, fields: tuple[str, ...], labels: dict[str, str],
                 formats: Formats, default_company: str, companies: dict[str, str],
                 prepare_for: ExportFileRef | None = None, file_bytes: int = 0) -> None:
        """`prepare_for`: the worker yields PreparedInvoice items for intake to record into
        this file (ledger/new_invoice.py) instead of ParsedInvoice items. `file_bytes`: the
        export's size, so that a large file's team starts at once, before the first row is
        spilled: its Python takes ~0.2 s of CPU to start, which then overlaps pass 1 on the
        core that has nothing else to do yet."""
        self.large = file_bytes >= PARALLEL_BYTES
        self.spill = spill
        self.settings = (fields, labels, formats, default_company, companies)
        self.prepare_for = prepare_for
        self.early: _Team | None = None
        self.started_early = False     # once: a worker stopped for disorder is not restarted
        if os.name == "posix":         # the worker waits for pass 1 with select() on a pipe
            spill.on_flush = self._flushed
            if self.large:
                self._flushed(spill)

    def run(self, groups: Iterator[list[Any]]
            ) -> Iterator[ParsedInvoice | PreparedInvoice | RejectedRow]:
        spill = self.spill
        if self.early is not None or worth_it(spill.count):
            path, in_order = spill.seal()
            try:
                worker, self.early = self.early, None
                if worker is not None and in_order:
                    worker.end_of_spill(spill.written)
                else:
                    if worker is not None:
                        worker.stop()
                    worker = _Team(self._job(path, in_order, tail=False))
                yield from worker.items()
                return
            except _NoStart as exc:
                log.warning("Stampli pass 2 runs in this process: %s", exc)
        yield from build_groups(groups, *self.settings)

    def stop(self) -> None:
        if self.early is not None:
            self.early.stop()
            self.early = None

    def _flushed(self, spill: Spill) -> None:
        if self.early is not None and not spill.in_order:
            self.stop()
        elif not self.started_early and spill.in_order and \
                (worth_it(spill.count) or (self.large and _cores() > 1)):
            self.started_early = True
            try:
                self.early = _Team(self._job(spill.path, True, tail=True))
            except _NoStart as exc:
                log.warning("Stampli pass 2 waits for the end of pass 1: %s", exc)

    def _job(self, path: Path, in_order: bool, *, tail: bool) -> dict[str, Any]:
        fields, labels, formats, default_company, companies = self.settings
        return {"spill": str(path), "in_order": in_order, "tail": tail, "batch": _BATCH,
                "prepare_for": self.prepare_for, "fields": list(fields),
                "labels": labels, "default_company": default_company, "companies": companies,
                "formats": [formats.decimal_separator, formats.thousands_separator,
                            formats.date_format, formats.config_key]}


class _NoStart(Exception):
    """The worker could not start, or stopped before sending anything."""


class _Worker:
    """A started worker process: the job sent, its output read on a thread."""

    def __init__(self, job: dict[str, Any]) -> None:
        errors_path = Path(job["spill"]).parent / f"worker-{job['share'][0]}-errors.txt"
        try:
            # Its stderr goes to a file beside the spill (a pipe could fill up and stall it).
            self.errors = open(errors_path, "w+b")   # noqa: SIM115 - closed in stop()
        except OSError as exc:
            raise _NoStart(f"no file for its messages: {exc}") from None
        try:
            self.process = subprocess.Popen([sys.executable, *_COMMAND], stdin=subprocess.PIPE,
                                            stdout=subprocess.PIPE, stderr=self.errors,
                                            env=_env())
        except OSError as exc:
            self.errors.close()
            raise _NoStart(f"cannot start {sys.executable}: {exc}") from None
        assert self.process.stdin is not None and self.process.stdout is not None
        _widen(self.process.stdout)
        self.frames = _Frames(self.process.stdout, max(2, _AHEAD // job["share"][1]))
        self._tell(job)
        if not job["tail"]:
            self._close_stdin()

    def end_of_spill(self, size: int) -> None:
        """Pass 1 is over: the spill file ends at `size` bytes."""
        self._tell({"size": size})
        self._close_stdin()

    def next_frame(self) -> bytes | None:
        """Its next message (_DONE last); None if it stopped without sending _DONE."""
        return self.frames.next()

    def failure(self, received: bool) -> Exception | None:
        """Once its output ended, or it is out of step: why it is not a success, if not."""
        if not self.frames.done and self.process.poll() is None:
            self.process.kill()        # out of step with the others: a bug, not a hang
        code = self.process.wait()
        if not self.frames.done or code:
            self.errors.seek(0)
            detail = self.errors.read()[-4000:].decode("utf-8", "replace").strip()
            message = (f"the Stampli pass-2 worker stopped (exit code {code}) before it "
                       f"was done: {detail or 'no message'}")
            return RuntimeError(message) if received else _NoStart(message)
        return None

    def stop(self) -> None:
        process = self.process
        if process.poll() is None:
            process.kill()
        self.frames.stop()
        process.wait()
        assert process.stdout is not None
        process.stdout.close()
        self._close_stdin()
        self.errors.close()

    def _tell(self, message: dict[str, Any]) -> None:
        assert self.process.stdin is not None
        try:
            _send(self.process.stdin, _encode(message))
            self.process.stdin.flush()
        except (BrokenPipeError, ValueError):
            pass                       # it died (or was stopped): reported by items()

    def _close_stdin(self) -> None:
        assert self.process.stdin is not None
        try:
            self.process.stdin.close()
        except BrokenPipeError:
            pass


class _Team:
    """The workers of one file's pass 2, each applying the rules to every n-th batch of
    groups (the rules are most of an ingest's CPU, the recording process needs less than one
    core): their batches are read in turn, so the items come in the spill's order."""

    def __init__(self, job: dict[str, Any]) -> None:
        count = _team_size()
        self.prepared = job["prepare_for"]
        self.workers: list[_Worker] = []
        try:
            for share in range(count):
                self.workers.append(_Worker({**job, "share": [share, count]}))
        except _NoStart:
            self.stop()
            raise

    def end_of_spill(self, size: int) -> None:
        """Pass 1 is over: the spill file ends at `size` bytes."""
        for worker in self.workers:
            worker.end_of_spill(size)

    def items(self) -> Iterator[ParsedInvoice | PreparedInvoice | RejectedRow]:
        decode = _decode_batch if self.prepared is None else _decode_prepared
        workers, received = self.workers, False
        try:
            for batch in itertools.count():
                last = workers[batch % len(workers)]
                frame = last.next_frame()
                if frame is None or frame == _DONE:
                    break
                received = True
                invoices, rejected = decode(frame)
                items: list[Any] = list(invoices)
                for position, row in rejected:
                    items.insert(position, row)
                yield from items
            if frame == _DONE:         # batch `batch` is nobody's: all must be at their end
                for worker in workers:
                    if worker is not last:
                        worker.next_frame()
            for worker in [last] if frame is None else workers:
                if (error := worker.failure(received)) is not None:
                    raise error
        finally:
            self.stop()

    def stop(self) -> None:
        for worker in self.workers:
            worker.stop()


class _Frames:
    """The worker's messages, read on a thread into a bounded queue: a pipe holds 64 KB, so
    without it the worker would wait for every read while this process records."""

    def __init__(self, stream: IO[bytes], ahead: int) -> None:
        self._queue: queue.Queue[bytes | None] = queue.Queue(maxsize=ahead)
        self.done = self._ended = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._pump, args=(stream,), daemon=True,
                                        name="stampli-pass-2")
        self._thread.start()

    def next(self) -> bytes | None:
        """The next message; None once the output ended without _DONE (and ever after)."""
        if self.done or self._ended:
            return None
        frame = self._queue.get()
        if frame is None:
            self._ended = True
        elif frame == _DONE:
            self.done = True
        return frame

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


def _widen(pipe: IO[bytes]) -> None:
    """A pipe that holds a whole batch (Linux; elsewhere the default 64 KB). Through 64 KB
    the worker waits for every piece of a batch to be read by _Frames' thread, which waits
    for this process's lock on Python while it records: measured ~1 s of a 100k ingest."""
    try:
        fcntl.fcntl(pipe.fileno(), fcntl.F_SETPIPE_SZ, _PIPE_BYTES)  # type: ignore[union-attr]
    except (AttributeError, OSError):  # no fcntl, no F_SETPIPE_SZ (not Linux), or refused
        pass


def _team_size() -> int:
    """Workers per file: one per core. On two cores, one worker kept the recording process
    waiting for the rules after pass 1 (100k invoices: 17 s); two workers and the recording
    process share both cores (12 s; issue 16)."""
    return max(1, min(_cores(), MAX_WORKERS))


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:     # not on Linux
        return os.cpu_count() or 1


def _env() -> dict[str, str]:
    """This process's environment, with the project importable however it was started, and
    the worker's heap kept (WORKER_MALLOC) unless the caller chose otherwise."""
    root = str(Path(__file__).resolve().parents[2])
    env = {**WORKER_MALLOC, **os.environ}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    return env


def main() -> None:
    """The worker: reads the job on stdin (and, when it tails a spill still being written,
    the spill's final size later), writes length-prefixed msgpack batches on stdout."""
    _yield_to_the_recording()
    job = _receive(0)
    if job is None:
        return                         # stopped before it got a job
    until = _until_end_of_spill if job["tail"] else None
    out = sys.stdout.buffer
    file = ExportFileRef(*job["prepare_for"]) if job["prepare_for"] else None
    share, count, batch = *job["share"], job["batch"]
    invoices: list[ParsedInvoice | PreparedInvoice] = []
    rejected: list[tuple[int, RejectedRow]] = []
    groups = read_groups(Path(job["spill"]), job["in_order"], until,
                         wanted=lambda index: index // batch % count == share)
    for item in build_groups(groups, tuple(job["fields"]), job["labels"],
                             Formats(*job["formats"]), job["default_company"],
                             job["companies"]):
        if isinstance(item, RejectedRow):
            rejected.append((len(invoices) + len(rejected), item))
        else:
            invoices.append(item if file is None else prepare(item, file))
        if len(invoices) + len(rejected) >= batch:      # one item per group
            _send(out, _encode((invoices, rejected)))
            invoices, rejected = [], []
    if invoices or rejected:
        _send(out, _encode((invoices, rejected)))
    _send(out, _DONE)
    out.flush()


def _yield_to_the_recording() -> None:
    try:
        os.nice(WORKER_NICENESS)
    except (AttributeError, OSError):  # not on a Unix, or refused: equal priority, slower
        pass


def _until_end_of_spill() -> int | None:
    """At the end of what pass 1 wrote so far: its final size once it told us, else None
    after a short wait. Stdin closed without a size: stopped, nothing more to do."""
    if not select.select([0], [], [], 0.02)[0]:
        return None
    end = _receive(0)
    if end is None:
        sys.exit(0)
    return int(end["size"])


def _receive(fd: int) -> Any:
    """One length-prefixed message from a file descriptor, unbuffered (a buffered read could
    take the next message into its buffer, where select() does not see it); None at EOF."""
    head = _read_exactly(fd, 4)
    body = None if head is None else _read_exactly(fd, int.from_bytes(head, "little"))
    return None if body is None else msgspec.msgpack.decode(body)


def _read_exactly(fd: int, size: int) -> bytes | None:
    chunks = []
    while size > 0:
        chunk = os.read(fd, size)
        if not chunk:
            return None
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def _send(out: IO[bytes], frame: bytes) -> None:
    out.write(len(frame).to_bytes(4, "little"))
    out.write(frame)


if __name__ == "__main__":
    main()
