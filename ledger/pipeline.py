"""The stages that move invoices on, driven by the ledger: each takes the invoices waiting for
it (the work queue says which, never a list kept in memory), acts through a port, and records
the next event, a chunk of invoices per transaction (ledger/chunked.py). Posting is in
ledger/posting_stage.py.

    poll -> Discovered/Parsed -> validate -> Validated -> resolve vendor -> VendorResolved
         -> intend (write-ahead) -> post -> Posted | Failed

Only approved content reaches IFS: each stage checks the approval of the content it acts on
(whatever a replay or an amendment did before) and puts anything else back to waiting for
approval; the posting intent itself refuses content that is not approved.

No invoice is posted twice: the PostingIntended event is recorded before any write to IFS
(optimistic concurrency makes it a lock between processes), and an invoice with an intent
but no outcome is first looked up in IFS before anything is sent again.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from ledger.app import Ledger
from ledger.errors import ConcurrentChange
from ledger.invoice import Invoice
from ledger.model import VendorRecord, invoice_from_data
from ledger.poller import Poller
from ledger.posting_stage import PostingStage, stop_if_unavailable
from ledger.replay import replay_command
from ledger.ports import Erp, ErpFailure, SourceError, SupplierResolution, WorkQueue
from ledger.status import Stage
from ledger.vendor import Vendor

log = logging.getLogger("ml_connector.pipeline")


@dataclass
class PipelineSettings:
    worker: str
    max_attempts: int = 8
    retry_base: float = 30.0
    retry_max: float = 3600.0
    intent_lease: float = 120.0        # an intent younger than this may still be in flight
    post_batch: int = 200
    posts_in_flight: int = 2           # IFS works on one batch while the other's is recorded
    page: int = 500
    # Invoices a stage records per transaction: a commit (an fsync, a round trip to
    # PostgreSQL) per invoice cost more than the stage's own work.
    save_chunk: int = 100
    reference_retry: float = 900.0     # a reference refused at posting: tried again this late
    # Stampli approval statuses that let an invoice go to IFS ([stampli.invoices]).
    approved_statuses: tuple[str, ...] = ("Approved",)
    # Go-live cutover (connector.ignore_approved_before / cutover_date): "" is none.
    ignore_before: str = ""
    cutover_date: str = "approved"


@dataclass
class CycleReport:
    poll: dict[str, Any] = field(default_factory=dict)
    moved: dict[str, int] = field(default_factory=dict)
    failed: list[dict[str, str]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def count(self, what: str, n: int = 1) -> None:
        self.moved[what] = self.moved.get(what, 0) + n


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).isoformat()


class Pipeline(PostingStage):
    def __init__(self, ledger: Ledger, erp: Erp, queue: WorkQueue, settings: PipelineSettings,
                 poller: Poller | None = None, clock: Callable[[], float] = time.time,
                 jitter: Callable[[], float] = random.random,
                 progress: Callable[[str], None] | None = None) -> None:
        self.ledger, self.erp, self.queue, self.settings = ledger, erp, queue, settings
        self.poller, self.clock, self.jitter = poller, clock, jitter
        self.progress = progress or (lambda line: None)   # one line per stage (sync, stderr)
        self.stopping = asyncio.Event()
        self._sending: deque[tuple[asyncio.Task, set[str]]] = deque()  # see PostingStage
        self._recent: OrderedDict[str, Invoice] = OrderedDict()   # see _keep

    # ------------------------------------------------------------------ the cycle

    async def cycle(self) -> CycleReport:
        report = CycleReport()
        if self.poller is not None:
            try:
                polled = await self.poller.poll()
                for summary in polled.taken:      # invoices a file itself left failed
                    report.failed.extend(summary.pop("failed", []))
                report.poll = {"listed": polled.listed, "taken": polled.taken,
                               "skipped": polled.skipped, "errors": polled.errors}
                self.progress(f"poll: {polled.listed} file(s) listed, {len(polled.taken)} taken")
            except SourceError as exc:
                report.errors.append(f"Stampli SFTP: {exc}")
        if self.stopping.is_set():
            return report
        try:
            await self.sync_vendors(report)
            await self.resume_parked_reference(report)
            try:
                while not self.stopping.is_set():
                    moved = (await self.validate(report) + await self.resolve_vendors(report)
                             + await self.post(report))
                    if not moved:
                        break
            except BaseException:
                # The batch in flight gets its outcome recorded all the same; the cycle ends
                # on the error that stopped it.
                with contextlib.suppress(ErpFailure):
                    await self._sent()
                raise
            await self._sent()
        except ErpFailure as exc:       # IFS unreachable as a whole (token, network, deadline)
            report.errors.append(f"IFS: {exc}")
            self.progress(f"IFS: stopped calling IFS for this cycle: {exc}")
        return report

    def _now(self) -> str:
        return _iso(self.clock())

    def _fail(self, invoice: Invoice, stage: str, failure: ErpFailure,
              report: CycleReport) -> None:
        attempt = invoice.row["attempts"] + 1
        retry_at = None
        message = failure.message
        if failure.kind == "transient":
            if attempt < self.settings.max_attempts:
                delay = min(self.settings.retry_max, self.settings.retry_base * 2 ** (attempt - 1))
                retry_at = _iso(self.clock() + delay * (0.5 + self.jitter() / 2))
            else:
                message += (f" (gave up after {attempt} attempts; {replay_command(invoice.ref)}"
                            " once IFS answers again)")
        elif failure.kind == "reference" and stage == Stage.POST:
            # IFS refused something the cached reference data could not show (a tax code, a
            # blocked account): often put right in IFS soon after. Tried again once per
            # reference refresh, a bounded number of times, then parked for a person.
            if attempt < self.settings.max_attempts:
                retry_at = _iso(self.clock() + self.settings.reference_retry)
        invoice.fail(stage, failure.kind, message, code=failure.code, next_retry_at=retry_at,
                     exchanges=failure.exchanges)
        report.failed.append({"invoice": invoice.ref, "stage": stage, "kind": failure.kind,
                              "message": message})
        log.warning("%s failed at %s (%s): %s", invoice.ref, stage, failure.kind, message,
                    extra={"event": "invoice_failed", "invoice": invoice.ref, "stage": stage,
                           "kind": failure.kind})

    def _held_for_approval(self, invoice: Invoice, report: CycleReport) -> bool:
        """Content that is not approved goes back to waiting for approval instead of on to
        IFS: not a failure, nothing for a person to replay; an approved export moves it on."""
        problem = invoice.approval_problem(self.settings.approved_statuses)
        if not problem:
            return False
        invoice.hold_for_approval()
        report.count("held_for_approval")
        log.warning("%s: %s", invoice.ref, problem,
                    extra={"event": "invoice_held_for_approval", "invoice": invoice.ref})
        return True

    def _before_cutover(self, invoice: Invoice, report: CycleReport) -> bool:
        """Go-live: an invoice approved (or dated) before the cutover was keyed in IFS by
        hand; it is recorded as skipped and never posted. One with no such date to compare
        cannot be judged: it is parked for a person rather than risk a double entry."""
        cutover, field_name = self.settings.ignore_before, self.settings.cutover_date
        if not cutover:
            return False
        day = invoice.cutover_date(field_name)
        what = "approved" if field_name == "approved" else "dated"
        if not day:
            column = "approval date" if field_name == "approved" else "invoice date"
            self._fail(invoice, "validate", ErpFailure(
                "data", f"the export gives no {column} to compare with the go-live cutover"
                f" (connector.ignore_approved_before = {cutover}); correct it in Stampli and"
                " re-export it, or set connector.cutover_date to the other date"), report)
            return True
        if day >= cutover:
            return False
        reason = (f"{what} {day}, before the go-live cutover {cutover}"
                  " (connector.ignore_approved_before): never posted")
        invoice.skip(reason, cutover=cutover, date_field=field_name, date=day)
        report.count("skipped_before_cutover")
        log.info("%s skipped: %s", invoice.ref, reason,
                 extra={"event": "invoice_skipped", "invoice": invoice.ref})
        return True

    # ------------------------------------------------------------------ validate

    async def _validate_one(self, invoice: Invoice, report: CycleReport) -> None:
        if invoice.violations:
            self._fail(invoice, Stage.VALIDATE, ErpFailure("data", "the invoice still breaks the"
                       " export rules; correct it in Stampli and re-export it"), report)
            return
        if self._held_for_approval(invoice, report) or self._before_cutover(invoice, report):
            return
        try:
            outcome = await self.erp.validate(invoice_from_data(invoice.content))
        except ErpFailure as failure:
            stop_if_unavailable(failure)
            self._fail(invoice, Stage.VALIDATE, failure, report)
            return
        invoice.validate(outcome.checks, outcome.snapshot)
        report.count("validated")

    async def validate(self, report: CycleReport) -> int:
        return await self._run_stage(Stage.VALIDATE, "validate",
                                     lambda invoice: self._validate_one(invoice, report))

    async def resume_parked_reference(self, report: CycleReport) -> None:
        """A `reference` failure moves again by itself once IFS has the missing value. Every
        parked invoice is looked at each cycle, page by page (validation reads the cached
        reference data), each once: one failing anew goes to the end of the order."""
        after: tuple[str, str] | None = None
        seen: set[str] = set()
        while rows := self.queue.parked("reference", self.settings.page, after):
            after = (rows[-1]["updated_at"], rows[-1]["id"])
            for row in rows:
                if row["id"] not in seen:
                    seen.add(row["id"])
                    await self._resume_one(row, report)

    async def _resume_one(self, row: dict[str, Any], report: CycleReport) -> None:
        invoice = self._load(row, row["stage"])
        if invoice is None:
            return
        if self._held_for_approval(invoice, report) or (
                row["stage"] == "validate" and self._before_cutover(invoice, report)):
            self._save(invoice)
            return
        try:
            if row["stage"] == Stage.VALIDATE:
                outcome = await self.erp.validate(invoice_from_data(invoice.content))
                invoice.validate(outcome.checks, outcome.snapshot)
            elif row["stage"] == Stage.RESOLVE_VENDOR:
                await self._resolve_one(invoice, {})
            else:
                return
        except ErpFailure as failure:
            stop_if_unavailable(failure)
            if failure.kind == "reference" and failure.message == row["failure_message"]:
                return                 # still missing: nothing new to record
            self._fail(invoice, row["stage"], failure, report)
        else:
            report.count("resumed")
        self._save(invoice)

    # ------------------------------------------------------------------ vendors

    async def sync_vendors(self, report: CycleReport) -> None:
        """Vendor-file changes (name, address, tax id) applied to the IFS supplier."""
        vendor_ids = list(self.queue.vendors_to_sync())
        if vendor_ids:
            self.progress(f"vendors: {len(vendor_ids)} to sync with IFS")
        for vendor_id in vendor_ids:
            vendor = self.ledger.vendor(vendor_id)
            if vendor is None:
                continue
            try:
                outcome = await self.erp.sync_vendor(VendorRecord(**vendor.record))
            except ErpFailure as failure:
                stop_if_unavailable(failure)
                if failure.message == vendor.last_failure:
                    continue
                vendor.sync_failed(failure.kind, failure.message)
                log.warning("vendor %s not synced: %s", vendor_id, failure.message)
            else:
                vendor.synced(outcome.get("supplier_id", ""), outcome.get("action", ""),
                              list(outcome.get("fields", [])))
                if outcome.get("action") == "updated":
                    report.count("vendors_updated")
            try:
                self.ledger.save_all([vendor])
            except ConcurrentChange:
                continue

    async def _resolve_one(self, invoice: Invoice, cache: dict[tuple[str, str], Any]) -> None:
        content = invoice_from_data(invoice.content)
        key = (content.company, content.vendor_id)
        if key not in cache:
            vendor = self.ledger.vendor(content.vendor_id)
            record = VendorRecord(**vendor.record) if vendor is not None else None
            cache[key] = await self.erp.resolve_supplier(content, record)
            exchanges = cache[key].exchanges
            if vendor is not None and cache[key].how == "created":
                self._note_vendor_created(vendor, cache[key])
        else:
            exchanges = []
        resolution = cache[key]
        invoice.resolve_vendor(resolution.supplier_id, resolution.how, exchanges)

    def _note_vendor_created(self, vendor: Vendor, resolution: SupplierResolution) -> None:
        """The vendor's own stream says IFS now has the supplier this connector created from
        its current record (which fields). A link to one more company is not a sync of the
        record: it is on the invoice's VendorResolved event only, so a pending update of the
        supplier is still sent."""
        fields = sorted(k for k, v in vendor.record.items()
                        if v not in ("", None) and k != "source_line")
        vendor.synced(resolution.supplier_id, "created", fields)
        try:
            self.ledger.record(vendor)
        except ConcurrentChange:        # another worker noted it first
            log.info("vendor %s: another worker recorded its sync", vendor.vendor_id)

    async def resolve_vendors(self, report: CycleReport) -> int:
        cache: dict[tuple[str, str], Any] = {}
        return await self._run_stage(
            Stage.RESOLVE_VENDOR, "resolve vendors",
            lambda invoice: self._resolve_or_hold(invoice, cache, report))

    async def _resolve_or_hold(self, invoice: Invoice, cache: dict[tuple[str, str], Any],
                               report: CycleReport) -> None:
        if self._held_for_approval(invoice, report):   # before any supplier is written
            return
        try:
            await self._resolve_one(invoice, cache)
            report.count("vendor_resolved")
        except ErpFailure as failure:
            stop_if_unavailable(failure)
            self._fail(invoice, Stage.RESOLVE_VENDOR, failure, report)

    # ------------------------------------------------------------------ post
