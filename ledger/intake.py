"""Recording what an export file says: invoices (Discovered + Parsed, duplicates, amendments,
changes after posting) and vendors, in batches of many invoices per transaction.

A crash part-way leaves whole batches recorded and the file without its Parsed event, so the
next poll processes the file again and the invoices already recorded come out as duplicates.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any
from uuid import UUID

import msgspec

from ledger import new_invoice
from ledger.app import Ledger
from ledger.errors import ConcurrentChange
from ledger.files import ExportFile
from ledger.gcpause import gc_paused
from ledger.invoice import Invoice
from ledger.model import (ParsedInvoice, RejectedRow, VendorRecord,
                          invoice_to_data, vendor_stream_id)
from ledger.new_invoice import ExportFileRef, PreparedInvoice
from ledger.persistence import iter_chunks
from ledger.signing import Unsealed
from ledger.status import NEEDS_A_PERSON
from ledger.vendor import Vendor

# Invoices per transaction. Each commit is an fsync, and, events being keyed by random UUIDs,
# rewrites most of the primary-key index into the WAL: on 100k invoices 2000 per batch wrote
# 680 MB for a 220 MB database, 5000 wrote 565 MB (10,000: 510 MB, but peak RSS 220 MB
# instead of 130 MB).
BATCH_SIZE = 5_000
MAX_REJECTED_ROWS_KEPT = 1000          # on the file's event; the rest are counted
MAX_FAILED_LISTED = 1000               # invoices a file left failed, listed by `sync`
MAX_ROWS_LISTED = 1000                 # rows not recorded, listed by `sync` (all are counted)


@gc_paused()
def record_invoice_file(ledger: Ledger, export_file: ExportFile,
                        items: Iterable[ParsedInvoice | PreparedInvoice | RejectedRow],
                        approved_statuses: Iterable[str], batch_size: int = BATCH_SIZE,
                        superseded: Callable[[Invoice], bool] | None = None) -> dict[str, Any]:
    """`superseded(invoice)`: the ledger holds newer content for it than this file (a file
    read again long after it was rejected); such invoices are counted and left as they are."""
    approved = frozenset(approved_statuses)
    counts: Counter[str] = Counter()
    rejected: list[dict[str, Any]] = []
    failed: list[dict[str, str]] = []
    # Most invoices of an export are new, and then asking the ledger which of a batch it
    # holds costs more than storing them: a batch is first saved as if none were recorded
    # (a recorded one makes the save fail whole, nothing written), and from the first batch
    # that fails on, each batch asks first.
    ask = False
    for chunk in iter_chunks(items, batch_size):
        ids = [None if isinstance(item, RejectedRow) else item.id for item in chunk]
        batch = None
        if not ask:
            batch = _Batch(ledger, export_file, approved, superseded, chunk, ids, set())
            try:
                ledger.save_all(batch.pending)
            except ConcurrentChange:
                ask, batch = True, None
        if batch is None:
            # One query for the whole batch: only invoices already in the ledger are loaded.
            recorded = ledger.recorded(i for i in ids if i is not None)
            batch = _Batch(ledger, export_file, approved, superseded, chunk, ids, recorded)
            ledger.save_all(batch.pending)
        counts.update(batch.counts)
        rejected.extend(batch.rejected[:MAX_REJECTED_ROWS_KEPT - len(rejected)])
        failed.extend(batch.failing[:MAX_FAILED_LISTED - len(failed)])
    export_file.record_parsed(records=sum(counts.values()) - counts["rejected_rows"],
                              invoices_new=counts["parsed"], duplicates=counts["duplicate"],
                              amendments=counts["amended"], rejected_rows=rejected)
    ledger.save_all([export_file])
    return {"file": export_file.name, "invoices_new": counts["parsed"],
            "duplicates": counts["duplicate"], "amendments": counts["amended"],
            "changed_after_posting": counts["changed_after_posting"],
            "rejected_rows": counts["rejected_rows"], "superseded": counts["superseded"],
            "rejected_rows_listed": rejected[:MAX_ROWS_LISTED], "failed": failed}


class _Batch:
    """What a batch of items adds to the ledger (`pending`, for one save), given which of its
    invoices the ledger holds (`recorded`), with its counts, rejected rows and failures."""

    def __init__(self, ledger: Ledger, export_file: ExportFile, approved: frozenset[str],
                 superseded: Callable[[Invoice], bool] | None, chunk: list[Any],
                 ids: list[UUID | None], recorded: set[UUID]) -> None:
        self.pending: list[Any] = []
        self.counts: Counter[str] = Counter()
        self.rejected: list[dict[str, Any]] = []
        self.failing: list[dict[str, str]] = []
        pending, counts, failing = self.pending, self.counts, self.failing
        for item, id in zip(chunk, ids):
            if id is None:
                counts["rejected_rows"] += 1
                self.rejected.append({"line": item.line, "field": item.field,
                                      "message": item.message})
                continue
            if item.__class__ is PreparedInvoice:      # encoded by the reader's worker
                if id not in recorded and item.states is not None \
                        and item.approval_status in approved:
                    pending.extend(_encoded(id, item.states))
                    counts["parsed"] += 1
                    continue
                item = item.parsed()
            found = ledger.find_invoice(id) if id in recorded else None
            if found is not None and superseded is not None and superseded(found):
                counts["superseded"] += 1
                continue
            if found is not None:
                outcome, invoice = _take(export_file, item, found, approved)
                pending.append(invoice)
                if outcome != "duplicate" and invoice.state in NEEDS_A_PERSON:
                    failing.append(_failure(invoice.ref, invoice.row["failure_kind"],
                                            invoice.row["failure_message"]))
            else:
                outcome = "parsed"
                events = _new(export_file, item, id, approved)
                pending.extend(events)
                if isinstance(events[-1], Invoice.Failed):
                    failing.append(_failure(item.invoice.ref, "data", events[-1].message))
            counts[outcome] += 1


def _failure(ref: str, kind: str, message: str) -> dict[str, str]:
    """An invoice this file left failed or needing attention, as `sync` reports failures."""
    return {"invoice": ref, "stage": "intake", "kind": kind, "message": message}


def _new(export_file: ExportFile, item: ParsedInvoice, id: UUID,
         approved: frozenset[str]) -> list[Any]:
    """The events of an invoice the ledger does not hold yet: what _take records for it,
    without building the aggregate (see Invoice.discovered_events and ledger/new_invoice.py)."""
    canonical = item.invoice
    is_approved = canonical.approval_status in approved
    if item.violations or not is_approved:         # a third event: built as objects
        return Invoice.discovered_events(
            id, company=canonical.company, vendor_id=canonical.vendor_id,
            document_type=canonical.document_type, invoice_number=canonical.invoice_number,
            file_name=export_file.name, file_sha256=export_file.sha256,
            locations=list(item.locations), invoice=invoice_to_data(canonical),
            content_hash=item.content_hash,
            violations=_violations(item), approved=is_approved)
    return _encoded(id, new_invoice.states(item, ExportFileRef(export_file.name,
                                                               export_file.sha256)))


def _encoded(id: UUID, states: tuple[bytes, bytes]) -> list[Unsealed]:
    discovered, parsed = states
    return [Unsealed(id, 1, new_invoice.DISCOVERED, discovered),
            Unsealed(id, 2, new_invoice.PARSED, parsed)]


def _violations(item: ParsedInvoice) -> list[dict[str, Any]]:
    return [{"rule": v.rule, "field": v.field, "message": v.message, "line": v.line}
            for v in item.violations]


def _take(export_file: ExportFile, item: ParsedInvoice, invoice: Invoice,
          approved: frozenset[str]) -> tuple[str, Invoice]:
    """What one parsed invoice adds to the stream of an invoice already recorded."""
    canonical = item.invoice
    outcome = invoice.take_content(
        invoice_to_data(canonical), item.content_hash, _violations(item),
        file_name=export_file.name, file_sha256=export_file.sha256,
        locations=list(item.locations), approved=canonical.approval_status in approved)
    return outcome, invoice


def record_vendor_file(ledger: Ledger, export_file: ExportFile,
                       items: Iterable[VendorRecord | RejectedRow],
                       only_new: bool = False) -> dict[str, Any]:
    """`only_new`: vendors already in the ledger are left as they are (a file read again long
    after it was rejected must not put older vendor data back)."""
    counts: Counter[str] = Counter()
    rejected: list[dict[str, Any]] = []
    for chunk in iter_chunks(items, BATCH_SIZE):
        changed = []
        for item in chunk:
            if isinstance(item, RejectedRow):
                counts["rejected_rows"] += 1
                rejected.append({"line": item.line, "field": item.field, "message": item.message})
                continue
            record = msgspec.to_builtins(msgspec.structs.replace(item, source_line=0))
            vendor = ledger.vendor(item.vendor_id)
            if vendor is None:
                vendor = Vendor.see(vendor_stream_id(item.vendor_id), item.vendor_id, record,
                                    export_file.name)
                counts["new"] += 1
            elif only_new:
                counts["superseded"] += 1
                continue
            elif vendor.update_record(record, export_file.name):
                counts["changed"] += 1
            else:
                counts["unchanged"] += 1
                continue
            changed.append(vendor)
        ledger.save_all(changed)
    export_file.record_parsed(records=counts["new"] + counts["changed"] + counts["unchanged"]
                              + counts["superseded"], invoices_new=0,
                              duplicates=counts["unchanged"],
                              amendments=counts["changed"],
                              rejected_rows=rejected[:MAX_REJECTED_ROWS_KEPT])
    ledger.save_all([export_file])
    return {"file": export_file.name, "vendors_new": counts["new"],
            "vendors_changed": counts["changed"], "vendors_superseded": counts["superseded"],
            "rejected_rows": counts["rejected_rows"],
            "rejected_rows_listed": rejected[:MAX_ROWS_LISTED]}
