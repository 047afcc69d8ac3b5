"""The pieces of a rebuild spread over two cores (SQLite). Python's sqlite3 lets go of the GIL
while SQLite steps a statement, so reading the next pages of the log and writing the last
transaction's view rows can run while the main thread decodes and folds.

Each transaction still writes its rows and the new position together (the writer thread
commits them in order), so a crash leaves the views where their positions say."""
from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Callable, Sequence
from typing import Any

from projections.store import Cursor, ViewStore

READ_AHEAD_PAGES = 4          # pages read before the fold asks for them (memory stays bounded)
QUEUED_JOBS = 32              # pages and commits handed to the writer, not yet done


class PositionMoved(Exception):
    """Another process wrote the views meanwhile: the rebuild goes on the ordinary way."""


def read_ahead(read: Callable[[int, int], list], start: int, page_size: int,
               out: queue.Queue, stop: threading.Event) -> threading.Thread:
    """A thread that reads pages of the log from `start` into `out` until an empty page (put
    too), an error (put as the exception) or `stop`."""
    def put(item: Any) -> None:
        while not stop.is_set():
            try:
                out.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def run() -> None:
        nonlocal start
        try:
            while not stop.is_set():
                page = read(start, page_size)
                put(page)
                if not page:
                    return
                start = page[-1][0] + 1
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread
            put(exc)

    thread = threading.Thread(target=run, name="rebuild-read", daemon=True)
    thread.start()
    return thread


class Writer(threading.Thread):
    """Writes on its own connection, in order: pages for the projections that write as they
    fold (`apply_page(cur, events, positions)`), then a commit with the rows the others held
    back and the new position. A transaction begins at its first job and checks the
    positions are still the ones this rebuild wrote."""

    def __init__(self, store: ViewStore, positions: dict[str, int],
                 lock_positions: Callable[[Cursor], dict[str, int]],
                 apply_page: Callable[[Cursor, list, dict[str, int]], None],
                 flush: Callable[[Cursor], None], record: Callable[[Cursor, int], None]
                 ) -> None:
        super().__init__(name="rebuild-write", daemon=True)
        self.store, self.positions = store, dict(positions)
        self._lock, self._apply, self._flush, self._record = (lock_positions, apply_page,
                                                              flush, record)
        self.jobs: queue.Queue = queue.Queue(maxsize=QUEUED_JOBS)
        self.error: BaseException | None = None
        self.committed = 0               # events whose transaction committed
        self._open: contextlib.ExitStack | None = None
        self._cur: Cursor | None = None

    def page(self, events: list) -> None:
        self.jobs.put(("page", events))

    def commit(self, last: int, count: int, writes: list[tuple[str, list]]) -> None:
        self.jobs.put(("commit", (last, count, writes)))

    def finish(self) -> None:
        """Stop after the jobs handed over; a transaction left open is rolled back."""
        self.jobs.put(None)
        self.join()

    def drain(self) -> None:
        """Wait until every job handed over is done (its transaction committed, or open with
        its pages applied)."""
        self.jobs.join()

    def run(self) -> None:
        try:
            while True:
                job = self.jobs.get()
                try:
                    if job is None:
                        self._end(rollback=True)
                        return
                    if self.error is None:
                        self._do(*job)
                except BaseException as exc:  # noqa: BLE001 - the main thread raises it
                    self.error = exc
                    self._end(rollback=True)
                finally:
                    self.jobs.task_done()
        finally:
            self.store.close()           # this thread's connection

    def _begin(self) -> Cursor:
        if self._cur is None:
            self._open = contextlib.ExitStack()
            self._cur = self._open.enter_context(self.store.transaction())
            if self._lock(self._cur) != self.positions:
                raise PositionMoved
        return self._cur

    def _do(self, kind: str, payload: Any) -> None:
        cur = self._begin()
        if kind == "page":
            self._apply(cur, payload, self.positions)
            return
        last, count, writes = payload
        for sql, rows in writes:
            cur.executemany(sql, rows)
        self._flush(cur)
        self._record(cur, last)
        self._end(rollback=False)
        self.positions = dict.fromkeys(self.positions, last)
        self.committed += count

    def _end(self, rollback: bool) -> None:
        if self._open is None:
            return
        stack, self._open, self._cur = self._open, None, None
        if rollback:
            with contextlib.suppress(_RolledBack):
                stack.__exit__(_RolledBack, _RolledBack(), None)
        else:
            stack.close()


class _RolledBack(Exception):
    pass


class Deferred(Cursor):
    """The cursor of a projection folding on the main thread: its writes are kept and handed
    to the writer at the commit; a read first waits for the writes handed over so far, then
    reads what is committed on this thread's own connection (what the projection wrote in
    the open transaction, it still holds in memory until its flush)."""

    def __init__(self, reads: Cursor, writer: Writer) -> None:
        super().__init__(reads.raw, reads.translate)
        self.writer = writer
        self.writes: list[tuple[str, list]] = []

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Cursor:
        if not sql.lstrip().upper().startswith("SELECT"):
            self.writes.append((sql, [tuple(params)]))
            return self
        self.writer.drain()
        return super().execute(sql, params)

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            self.writes.append((sql, list(rows)))

    def take(self) -> list[tuple[str, list]]:
        writes, self.writes = self.writes, []
        return writes
