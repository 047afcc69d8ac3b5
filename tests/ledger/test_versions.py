"""Stored events stay readable: an event written by version 1 of a class still loads after a
field was added (upcasting), through the aggregate and through the projections."""
from __future__ import annotations

import orjson
from eventsourcing.persistence import StoredEvent

from ledger.app import Ledger
from ledger.intake import record_invoice_file
from projections.runner import Projector
from projections.status import read_status
from tests.builders import export_file, invoice, parsed


def test_failed_event_stored_by_version_1_still_loads(sqlite_url):
    ledger = Ledger(sqlite_url)
    inv = invoice("INV-1")
    record_invoice_file(ledger, export_file(), [parsed(inv)], ["Approved"])
    # What version 1 of Invoice.Failed stored: no next_retry_at, no class_version marker.
    v1_state = {"timestamp": "2026-11-06T15:30:00+00:00", "connector_version": "0.0.9",
                "stage": "validate", "kind": "reference", "code": "ACCOUNT_NOT_FOUND",
                "message": "GL account 6999 does not exist", "attempt": 1, "exchanges": []}
    ledger.recorder.insert_events([StoredEvent(
        originator_id=inv.id, originator_version=3, topic="ml_connector.invoice.Failed",
        state=orjson.dumps(v1_state))])

    loaded = ledger.invoice(inv.id)
    assert loaded.state == "failed"
    assert loaded.row["failure_message"] == "GL account 6999 does not exist"
    assert loaded.row["next_retry_at"] is None
    history = ledger.history(inv.id)
    assert history[-1]["data"]["next_retry_at"] is None
    assert history[-1]["data"]["connector_version"] == "0.0.9"

    projector = Projector(ledger)
    projector.catch_up()
    with projector.store.transaction() as cur:
        (row,) = read_status(cur)
    assert row == loaded.row
    projector.store.close()
    ledger.close()


def test_events_are_stored_under_explicit_topics(sqlite_url):
    ledger = Ledger(sqlite_url)
    record_invoice_file(ledger, export_file(), [parsed(invoice())], ["Approved"])
    topics = {n.topic for n in ledger.recorder.select_notifications(1, 100)}
    assert topics == {"ml_connector.invoice.Discovered", "ml_connector.invoice.Parsed",
                      "ml_connector.file.Downloaded", "ml_connector.file.Parsed"}
    ledger.close()


def test_every_stored_event_names_the_connector_version_that_recorded_it(sqlite_url):
    import importlib
    import pkgutil

    from eventsourcing.domain import Aggregate

    import ledger as package
    from ledger import __version__
    from ledger.aggregate import VersionStamped

    for module in pkgutil.iter_modules(package.__path__):
        importlib.import_module(f"ledger.{module.name}")
    aggregates = [cls for cls in _subclasses(Aggregate) if cls.__module__.startswith("ledger.")]
    assert len(aggregates) >= 8
    assert [c.__name__ for c in aggregates if not issubclass(c, VersionStamped)] == []

    ledger = Ledger(sqlite_url)
    record_invoice_file(ledger, export_file(), [parsed(invoice())], ["Approved"])
    stored = ledger.recorder.select_notifications(1, 100)
    assert {orjson.loads(n.state)["connector_version"] for n in stored} == {__version__}
    ledger.close()


def _subclasses(cls: type) -> list[type]:
    return [sub for direct in cls.__subclasses__() for sub in (direct, *_subclasses(direct))]
