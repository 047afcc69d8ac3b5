"""Polling Stampli's outbound folder: list, wait for files to be stable, download, record.

A file is taken only when it is older than `min_file_age` and its size and mtime are the same
on two looks `stable_wait` apart. A file already taken (same name, size and mtime, or same
content) is not processed again — across restarts, since "taken" lives in the ledger. A file
skipped as too young says when it is old enough (`ready_at`), so the daemon can come back for
it then rather than a whole schedule later.
Every poll is recorded as a PollRun, with what was listed, taken, skipped and why.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from uuid import UUID

from ledger.app import Ledger
from ledger.errors import ConcurrentChange
from ledger.files import ExportFile, PollRun
from ledger.intake import record_invoice_file, record_vendor_file
from ledger.invoice import Invoice
from ledger.model import RejectedRow, export_file_id
from ledger.new_invoice import ExportFileRef
from ledger.ports import (ExportReaders, ExportSource, RemoteFile, SourceError, UnreadableFile,
                          WorkQueue)

log = logging.getLogger("ml_connector.poller")
KIND_ORDER = {"vendors": 0, "purchase_orders": 1, "invoices": 2}
FUTURE_MTIME_TOLERANCE = 60.0   # seconds; below that, ordinary clock drift says nothing


@dataclass
class PollSettings:
    source_name: str
    min_file_age: float
    stable_wait: float
    download_dir: Path
    archive_dir: str
    approved_statuses: list[str]


@dataclass
class PollResult:
    listed: int = 0
    taken: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def ready_at(self) -> datetime | None:
        return earliest_ready(self.skipped)


def earliest_ready(skipped: list[dict[str, Any]]) -> datetime | None:
    """When the first file skipped as too young becomes old enough to be taken."""
    moments = [datetime.fromisoformat(s["ready_at"]) for s in skipped if s.get("ready_at")]
    return min(moments, default=None)


def young_names(skipped: list[dict[str, Any]], shown: int = 5) -> str:
    """The files skipped as too young, for a log line: the first few, then how many more."""
    names = [s["name"] for s in skipped if s.get("ready_at")]
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more


def _now_iso() -> str:
    return datetime.now(timezone.utc).isoformat()


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).isoformat()


class Poller:
    def __init__(self, ledger: Ledger, source: ExportSource, readers: ExportReaders,
                 queue: WorkQueue, settings: PollSettings,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                 clock: Callable[[], float] = time.time) -> None:
        self.ledger, self.source, self.readers = ledger, source, readers
        self.queue, self.settings = queue, settings
        self.sleep, self.clock = sleep, clock

    async def poll(self) -> PollResult:
        run = PollRun.start(self.settings.source_name, _now_iso())
        self.ledger.record(run)
        result = PollResult()
        listed: list[RemoteFile] = []
        await self._reread_rejected(result)
        try:
            listed = await asyncio.to_thread(self.source.list_files, self.readers.patterns())
            result.listed = len(listed)
            for remote in await self._stable(listed, result):
                await self._take(remote, result)
        except SourceError as exc:
            result.errors.append(str(exc))
            log.warning("polling %s failed: %s", self.settings.source_name, exc)
        run.finish(listed=[{"name": f.name, "size": f.size, "mtime": f.mtime} for f in listed],
                   taken=[t["file"] for t in result.taken], skipped=result.skipped,
                   errors=result.errors, ended_at=_now_iso())
        self.ledger.record(run)
        if result.errors and not result.taken and not listed:
            raise SourceError(result.errors[0])
        return result

    async def _stable(self, listed: list[RemoteFile], result: PollResult) -> list[RemoteFile]:
        candidates = []
        now = self.clock()
        for remote in listed:
            if remote.problem:     # e.g. a name that is not UTF-8: this file only is left
                result.skipped.append({"name": remote.name, "reason": remote.problem,
                                       "problem": True})
                log.warning("skipping %s: %s", remote.name, remote.problem)
        ours = [f for f in listed if not f.problem and self.readers.kind_of(f.name) is not None]
        taken = await asyncio.to_thread(self.queue.taken_files,
                                        [(f.name, f.size, f.mtime) for f in ours])
        for remote in ours:
            if remote.name in taken:
                result.skipped.append({"name": remote.name, "reason": "already taken"})
            elif now - remote.mtime < self.settings.min_file_age:
                ready = remote.mtime + self.settings.min_file_age
                result.skipped.append({"name": remote.name, "reason": "younger than min_file_age",
                                       "ready_at": _iso(ready)})
                if remote.mtime > now + FUTURE_MTIME_TOLERANCE:
                    log.warning("%s was modified %ds in the future by our clock (is the SFTP "
                                "server's clock ahead?); it is taken once it is older than "
                                "min_file_age by our clock", remote.name, remote.mtime - now,
                                extra={"event": "mtime_in_future", "file": remote.name})
            else:
                candidates.append(remote)
        if not candidates:
            return []
        # The second look: a file still being written changes size or mtime in between.
        await self.sleep(self.settings.stable_wait)
        again = {f.name: f for f in await asyncio.to_thread(
            self.source.list_files, self.readers.patterns())}
        stable = []
        for remote in candidates:
            second = again.get(remote.name)
            if second is None:
                result.skipped.append({"name": remote.name, "reason": "gone before download"})
            elif (second.size, second.mtime) != (remote.size, remote.mtime):
                result.skipped.append({"name": remote.name, "reason": "still changing"})
            else:
                stable.append(remote)
        return sorted(stable, key=lambda f: (KIND_ORDER[self.readers.kind_of(f.name) or ""],
                                             f.mtime, f.name))

    async def _take(self, remote: RemoteFile, result: PollResult) -> None:
        kind = self.readers.kind_of(remote.name) or ""
        try:
            local = await asyncio.to_thread(self.source.download, remote.name,
                                            self.settings.download_dir)
        except SourceError as exc:
            result.errors.append(f"{remote.name}: {exc}")
            log.warning("download failed: %s", exc,
                        extra={"event": "download_failed", "file": remote.name})
            return
        file_id = export_file_id(remote.name, local.sha256)
        export_file = self.ledger.export_file(file_id)
        if export_file is not None and export_file.outcome:
            result.skipped.append({"name": remote.name, "reason": "same content already taken"})
            await self._archive(export_file)
            return
        if export_file is None:
            export_file = ExportFile.download(
                file_id, name=remote.name, kind=kind, size=local.size, mtime=remote.mtime,
                sha256=local.sha256, local_path=str(local.path))
        if await self._record_file(export_file, local.path, result):
            await self._archive(export_file)

    async def _record_file(self, export_file: ExportFile, path: Path, result: PollResult,
                           again: bool = False) -> bool:
        """Record the file's new event (Downloaded, Reopened), then read and record what it
        says. False when it is to be taken up again."""
        name = export_file.name
        try:
            summary = await asyncio.to_thread(self._ingest, export_file, path, again)
        except ConcurrentChange:
            # Another worker sharing the ledger is recording this file; its batches are
            # atomic, and whatever it leaves unfinished the next poll takes up again.
            result.skipped.append({"name": name, "reason": "another worker took it"})
            return False
        except Exception as exc:  # noqa: BLE001 - one file's failure must not stop the others
            # Not the file's fault (it was readable): nothing is marked done, so the next
            # poll takes it up again; its whole batches already recorded come out duplicates.
            result.errors.append(f"{name}: {type(exc).__name__}: {exc}")
            log.exception("recording %s failed; it is retried next poll", name,
                          extra={"file": name})
            return False
        result.taken.append(summary)
        return True

    async def _reread_rejected(self, result: PollResult) -> None:
        """A file rejected under reader settings that have changed since (an encoding, a
        column mapping put right) is read again from the copy kept when it was downloaded: it
        may be gone from, or archived out of, the outbound folder by now. Once per set of
        settings, so workers with different settings cannot hand it back and forth."""
        for file_id in await asyncio.to_thread(self.queue.rejected_files):
            export_file = self.ledger.export_file(UUID(file_id))
            if export_file is None:
                continue
            settings = self.readers.fingerprint(export_file.kind)
            if export_file.outcome != "reopened" and \
                    not export_file.worth_reading_again(settings):
                continue
            path = Path(export_file.local_path)
            if not path.is_file():
                export_file.reject(f"its kept copy {path} is gone, so it cannot be read again:"
                                   " export the file again from Stampli", reader_config=settings)
                self.ledger.record(export_file)
                log.warning("cannot read %s again: its kept copy %s is gone",
                            export_file.name, path, extra={"file": export_file.name})
                continue
            if export_file.outcome == "rejected":
                export_file.reopen(f"the {export_file.kind} reading settings changed since it "
                                   "was rejected")
            log.info("reading %s again: the settings that rejected it changed",
                     export_file.name, extra={"file": export_file.name})
            await self._record_file(export_file, path, result, again=True)

    def _ingest(self, export_file: ExportFile, path: Path, again: bool) -> dict[str, Any]:
        """`again`: a file read long after it was downloaded; what later files already said
        about its invoices and vendors stands."""
        if export_file.pending_events:
            self.ledger.record(export_file)
        kind = export_file.kind
        try:
            if kind == "invoices":
                items = self.readers.invoices(path, export_file.name, ExportFileRef(
                    export_file.name, export_file.sha256))
                summary = record_invoice_file(
                    self.ledger, export_file, items,
                    self.settings.approved_statuses,
                    superseded=self._newer_than(export_file) if again else None)
            elif kind == "vendors":
                summary = record_vendor_file(self.ledger, export_file,
                                             self.readers.vendors(path, export_file.name),
                                             only_new=again)
            else:
                summary = self._record_purchase_orders(export_file, path)
        except UnreadableFile as exc:
            export_file.reject(str(exc), exc.line, exc.field, self.readers.fingerprint(kind))
            self.ledger.record(export_file)
            log.error("rejected %s: %s", export_file.name, exc,
                      extra={"event": "file_rejected", "file": export_file.name})
            return {"file": export_file.name, "rejected": str(exc)}
        compact = {k: len(v) if isinstance(v, list) else v for k, v in summary.items()}
        compact.pop("file", None)
        log.info("recorded %s", export_file.name,
                 extra={"event": "file_recorded", "file": export_file.name, "counts": compact})
        return summary

    def _newer_than(self, export_file: ExportFile) -> Callable[[Invoice], bool]:
        """Whether an invoice's content came from a file at least as recent as this one."""
        def superseded(invoice: Invoice) -> bool:
            if invoice.content_file is None:
                return False
            source = self.ledger.export_file(export_file_id(*invoice.content_file))
            return source is None or source.mtime >= export_file.mtime
        return superseded

    def _record_purchase_orders(self, export_file: ExportFile, path: Path) -> dict[str, Any]:
        # PO lines are checked against IFS's own purchase orders; the file is kept for audit.
        lines, rejected = 0, []
        for item in self.readers.purchase_orders(path, export_file.name):
            if isinstance(item, RejectedRow):
                rejected.append({"line": item.line, "field": item.field, "message": item.message})
            else:
                lines += 1
        export_file.record_parsed(records=lines, invoices_new=0, duplicates=0, amendments=0,
                                  rejected_rows=rejected[:1000])
        self.ledger.record(export_file)
        return {"file": export_file.name, "po_lines": lines, "rejected_rows": len(rejected),
                "rejected_rows_listed": rejected[:1000]}

    async def _archive(self, export_file: ExportFile) -> None:
        if not self.settings.archive_dir or export_file.archived:
            return
        try:
            await asyncio.to_thread(self.source.archive, export_file.name,
                                    self.settings.archive_dir)
        except SourceError as exc:
            log.warning("could not archive: %s", exc, extra={"file": export_file.name})
            return
        export_file.archive(self.settings.archive_dir)
        self.ledger.record(export_file)
