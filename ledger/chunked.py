"""What every pipeline stage does with the invoices it takes: read them (a chunk in one query,
or from memory when this pipeline recorded them last), and record them a chunk per
transaction. A commit (an fsync, a round trip to PostgreSQL) and a read per invoice cost
more than the stages' own work; workers sharing a ledger start a page at different chunks
and leave a page another worker is on."""
from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any
from uuid import UUID

from ledger.errors import ConcurrentChange
from ledger.invoice import Invoice

if TYPE_CHECKING:
    from ledger.app import Ledger
    from ledger.pipeline import PipelineSettings
    from ledger.ports import WorkQueue

log = logging.getLogger("ml_connector.pipeline")


class ChunkedStages:
    ledger: Ledger
    queue: WorkQueue
    settings: PipelineSettings
    progress: Callable[[str], None]
    jitter: Callable[[], float]
    _recent: OrderedDict[str, Invoice]

    def _now(self) -> str:  # pragma: no cover - the pipeline's
        raise NotImplementedError

    def _load(self, row: dict[str, Any], stage: str,
              read: dict[UUID, Invoice] | None = None) -> Invoice | None:
        """The invoice as the ledger has it now, if it still waits for this stage: the row
        came from a view, and another worker sharing the ledger may have moved it since.
        One this pipeline recorded last, at the row's version, is taken from memory; `read`
        holds invoices just read together (_read)."""
        invoice = self._recent.pop(row["id"], None)
        if invoice is None or invoice.version != row["version"]:
            invoice = (read or {}).get(UUID(row["id"])) or self.ledger.invoice(UUID(row["id"]))
        if not invoice.waiting_for(stage) or invoice.version != row["version"]:
            return None
        return invoice

    def _read(self, rows: list[dict[str, Any]]) -> dict[UUID, Invoice]:
        """The rows' invoices not in memory, read from the ledger in one query."""
        wanted = [UUID(row["id"]) for row in rows if row["id"] not in self._recent]
        return self.ledger.invoices(wanted) if wanted else {}

    def _save(self, *invoices: Invoice) -> bool:
        try:
            self.ledger.save_all(invoices)
            return True
        except ConcurrentChange:
            log.info("another worker moved %s first", ", ".join(i.ref for i in invoices))
            return False

    def _save_chunk(self, invoices: list[Invoice], *, each: bool = True,
                    keep: bool = True) -> list[Invoice]:
        """Record several invoices' new events in one transaction; returns those recorded.
        When another worker moved one of them first, nothing of the chunk is written and,
        with `each`, the others are then recorded (_save_unmoved).
        With `keep`, the next stage takes the recorded invoices from memory (_load)."""
        if not invoices:
            return []
        pending = [(invoice, invoice.collect_events()) for invoice in invoices]
        try:
            self.ledger.save_all([e for _, events in pending for e in events])
            saved = invoices
        except ConcurrentChange:
            if not each:
                log.info("another worker moved one of %s first", invoices[0].ref)
                return []
            saved = self._save_unmoved(pending)
        if keep:
            self._keep(saved)
        return saved

    def _save_unmoved(self, pending: list[tuple[Invoice, list[Any]]]) -> list[Invoice]:
        """After a chunk's save clashed: the invoices whose streams still end where this
        worker read them (one query) saved together, the others left as the other worker
        recorded them. Each one is saved alone only if that clashes too: a transaction per
        invoice, most clashing again, when two workers were on one page."""
        last = self.ledger.last_versions([invoice.id for invoice, _ in pending])
        unmoved = []
        for invoice, events in pending:
            if events and last.get(invoice.id, 0) >= events[0].originator_version:
                log.info("another worker moved %s first", invoice.ref)
            else:
                unmoved.append((invoice, events))
        if not unmoved:
            return []
        try:
            self.ledger.save_all([e for _, events in unmoved for e in events])
            return [invoice for invoice, _ in unmoved]
        except ConcurrentChange:        # moved meanwhile as well
            saved = []
            for invoice, events in unmoved:
                try:
                    self.ledger.save_all(events)
                    saved.append(invoice)
                except ConcurrentChange:
                    log.info("another worker moved %s first", invoice.ref)
            return saved

    def _keep(self, invoices: list[Invoice]) -> None:
        """Invoices just recorded, for the next stage (which would read their events back):
        a few pages' worth, the oldest forgotten first."""
        for invoice in invoices:
            self._recent[str(invoice.id)] = invoice
        while len(self._recent) > 2 * self.settings.page + self.settings.post_batch:
            self._recent.popitem(last=False)

    def _chunks(self, rows: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
        """A page in chunks of save_chunk, starting at a random chunk: workers sharing the
        ledger read the same page, and starting apart they mostly take different chunks."""
        size = self.settings.save_chunk
        chunks = [rows[i:i + size] for i in range(0, len(rows), size)]
        start = int(self.jitter() * len(chunks)) % len(chunks) if len(chunks) > 1 else 0
        return chunks[start:] + chunks[:start]

    def _loaded(self, chunk: list[dict[str, Any]], stage: str) -> list[Invoice] | None:
        """The chunk's invoices still waiting for the stage; None when most were moved by
        another worker already (it is working on this page: read a fresh one instead)."""
        read = self._read(chunk)
        invoices = [i for i in (self._load(row, stage, read) for row in chunk) if i is not None]
        return None if len(invoices) * 2 < len(chunk) else invoices

    async def _run_stage(self, stage: str, label: str,
                         act: Callable[[Invoice], Awaitable[None]]) -> int:
        """A page of the invoices waiting for `stage`, acted on and recorded a chunk at a
        time; returns how many rows the page had."""
        rows = self.queue.ready(stage, self._now(), self.settings.page)
        if rows:
            self.progress(f"{label}: {len(rows)} invoice(s)")
        for chunk in self._chunks(rows):
            await asyncio.sleep(0)      # a batch in flight: read IFS's answer as it comes
            invoices = self._loaded(chunk, stage)
            if invoices is None:
                break
            done: list[Invoice] = []
            try:
                for invoice in invoices:
                    await act(invoice)
                    done.append(invoice)
            finally:                    # IFS gone mid-chunk: what was done is kept
                saved = self._save_chunk(done)
            if len(saved) < len(done):  # another worker is on this page: read a fresh one
                break
        return len(rows)

