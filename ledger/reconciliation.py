"""A reconciliation against IFS, on record: the auditor sees that close was reconciled, when,
for which period, with what result, and can check a kept report against its digest."""
from __future__ import annotations

from typing import Any

from eventsourcing.domain import Aggregate

from ledger.aggregate import VersionStamped


class Reconciliation(VersionStamped, Aggregate):
    TOPIC = "ml_connector.Reconciliation"

    class Event(Aggregate.Event):
        connector_version: str

    class Created(Event, Aggregate.Created):
        TOPIC = "ml_connector.reconciliation.Created"

    class ReconciliationRun(Created):
        """One `reconcile` run: its period and selection, the count per category, the
        discrepancies' totals, the IFS requests it took, and the SHA-256 of the report
        written (in the format asked for)."""
        TOPIC = "ml_connector.reconciliation.ReconciliationRun"
        company: str
        period_from: str
        period_to: str
        by: str
        counts: dict[str, int]
        totals: list[dict[str, Any]]
        ifs_requests: int
        report_format: str
        report_sha256: str
        ok: bool

    def __init__(self, company: str, period_from: str, period_to: str, by: str,
                 counts: dict[str, int], totals: list[dict[str, Any]], ifs_requests: int,
                 report_format: str, report_sha256: str, ok: bool,
                 connector_version: str) -> None:
        self.counts, self.ok = counts, ok

    @classmethod
    def run(cls, *, company: str, period_from: str, period_to: str, by: str,
            counts: dict[str, int], totals: list[dict[str, Any]], ifs_requests: int,
            report_format: str, report_sha256: str, ok: bool) -> Reconciliation:
        return cls._create(cls.ReconciliationRun, company=company, period_from=period_from,
                           period_to=period_to, by=by, counts=counts, totals=totals,
                           ifs_requests=ifs_requests, report_format=report_format,
                           report_sha256=report_sha256, ok=ok)
