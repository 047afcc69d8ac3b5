"""`ml-connector sync --dry-run`: everything a sync does up to the first write to IFS, against
a scratch copy of the ledger, and a plan of what it would post and create.

The real ledger is only read (SQLite: the online backup API; PostgreSQL: its events copied
into a scratch SQLite ledger). Files are downloaded into the scratch folder and never archived
on the SFTP server; IFS sees reads only (adapters/ifs/read_only.py)."""
from __future__ import annotations

import asyncio
import sqlite3
import tempfile
from pathlib import Path
from typing import Any
from uuid import UUID

from adapters.settings import Settings
from evidence import Evidence
from ledger.app import Ledger
from ledger.model import invoice_from_data
from ledger.pipeline import CycleReport
from ledger.ports import ErpFailure, ExportSource, PostingRequest, RemoteFile
from runtime import Runtime

COPY_PAGE = 1000


class ReadOnlySource:
    """The SFTP source with archiving turned off: the dry run moves no file."""

    def __init__(self, inner: ExportSource) -> None:
        self.inner = inner

    def list_files(self, patterns: list[str]) -> list[RemoteFile]:
        return self.inner.list_files(patterns)

    def download(self, name: str, dest_dir: Path) -> Any:
        return self.inner.download(name, dest_dir)

    def archive(self, name: str, archive_dir: str) -> None:
        return None

    def close(self) -> None:
        self.inner.close()


def copy_ledger(real: Ledger, scratch_dir: Path) -> Ledger:
    """A scratch ledger holding the same events (and, for SQLite, the same read models)."""
    target = scratch_dir / "ledger.db"
    if real.url.startswith("sqlite:///"):
        source = sqlite3.connect(f"file:{real.url[len('sqlite:///'):]}?mode=ro", uri=True)
        dest = sqlite3.connect(target)
        try:
            source.backup(dest)
        finally:
            dest.close()
            source.close()
        return Ledger(f"sqlite:///{target}")
    scratch = Ledger(f"sqlite:///{target}")
    start = 1
    while page := real.recorder.select_notifications(start, COPY_PAGE):
        scratch.recorder.insert_events(list(page))
        start = page[-1].id + 1
    return scratch


def notification_count(ledger: Ledger) -> int:
    return ledger.recorder.max_notification_id() or 0


def dry_run(settings: Settings) -> dict[str, Any]:
    """Run the dry run; -> the plan (JSON-ready)."""
    real = Runtime(settings)
    try:
        real_url, before = real.evidence_url, notification_count(real.ledger)
        with tempfile.TemporaryDirectory(prefix="mlc-dry-run-") as scratch_dir:
            scratch = copy_ledger(real.ledger, Path(scratch_dir))
            rt = Runtime(settings, ledger=scratch)
            # The audit key stays bound to the real ledger's name: nothing new in the keyring.
            rt.evidence = Evidence(rt.secrets, real_url)
            rt.evidence.warn_last_verify = False
            try:
                plan = asyncio.run(_drive(rt, Path(scratch_dir)))
            finally:
                rt.close()
    finally:
        real.close()
    plan["ledger_events"] = before
    return plan


async def _drive(rt: Runtime, scratch_dir: Path) -> dict[str, Any]:
    from adapters.ifs import mapping
    from adapters.ifs.read_only import ReadOnlyErp

    erp = ReadOnlyErp(rt.erp())
    rt._erp = erp
    if rt.settings.stampli is not None:
        rt._source = ReadOnlySource(rt.source())
    pipeline = rt.pipeline()
    if pipeline.poller is not None:
        pipeline.poller.settings.download_dir = scratch_dir / "files"
        pipeline.poller.settings.archive_dir = ""
    report = CycleReport()
    try:
        if pipeline.poller is not None:
            polled = await pipeline.poller.poll()
            report.poll = {"listed": polled.listed, "taken": polled.taken,
                           "skipped": polled.skipped, "errors": polled.errors}
        await pipeline.sync_vendors(report)
        await pipeline.resume_parked_reference(report)
        while await pipeline.validate(report) + await pipeline.resolve_vendors(report):
            pass
        assert rt.settings.ifs is not None
        posting = rt.settings.ifs.posting
        invoices = []
        for row in pipeline.queue.ready("post", "9999", 1_000_000):
            invoice = rt.ledger.invoice(UUID(row["id"]))
            content = invoice_from_data(invoice.content)
            request = PostingRequest(ledger_id=str(invoice.id), invoice=content,
                                     supplier_id=invoice.supplier_id)
            doc = mapping.document(request, posting)
            invoices.append({"ref": invoice.ref, "id": str(invoice.id),
                             "supplier": invoice.supplier_id,
                             "supplier_action": _supplier_action(erp.planned, content),
                             "look_up_first": invoice.open_intent is not None,
                             "header": doc.invoice, "lines": doc.lines,
                             "voucher": doc.voucher, "voucher_rows": doc.rows})
    except ErpFailure as exc:       # IFS unreachable as a whole (token, network)
        report.errors.append(f"IFS: {exc}")
        invoices = []
    finally:
        await erp.close()
    return {"dry_run": True, "poll": _poll_brief(report.poll), "would_post": invoices,
            "would_create": erp.planned, "would_fail": report.failed,
            "held_for_approval": report.moved.get("held_for_approval", 0),
            "skipped_before_cutover": report.moved.get("skipped_before_cutover", 0),
            "errors": report.errors + list(report.poll.get("errors", []))}


def _supplier_action(planned: dict[str, list[dict[str, Any]]], content: Any) -> str:
    if any(p["supplier_id"] == content.vendor_id for p in planned["suppliers_created"]):
        return "create"
    if any((p["supplier_id"], p["company"]) == (content.vendor_id, content.company)
           for p in planned["company_links"]):
        return "link_to_company"
    return "existing"


def _poll_brief(poll: dict[str, Any]) -> dict[str, Any]:
    if not poll:
        return {}
    return {"listed": poll["listed"],
            "taken": [{k: len(v) if isinstance(v, list) else v for k, v in t.items()}
                      for t in poll["taken"]],
            "skipped": poll["skipped"]}


def describe(plan: dict[str, Any]) -> list[str]:
    """The plan as lines a person reads before the first real sync."""
    out = ["DRY RUN: nothing was written to IFS, the ledger or the SFTP folder."]
    poll = plan.get("poll") or {}
    if poll:
        out.append(f"Stampli: {poll['listed']} file(s) listed, {len(poll['taken'])} would be"
                   f" taken, {len(poll['skipped'])} skipped")
        for taken in poll["taken"]:
            out.append("  " + ", ".join(f"{k} {v}" for k, v in taken.items()))
    created = plan["would_create"]
    for item in created["suppliers_created"]:
        out.append(f"would create supplier {item['supplier_id']}: {item['fields']}")
    for item in created["company_links"]:
        out.append(f"would connect supplier {item['supplier_id']} to company {item['company']}"
                   f" (currency {item['currency']})")
    for item in created["supplier_updates"]:
        changes = ", ".join(f"{k}: {v['from']!r} -> {v['to']!r}" for k, v in
                            item["changed"].items())
        out.append(f"would update supplier {item['supplier_id']}: {changes}")
    out.append(f"would post {len(plan['would_post'])} invoice(s):")
    for inv in plan["would_post"]:
        head = inv["header"]
        out.append(f"\n  {inv['ref']}  supplier {inv['supplier']} ({inv['supplier_action']})"
                   + ("  [looked up in IFS first: an earlier attempt was interrupted]"
                      if inv["look_up_first"] else ""))
        out.append("    header: " + ", ".join(f"{k}={v}" for k, v in head.items()
                                              if k != "ExternalRef"))
        for line in inv["lines"]:
            out.append("    line:   " + ", ".join(f"{k}={v}" for k, v in line.items()))
        for row in inv["voucher_rows"]:
            out.append("    voucher row: " + ", ".join(f"{k}={v}" for k, v in row.items()))
    for failed in plan["would_fail"]:
        out.append(f"would fail: {failed['invoice']} at {failed['stage']} ({failed['kind']}):"
                   f" {failed['message']}")
    if plan["held_for_approval"]:
        out.append(f"{plan['held_for_approval']} invoice(s) not approved: not posted")
    if plan["skipped_before_cutover"]:
        out.append(f"{plan['skipped_before_cutover']} invoice(s) from before the go-live cutover"
                   " (connector.ignore_approved_before): would be skipped, never posted")
    for error in plan["errors"]:
        out.append(f"error: {error}")
    return out
