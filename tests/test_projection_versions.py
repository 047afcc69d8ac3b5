"""Each read model carries its schema version; a ledger whose read models an earlier
projection version wrote gets them rebuilt from the ledger at start, saying so."""
from __future__ import annotations

import logging
import sqlite3

from projections.runner import SCHEMA_VERSIONS
from projections.status import StatusProjection
from tests.fakes import FakeErp
from tests.test_pipeline import make_runtime, outbound, sync  # noqa: F401 - fixture


def test_a_ledger_from_the_previous_status_version_is_rebuilt_at_start(tmp_path, outbound,
                                                                          caplog):
    sync(tmp_path, outbound, FakeErp(), ignore_approved_before="2026-11-05",
         cutover_date="invoice")
    # What status version 1 (before the Skipped event) left: no version on record, and the
    # skipped invoices still in the state before (its fold ignored the event).
    db = sqlite3.connect(tmp_path / "ledger.db")
    with db:
        db.execute(f"DROP TABLE {SCHEMA_VERSIONS}")
        db.execute("UPDATE mlc_invoice_status SET state = 'parsed' WHERE state = 'skipped'")
    db.close()

    caplog.set_level(logging.INFO, logger="ml_connector")
    rt = make_runtime(tmp_path, outbound, FakeErp())
    try:
        states = {(r["vendor_id"], r["invoice_number"]): r["state"] for r in rt.status_rows()}
    finally:
        rt.close()
    assert states[("V00877", "INV-2026-0117")] == "skipped"
    assert list(states.values()).count("skipped") == 2
    lines = [r for r in caplog.records if getattr(r, "event", "") == "projection_rebuilt"]
    assert [(r.projection, r.from_version, r.to_version) for r in lines] == \
        [("status", 1, StatusProjection.schema_version)]

    # and once rebuilt, the next start leaves it alone
    caplog.clear()
    rt = make_runtime(tmp_path, outbound, FakeErp())
    try:
        rt.status_rows()
    finally:
        rt.close()
    assert not [r for r in caplog.records if getattr(r, "event", "") == "projection_rebuilt"]
