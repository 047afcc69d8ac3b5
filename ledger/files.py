"""Export-file and poll-run aggregates.

An export file is one stream per (path, sha256): a changed file under the same name is a new
file. A poll run is one stream per polling attempt, so "every polling attempt is logged"
without one ever-growing stream.
"""
from __future__ import annotations

from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate

from ledger.aggregate import VersionStamped


class ExportFile(VersionStamped, Aggregate):
    TOPIC = "ml_connector.ExportFile"

    class Event(Aggregate.Event):
        connector_version: str

    class Created(Event, Aggregate.Created):
        TOPIC = "ml_connector.file.Created"

    class Downloaded(Created):
        TOPIC = "ml_connector.file.Downloaded"
        name: str
        kind: str                      # invoices, vendors, purchase_orders
        size: int
        mtime: float
        sha256: str
        local_path: str                # content-addressed copy kept for audit

    class Parsed(Event):
        TOPIC = "ml_connector.file.Parsed"
        records: int
        invoices_new: int
        duplicates: int
        amendments: int
        rejected_rows: list[dict[str, Any]]

        def apply(self, aggregate: ExportFile) -> None:
            aggregate.outcome = "parsed"

    class Rejected(Event):
        TOPIC = "ml_connector.file.Rejected"
        class_version = 2
        reason: str
        line: int
        field: str
        reader_config: str             # fingerprint of the settings it was read with

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            # Version 1 did not say which settings rejected it ("": never read again alone).
            state.setdefault("reader_config", "")

        def apply(self, aggregate: ExportFile) -> None:
            aggregate.outcome = "rejected"
            aggregate.rejected_under.add(self.reader_config)

    class Reopened(Event):
        """To be read again from the kept copy: the settings that rejected it have changed.
        Until Parsed or Rejected follows, each poll takes it up again."""
        TOPIC = "ml_connector.file.Reopened"
        reason: str

        def apply(self, aggregate: ExportFile) -> None:
            aggregate.outcome = "reopened"

    class Archived(Event):
        TOPIC = "ml_connector.file.Archived"
        archive_dir: str

        def apply(self, aggregate: ExportFile) -> None:
            aggregate.archived = True

    def __init__(self, name: str, kind: str, size: int, mtime: float, sha256: str,
                 local_path: str, connector_version: str) -> None:
        self.name, self.kind, self.sha256, self.local_path = name, kind, sha256, local_path
        self.size, self.mtime = size, mtime
        self.outcome = ""              # "", "parsed", "rejected", "reopened"
        self.rejected_under: set[str] = set()   # reader-settings fingerprints that rejected it
        self.archived = False

    @classmethod
    def download(cls, id: UUID, **fields: Any) -> ExportFile:
        return cls._create(cls.Downloaded, id=id, **fields)

    def record_parsed(self, records: int, invoices_new: int, duplicates: int, amendments: int,
                      rejected_rows: list[dict[str, Any]]) -> None:
        self.trigger_event(self.Parsed, records=records, invoices_new=invoices_new,
                           duplicates=duplicates, amendments=amendments,
                           rejected_rows=rejected_rows)

    def reject(self, reason: str, line: int = 0, field: str = "", reader_config: str = "") -> None:
        self.trigger_event(self.Rejected, reason=reason, line=line, field=field,
                           reader_config=reader_config)

    def worth_reading_again(self, reader_config: str) -> bool:
        """Rejected, but never under these reader settings (a rejection from before the
        settings were recorded is left to a person)."""
        return self.outcome == "rejected" and "" not in self.rejected_under \
            and reader_config not in self.rejected_under

    def reopen(self, reason: str) -> None:
        self.trigger_event(self.Reopened, reason=reason)

    def archive(self, archive_dir: str) -> None:
        self.trigger_event(self.Archived, archive_dir=archive_dir)


class PollRun(VersionStamped, Aggregate):
    TOPIC = "ml_connector.PollRun"

    class Event(Aggregate.Event):
        connector_version: str

    class Created(Event, Aggregate.Created):
        TOPIC = "ml_connector.poll.Created"

    class Started(Created):
        TOPIC = "ml_connector.poll.Started"
        source: str
        started_at: str

    class Finished(Event):
        TOPIC = "ml_connector.poll.Finished"
        listed: list[dict[str, Any]]
        taken: list[str]
        skipped: list[dict[str, str]]
        errors: list[str]
        ended_at: str

        def apply(self, aggregate: PollRun) -> None:
            aggregate.finished = True

    def __init__(self, source: str, started_at: str, connector_version: str) -> None:
        self.source, self.started_at = source, started_at
        self.finished = False

    @classmethod
    def start(cls, source: str, started_at: str) -> PollRun:
        return cls._create(cls.Started, source=source, started_at=started_at)

    def finish(self, *, listed: list[dict[str, Any]], taken: list[str],
               skipped: list[dict[str, str]], errors: list[str], ended_at: str) -> None:
        self.trigger_event(self.Finished, listed=listed, taken=taken, skipped=skipped,
                           errors=errors, ended_at=ended_at)
