"""The posting stage: claim a batch (the write-ahead intent of each invoice is the lock between
workers), send it to IFS in the background while the cycle prepares the next, record every
outcome. Two batches may be in flight, so that IFS works on one while this process records
the other's outcomes. No invoice is posted twice: an invoice with an intent but no outcome is
first looked up in IFS before anything is sent again."""
from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import TYPE_CHECKING, Any

from ledger.chunked import ChunkedStages
from ledger.errors import ConcurrentChange, InvoiceRuleError
from ledger.invoice import Invoice
from ledger.model import invoice_from_data
from ledger.posting_path import PostingPath
from ledger.ports import Erp, ErpFailure, ErpUnavailable, PostingRequest, PostingResult
from ledger.status import Stage

if TYPE_CHECKING:
    from ledger.pipeline import CycleReport

log = logging.getLogger("ml_connector.pipeline")


def stop_if_unavailable(failure: ErpFailure) -> None:
    """IFS as a whole is down, misconfigured or out of this cycle's time: that is no fault of
    the invoice at hand. The cycle stops (and reports it) without recording it on the invoice."""
    if isinstance(failure, ErpUnavailable):
        raise failure


class PostingStage(ChunkedStages):
    erp: Erp
    _sending: deque[tuple[asyncio.Task, set[str]]]    # the batches IFS works on, oldest first

    def _intent_in_flight(self, invoice: Invoice) -> bool:
        """Another worker's intent with nothing recorded after it, younger than the lease,
        may still be waiting for IFS's answer: leave it alone."""
        intent = invoice.open_intent
        if not intent or intent["originator_version"] != invoice.version:
            return False
        if intent.get("worker") == self.settings.worker:
            return False
        return self.clock() - intent["timestamp"].timestamp() < self.settings.intent_lease

    @property
    def _sending_ids(self) -> set[str]:
        return set().union(*(ids for _, ids in self._sending))

    async def post(self, report: CycleReport) -> int:
        """Claim the next batch (intents recorded), then send it in the background: while
        IFS works on it the cycle validates, resolves and claims the next. At most
        `posts_in_flight` batches are in flight: the oldest one's outcomes are recorded
        before another is sent."""
        batch, sending = self.settings.post_batch, self._sending_ids
        rows = [row for row in self.queue.ready(Stage.POST, self._now(), batch + len(sending))
                if row["id"] not in sending][:batch]
        claimed: list[tuple[Invoice, PostingRequest]] = []
        for chunk in self._chunks(rows):
            intended = await self._intend(chunk, report)
            # The intent is the lock: only its winner posts. A chunk another worker claimed
            # first is left whole, and so is the rest of the page (it is on it too).
            saved = self._save_chunk([invoice for invoice, _ in intended], each=False,
                                     keep=False)
            if not saved and intended:
                break
            claimed += intended
        finished = 0
        if self._sending and (not claimed or
                              len(self._sending) >= self.settings.posts_in_flight):
            finished = await self._oldest_sent()
        if not claimed:                 # one more round when a batch just came back
            return finished
        ids = {str(invoice.id) for invoice, _ in claimed}
        self._sending.append((asyncio.create_task(self._send(claimed, report)), ids))
        await asyncio.sleep(0)          # the request goes out before the next stage's work
        return len(claimed)

    async def _oldest_sent(self) -> int:
        """Wait for the oldest batch in flight, its outcomes recorded (its ErpUnavailable
        raised); returns its size."""
        task, ids = self._sending.popleft()
        await task
        return len(ids)

    async def _sent(self) -> None:
        """Wait for every batch in flight, each one's outcomes recorded; then raise the first
        one's ErpUnavailable, if any."""
        first: Exception | None = None
        while self._sending:
            try:
                await self._oldest_sent()
            except Exception as exc:    # the others still get their outcomes recorded
                first = first or exc
        if first is not None:
            raise first

    async def _send(self, claimed: list[tuple[Invoice, PostingRequest]],
                    report: CycleReport) -> None:
        self.progress(f"post: sending {len(claimed)} invoice(s) to IFS")
        try:
            results = await self.erp.post([request for _, request in claimed])
        except ErpUnavailable as exc:   # nothing was sent: the intents still get an outcome
            results = [exc] * len(claimed)
        self._record_paths()
        for (invoice, _), result in zip(claimed, results):
            if isinstance(result, PostingResult):
                self._record_posted(invoice, result, report)
            else:
                self._fail(invoice, Stage.POST, result, report)
        self._save_chunk([invoice for invoice, _ in claimed], keep=False)  # intents: the lock
        posted = sum(isinstance(r, PostingResult) for r in results)
        self.progress(f"post: {posted} posted, {len(results) - posted} failed")
        for result in results:
            if isinstance(result, ErpUnavailable):
                raise result

    async def _intend(self, chunk: list[dict[str, Any]], report: CycleReport
                      ) -> list[tuple[Invoice, PostingRequest]]:
        """The chunk's invoices to post, each with its intent recorded in memory (not saved)."""
        intended = []
        read = self._read(chunk)
        for row in chunk:
            invoice = self._load(row, Stage.POST, read)
            if invoice is None or invoice.posted is not None or self._intent_in_flight(invoice):
                continue
            request = PostingRequest(ledger_id=str(invoice.id),
                                     invoice=invoice_from_data(invoice.content),
                                     supplier_id=invoice.supplier_id)
            looked_up = False
            if invoice.open_intent is not None:   # IFS may hold it already: look first
                found = await self._look_up(invoice, request, report)
                if found:
                    continue
                looked_up = True
            if self._held_for_approval(invoice, report) or \
                    self._before_cutover(invoice, report):
                self._save(invoice)
                continue
            try:
                invoice.intend_posting(self.settings.worker, looked_up=looked_up,
                                       approved_statuses=self.settings.approved_statuses)
            except InvoiceRuleError:
                continue
            intended.append((invoice, request))
        return intended

    def _record_paths(self) -> None:
        """How the ERP learned to post (issue 13): on the service's own stream, so it is in the
        audit trail and the next process starts from it; never an invoice attempt."""
        learned = getattr(self.erp, "learned_paths", None)
        for service, path, reason in (learned() if learned is not None else []):
            stream = self.ledger.posting_path(service) or PostingPath.open(service)
            if stream.choose(path, reason, self._now()):
                try:
                    self.ledger.record(stream)
                except ConcurrentChange:       # another worker recorded it first
                    pass

    async def _look_up(self, invoice: Invoice, request: PostingRequest,
                       report: CycleReport) -> bool:
        try:
            found = await self.erp.find_posted(request)
        except ErpFailure as failure:
            stop_if_unavailable(failure)
            self._fail(invoice, Stage.POST, failure, report)
            self._save(invoice)
            return True
        if found is None:
            return False
        self._record_posted(invoice, found, report)
        self._save(invoice)
        return True

    def _record_posted(self, invoice: Invoice, result: PostingResult,
                       report: CycleReport) -> None:
        invoice.post(result.ifs_invoice_id, result.voucher, result.etags, result.exchanges,
                     found_existing=result.found_existing)
        report.count("posted")
        log.info("%s posted: IFS invoice %s, voucher %s%s", invoice.ref, result.ifs_invoice_id,
                 result.voucher.get("VoucherNo", "-"),
                 " (found in IFS after an interrupted attempt)" if result.found_existing else "",
                 extra={"event": "invoice_posted", "invoice": invoice.ref,
                        "ifs_invoice_id": result.ifs_invoice_id})

