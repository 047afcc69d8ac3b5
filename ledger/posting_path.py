"""PostingPath aggregate: one stream per ERP service (tenant URL + projection) recording how
documents are posted there and why (issue 13): "references" (one changeset with If-Match `$n`)
or "portable" (header and children first, then the action with the real ETag), learned from
the server's first refusal. Not an invoice event: it never counts as a posting attempt."""
from __future__ import annotations

import uuid

from eventsourcing.domain import Aggregate

from ledger.aggregate import VersionStamped

POSTING_PATH_NAMESPACE = uuid.UUID("5c0e7d1a-9b3f-5a62-8e4d-1f7a3b9c5d20")


def posting_path_id(service: str) -> uuid.UUID:
    return uuid.uuid5(POSTING_PATH_NAMESPACE, service)


class PostingPath(VersionStamped, Aggregate):
    TOPIC = "ml_connector.PostingPath"

    class Event(Aggregate.Event):
        connector_version: str

    class Created(Event, Aggregate.Created):
        TOPIC = "ml_connector.posting_path.Created"

    class Opened(Created):
        TOPIC = "ml_connector.posting_path.Opened"
        service: str                    # e.g. https://tenant/int/...|ManualSupplierInvoiceHandling

    class Chosen(Event):
        TOPIC = "ml_connector.posting_path.Chosen"
        path: str
        reason: str
        at: str

        def apply(self, aggregate: PostingPath) -> None:
            aggregate.path, aggregate.reason, aggregate.at = self.path, self.reason, self.at

    def __init__(self, service: str, connector_version: str) -> None:
        self.service = service
        self.path = self.reason = self.at = ""

    @classmethod
    def open(cls, service: str) -> PostingPath:
        return cls._create(cls.Opened, id=posting_path_id(service), service=service)

    def choose(self, path: str, reason: str, at: str) -> bool:
        if (path, reason) == (self.path, self.reason):
            return False
        self.trigger_event(self.Chosen, path=path, reason=reason, at=at)
        return True
