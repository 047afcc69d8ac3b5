"""The status view rebuilt in many small pages and transactions (as a big ledger is) equals
the one kept live, on a ledger holding every kind of invoice event."""
from __future__ import annotations

from uuid import UUID

import pytest

import projections.runner as runner
from ledger.app import Ledger
from ledger.intake import record_invoice_file
from ledger.invoice import Invoice
from projections.runner import Projector
from projections.status import StatusProjection, read_status
from tests.builders import export_file, invoice, parsed

INVOICE_EVENTS = {cls.__name__ for cls in vars(Invoice).values()
                  if getattr(cls, "TOPIC", "").startswith("ml_connector.invoice.")}
CHANGED = (("6100", "CC210", "50.00", "4.00"),)


def _ingest(ledger: Ledger, number: str, n: int, **options) -> None:
    record_invoice_file(ledger, export_file(f"f{number}-{n}.csv"),
                        [parsed(invoice(number, **options))], ["Approved"])


def _every_event(ledger: Ledger, projector: Projector) -> None:
    """Each invoice's life is a different path; the view is caught up between steps."""
    def step(number: str, action) -> None:
        agg = ledger.invoice(invoice(number).id)
        action(agg)
        ledger.record(agg)
        projector.catch_up()

    def to_post(number: str) -> None:
        step(number, lambda a: a.validate(["ok"], "s"))
        step(number, lambda a: a.resolve_vendor("S1", "existing"))
        step(number, lambda a: a.intend_posting("w", approved_statuses=["Approved"]))

    for number in ("POSTED", "HELD", "REPLAYED", "RESOLVED", "DISMISSED", "SKIPPED"):
        _ingest(ledger, number, 0, approval="Pending" if number == "HELD" else "Approved")
    projector.catch_up()
    _ingest(ledger, "SKIPPED", 1)                                      # SeenAgain
    to_post("POSTED")
    step("POSTED", lambda a: a.post("77", {"VoucherNo": 5}, {}, []))
    _ingest(ledger, "POSTED", 1, lines=CHANGED)                       # ChangedAfterPosting
    _ingest(ledger, "HELD", 1)                                         # Amended, approved
    for number in ("REPLAYED", "RESOLVED", "DISMISSED"):
        step(number, lambda a: a.fail("validate", "reference", "no such account"))
    ledger.request_replay(invoice("REPLAYED").id, None, "fixed in IFS", operator="ap")
    step("REPLAYED", lambda a: a.fail("validate", "reference", "no such account"))
    step("REPLAYED", lambda a: a.request_replay(1, "parsed", "an earlier connector's replay"))
    step("RESOLVED", lambda a: a.resolve_manually("88", "ap", "entered by hand",
                                                  ifs_document={}, differences=[],
                                                  force=False))
    step("DISMISSED", lambda a: a.dismiss("ap", "duplicate"))
    step("DISMISSED", lambda a: a.reopen("ap", "not a duplicate"))
    step("SKIPPED", lambda a: a.skip("before go-live", cutover="2026-11-05",
                                     date_field="invoice", date="2026-11-04"))
    projector.catch_up()


def _status(projector: Projector) -> list[dict]:
    with projector.store.transaction() as cur:
        return read_status(cur)


@pytest.fixture(params=["sqlite", pytest.param("pg", marks=pytest.mark.postgres)])
def url(request):
    return request.getfixturevalue(f"{request.param}_url")


def test_rebuilt_in_small_pages_equals_the_live_view(url, monkeypatch):
    ledger = Ledger(url)
    projector = Projector(ledger, projections=[StatusProjection()], page_size=3)
    try:
        _every_event(ledger, projector)
        rows = ledger.notification_rows(1, 10_000)
        recorded = {topic.rsplit(".", 1)[1] for *_, topic, _ in rows
                    if topic.startswith("ml_connector.invoice.")}
        # every invoice event (Created is the library's base of Discovered, never recorded)
        assert recorded == INVOICE_EVENTS - {"Created"}, INVOICE_EVENTS - recorded
        live = _status(projector)
        for row in live:                       # the view folds as the aggregates do
            assert ledger.invoice(UUID(row["id"])).row == row
        assert sorted(r["state"] for r in live) == ["failed", "needs_attention", "parsed",
                                                    "parsed", "resolved", "skipped"]
        monkeypatch.setattr(runner, "REBUILD_PAGE", 4)
        monkeypatch.setattr(runner, "REBUILD_PAGES_PER_TRANSACTION", 3)
        assert projector.rebuild() == len(rows)
        assert _status(projector) == live
        for position in (2, 7, len(rows) // 2, len(rows)):
            projector.rebuild(from_position=position)
            assert _status(projector) == live, position
        fresh = Projector(ledger, projections=[StatusProjection()])   # another process
        fresh.rebuild()
        assert _status(fresh) == live
        fresh.store.close()
    finally:
        projector.store.close()
        ledger.close()


@pytest.mark.parametrize("interrupted", [False, True])
def test_rebuild_leaves_the_views_indexes_in_place(tmp_path, monkeypatch, interrupted):
    ledger = Ledger(f"sqlite:///{tmp_path}/ledger.db")
    projector = Projector(ledger, projections=[StatusProjection()])
    try:
        for n in range(5):
            _ingest(ledger, f"INV-{n}", n)
        if interrupted:                       # the process dies halfway through a rebuild
            def boom(*args, **kwargs):
                raise KeyboardInterrupt
            monkeypatch.setattr(StatusProjection, "flush", boom)
            with pytest.raises(KeyboardInterrupt):
                projector.rebuild()
            monkeypatch.undo()
            projector = Projector(ledger, projections=[StatusProjection()])   # next start
            projector.catch_up()
        else:
            projector.rebuild()
        with projector.store.transaction() as cur:
            indexes = {name for (name,) in cur.execute(
                "SELECT name FROM sqlite_master WHERE type = 'index'"
                " AND tbl_name = 'mlc_invoice_status' AND sql IS NOT NULL").fetchall()}
        assert indexes == {"mlc_invoice_status_state", "mlc_invoice_status_state_age",
                           "mlc_invoice_status_file"}
        assert len(_status(projector)) == 5
    finally:
        projector.store.close()
        ledger.close()
