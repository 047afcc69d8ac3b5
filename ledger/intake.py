"""Recording what an export file says: invoices (Discovered + Parsed, duplicates, amendments,
changes after posting) and vendors, in batches of many invoices per transaction.

A crash part-way leaves whole batches recorded and the file without its Parsed event, so the
next poll processes the file again and the invoices already recorded come out as duplicates.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

import msgspec

from ledger.app import Ledger, iter_chunks
from ledger.files import ExportFile
from ledger.invoice import Invoice
from ledger.model import (ParsedInvoice, RejectedRow, VendorRecord, content_hash,
                          invoice_to_data, vendor_stream_id)
from ledger.vendor import Vendor

BATCH_SIZE = 500
MAX_REJECTED_ROWS_KEPT = 1000          # on the file's event; the rest are counted


def record_invoice_file(ledger: Ledger, export_file: ExportFile,
                        items: Iterable[ParsedInvoice | RejectedRow],
                        approved_statuses: Iterable[str],
                        batch_size: int = BATCH_SIZE) -> dict[str, Any]:
    approved = frozenset(approved_statuses)
    counts: Counter[str] = Counter()
    rejected: list[dict[str, Any]] = []
    pending: list[Any] = []
    for chunk in iter_chunks(items, batch_size):
        pending = []
        for item in chunk:
            if isinstance(item, RejectedRow):
                counts["rejected_rows"] += 1
                if len(rejected) < MAX_REJECTED_ROWS_KEPT:
                    rejected.append({"line": item.line, "field": item.field,
                                     "message": item.message})
                continue
            outcome, invoice = _take(ledger, export_file, item, approved)
            counts[outcome] += 1
            pending.append(invoice)
        ledger.save_all(pending)
    export_file.record_parsed(records=sum(counts.values()) - counts["rejected_rows"],
                              invoices_new=counts["parsed"], duplicates=counts["duplicate"],
                              amendments=counts["amended"], rejected_rows=rejected)
    ledger.save_all([export_file])
    return {"file": export_file.name, "invoices_new": counts["parsed"],
            "duplicates": counts["duplicate"], "amendments": counts["amended"],
            "changed_after_posting": counts["changed_after_posting"],
            "rejected_rows": counts["rejected_rows"]}


def _take(ledger: Ledger, export_file: ExportFile, item: ParsedInvoice,
          approved: frozenset[str]) -> tuple[str, Invoice]:
    canonical = item.invoice
    invoice = ledger.find_invoice(canonical.id)
    if invoice is None:
        invoice = Invoice.discover(
            canonical.id, company=canonical.company, vendor_id=canonical.vendor_id,
            document_type=canonical.document_type, invoice_number=canonical.invoice_number,
            file_name=export_file.name, file_sha256=export_file.sha256,
            locations=list(item.locations))
    violations = [{"rule": v.rule, "field": v.field, "message": v.message, "line": v.line}
                  for v in item.violations]
    outcome = invoice.take_content(
        invoice_to_data(canonical), content_hash(canonical), violations,
        file_name=export_file.name, file_sha256=export_file.sha256,
        locations=list(item.locations), approved=canonical.approval_status in approved)
    return outcome, invoice


def record_vendor_file(ledger: Ledger, export_file: ExportFile,
                       items: Iterable[VendorRecord | RejectedRow]) -> dict[str, Any]:
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
            elif vendor.update_record(record, export_file.name):
                counts["changed"] += 1
            else:
                counts["unchanged"] += 1
                continue
            changed.append(vendor)
        ledger.save_all(changed)
    export_file.record_parsed(records=counts["new"] + counts["changed"] + counts["unchanged"],
                              invoices_new=0, duplicates=counts["unchanged"],
                              amendments=counts["changed"],
                              rejected_rows=rejected[:MAX_REJECTED_ROWS_KEPT])
    ledger.save_all([export_file])
    return {"file": export_file.name, "vendors_new": counts["new"],
            "vendors_changed": counts["changed"], "rejected_rows": counts["rejected_rows"]}
