"""Vendor aggregate: one stream per Stampli vendor id; what the vendor files said and what
was synced to IFS."""
from __future__ import annotations

from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate

from ledger.aggregate import VersionStamped


class Vendor(VersionStamped, Aggregate):
    TOPIC = "ml_connector.Vendor"

    class Event(Aggregate.Event):
        connector_version: str

    class Created(Event, Aggregate.Created):
        TOPIC = "ml_connector.vendor.Created"

    class Seen(Created):
        TOPIC = "ml_connector.vendor.Seen"
        vendor_id: str
        record: dict[str, Any]
        file_name: str

    class Changed(Event):
        TOPIC = "ml_connector.vendor.Changed"
        record: dict[str, Any]
        file_name: str

        def apply(self, aggregate: Vendor) -> None:
            aggregate.record = self.record

    class Synced(Event):
        TOPIC = "ml_connector.vendor.Synced"
        supplier_id: str
        action: str                    # created, updated, unchanged, linked_to_company
        fields: list[str]

        def apply(self, aggregate: Vendor) -> None:
            aggregate.synced_record = aggregate.record
            aggregate.supplier_id = self.supplier_id
            aggregate.last_failure = ""

    class SyncFailed(Event):
        TOPIC = "ml_connector.vendor.SyncFailed"
        kind: str
        message: str

        def apply(self, aggregate: Vendor) -> None:
            aggregate.last_failure = self.message

    def __init__(self, vendor_id: str, record: dict[str, Any], file_name: str,
                 connector_version: str) -> None:
        self.vendor_id, self.record = vendor_id, record
        self.synced_record: dict[str, Any] | None = None
        self.supplier_id = ""
        self.last_failure = ""

    @classmethod
    def see(cls, id: UUID, vendor_id: str, record: dict[str, Any], file_name: str) -> Vendor:
        return cls._create(cls.Seen, id=id, vendor_id=vendor_id, record=record,
                           file_name=file_name)

    def update_record(self, record: dict[str, Any], file_name: str) -> bool:
        if record == self.record:
            return False
        self.trigger_event(self.Changed, record=record, file_name=file_name)
        return True

    def synced(self, supplier_id: str, action: str, fields: list[str]) -> None:
        self.trigger_event(self.Synced, supplier_id=supplier_id, action=action, fields=fields)

    def sync_failed(self, kind: str, message: str) -> None:
        self.trigger_event(self.SyncFailed, kind=kind, message=message)

