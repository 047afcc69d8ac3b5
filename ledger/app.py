"""The ledger application: one eventsourcing Application holding every aggregate, with one
method per use case. SQLite by default, PostgreSQL from a `postgresql://` URL: same code."""
from __future__ import annotations

from collections.abc import Collection, Iterable
from typing import Any
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, Application, ProcessingEvent
from eventsourcing.domain import BaseAggregate, DomainEvent
from eventsourcing.persistence import IntegrityError, Transcoder

from ledger import persistence, replay
from ledger.codec import OrjsonTranscoder, event_type
from ledger.errors import ConcurrentChange, LedgerError
from ledger.files import ExportFile
from ledger.invoice import Invoice, who_and_why
from ledger.model import DOCUMENT_TYPES, invoice_id, vendor_stream_id
from ledger.signing import EventKeys, KeyUnavailable, SigningMapper, Unsealed
from ledger.posting_path import PostingPath, posting_path_id
from ledger.vendor import Vendor

APP_NAME = "ml_connector"


class Ledger(Application[UUID]):
    name = APP_NAME
    env = {"IS_SNAPSHOTTING_ENABLED": "n"}

    def __init__(self, url: str) -> None:
        self.url = url
        env = persistence.environment_for(url)
        with persistence.schema_lock(env):
            super().__init__(env=env)

    def construct_transcoder(self) -> Transcoder:
        return OrjsonTranscoder()

    def construct_mapper(self) -> SigningMapper:
        return SigningMapper(transcoder=self.construct_transcoder())

    def use_keys(self, keys: EventKeys | None, refusal: str = "") -> None:
        """MAC every event written from now on with these keys (ledger/signing.py); with a
        refusal instead (the keys could not be read), refuse every write, saying why."""
        self.mapper.keys, self.mapper.refusal = keys, refusal

    @property
    def keys(self) -> EventKeys | None:
        return self.mapper.keys

    # ------------------------------------------------------------------ reads

    def invoice(self, id: UUID) -> Invoice:
        return self._get(id, Invoice)

    def invoices(self, ids: list[UUID]) -> dict[UUID, Invoice]:
        """Several invoices at once, as `invoice` reads each (the ids with no event left
        out): their events read in one query, not one per invoice."""
        from eventsourcing.application import project_aggregate

        found = {}
        for id, stored in persistence.stored_events_of(self.recorder, ids).items():
            invoice = project_aggregate(None, map(self.mapper.to_domain_event, stored))
            if isinstance(invoice, Invoice):
                found[id] = invoice
        return found

    def invoice_at(self, id: UUID, version: int) -> Invoice:
        return self.repository.get(id, version=version)

    def find_invoice(self, id: UUID) -> Invoice | None:
        return self._find(id)

    def recorded(self, ids: Iterable[UUID]) -> set[UUID]:
        """Which of these streams have any event: one query per few hundred ids, where
        find_invoice costs a query (and a transaction) per id. Intake asks it once per batch,
        because in a new export most invoices are new."""
        return persistence.recorded(self.recorder, ids)

    def last_versions(self, ids: list[UUID]) -> dict[UUID, int]:
        """Each stream's last recorded version (streams with no event left out): which
        invoices of a chunk another worker moved, found in one query."""
        return persistence.last_versions(self.recorder, ids)

    def notification_rows(self, start: int, limit: int) -> list[tuple[int, str, int, str, bytes]]:
        """The notification log from `start` as plain tuples (position, stream id, version,
        topic, stored state), read in the dialect's own SQL (ledger/persistence.py)."""
        return persistence.notification_rows(self.recorder, start, limit)

    def export_file(self, id: UUID) -> ExportFile | None:
        return self._find(id)

    def vendor(self, vendor_id: str) -> Vendor | None:
        return self._find(vendor_stream_id(vendor_id))

    def find(self, id: UUID) -> Any:
        """Any aggregate by its stream id (users, the user directory), None when absent."""
        return self._find(id)

    def posting_path(self, service: str) -> PostingPath | None:
        return self._find(posting_path_id(service))

    def _get(self, id: UUID, cls: type) -> Any:
        try:
            aggregate = self.repository.get(id)
        except AggregateNotFoundError:
            raise LedgerError(f"no {cls.__name__.lower()} with ledger id {id}") from None
        return aggregate

    def _find(self, id: UUID) -> Any:
        try:
            return self.repository.get(id)
        except AggregateNotFoundError:
            return None

    def history(self, id: UUID) -> list[dict[str, Any]]:
        """Every event of one stream, oldest first, as plain data."""
        recorder = self.recorder
        stored = recorder.select_events(id)
        if not stored:
            raise LedgerError(f"no events recorded for {id}")
        out = []
        for item in stored:
            event = self.mapper.to_domain_event(item)
            data = {k: v for k, v in vars(event).items()
                    if k not in ("originator_id", "originator_version", "timestamp",
                                 "originator_topic")}
            out.append({"version": item.originator_version, "type": event_type(item.topic),
                        "recorded_at": event.timestamp.isoformat(), "data": data})
        return out

    def resolve_ref(self, ref: str, default_company: str) -> UUID:
        """REF is a ledger id, VENDOR/NUMBER (default company, Invoice), or
        COMPANY/VENDOR/TYPE/NUMBER (operations.md §3)."""
        try:
            return UUID(ref)
        except ValueError:
            pass
        # An invoice number may itself hold '/' (INV/77/1): it is always the last part.
        vendor, _, number = ref.partition("/")
        if not (vendor and number):
            raise LedgerError(f"{ref!r} is not an invoice reference: use a ledger id,"
                              " VENDOR_ID/INVOICE_NUMBER or COMPANY/VENDOR_ID/TYPE/NUMBER")
        ids = [invoice_id(default_company, vendor, doc_type, number)
               for doc_type in DOCUMENT_TYPES]
        parts = ref.split("/", 3)
        if len(parts) == 4 and parts[2] in DOCUMENT_TYPES:
            ids.insert(0, invoice_id(*parts))
        for candidate in ids:
            if self.recorder.select_events(candidate, limit=1):
                return candidate
        raise LedgerError(f"no invoice {ref} in the ledger (company {default_company});"
                          " `ml-connector status` lists the invoices it knows")

    # ------------------------------------------------------------------ writes

    def save_all(self, aggregates: Iterable[Any]) -> None:
        """Save several aggregates' new events (and events given as such) in one transaction.
        A concurrent writer on any of the streams makes the whole save fail with
        ConcurrentChange, nothing written."""
        # What Application.save does, minus its per-object isinstance checks against
        # runtime-checkable Protocols, which cost more than storing the events on Python 3.11
        # (ingest saves thousands of aggregates per batch). Anything not an aggregate goes
        # through the library's own collection. Then what save() itself runs: _record (here
        # the mapper and recorder called directly, without the Recording and Notification
        # objects per event that nothing here reads: an ingest stores hundreds of thousands),
        # _take_snapshots and notify. tests/ledger/test_library_internals.py fails if a
        # release of eventsourcing changes them (why it is pinned below 9.6).
        processing: ProcessingEvent[UUID] = ProcessingEvent()
        for obj in aggregates:
            if isinstance(obj, BaseAggregate):
                processing.events.extend(obj.collect_events())
                processing.aggregates[obj.id] = obj
            elif isinstance(obj, (DomainEvent, Unsealed)):     # Unsealed: see signing.py
                processing.events.append(obj)
            else:
                processing.collect_events(obj)
        try:
            self.recorder.insert_events(self.mapper.to_stored_events(processing.events))
        except IntegrityError as exc:
            raise ConcurrentChange(f"another process changed the ledger first: {exc}") from None
        except KeyUnavailable as exc:
            raise LedgerError(f"nothing recorded: {exc}") from None
        self._take_snapshots(processing)
        self.notify(processing.events)

    def request_replay(self, id: UUID, from_version: int | None, reason: str, *, operator: str,
                       approved_statuses: Collection[str] | None = None) -> tuple[Invoice, int]:
        """Records the replay (Retried, naming who and why); returns the invoice and the event
        number it went back to. Raises InvoiceRuleError when its state allows no retry.
        A target that would skip or undo the approval, resurrect replaced content or post
        twice is refused (ledger/replay.py), naming the events it may go back to.
        `approved_statuses`: the configured ones (None: only the recorded judgement)."""
        invoice = self.invoice(id)
        who_and_why(operator, reason)
        invoice.require_action("retry")
        if from_version is None:
            from_version = invoice.version_before_failures
        events = [self.mapper.to_domain_event(item) for item in self.recorder.select_events(id)]
        steps = replay.steps_of(events[:invoice.version])
        standing = replay.Standing(
            invoice.ref, invoice.row["ifs_invoice_id"] if invoice.posted is not None else None,
            invoice.approval_problem(approved_statuses))
        refusal = replay.why_not(steps, from_version, standing)
        if refusal:
            raise LedgerError(f"{refusal} ({replay.describe(replay.allowed(steps, standing))})")
        invoice.retry(from_version, steps[from_version - 1].state, operator, reason)
        self.save_all([invoice])
        return invoice, from_version

    def record(self, *aggregates: Any) -> None:
        self.save_all(aggregates)


__all__ = ["Ledger"]
