"""Go-live cutover: invoices approved (or dated) before `connector.ignore_approved_before` are
recorded as skipped with the reason, visible in status and history, and never posted."""
from __future__ import annotations

import pytest

from adapters.settings import ConfigError, settings_from_dict
from tests.fakes import FakeErp
from tests.test_pipeline import config, make_runtime, outbound, sync  # noqa: F401 - fixture

POSTED = ("V00231", "CN-2026-0009"), ("V00231", "A-5531")          # dated 2026-11-05
BEFORE = ("V00231", "INV-2026-0117"), ("V00877", "INV-2026-0117")  # dated 11-04 and 11-03


def test_invoices_dated_before_the_cutover_are_skipped_never_posted(tmp_path, outbound):
    erp = FakeErp()
    report, rows = sync(tmp_path, outbound, erp, ignore_approved_before="2026-11-05",
                        cutover_date="invoice")
    assert report.moved["skipped_before_cutover"] == 2 and report.failed == []
    assert sorted(d["invoice_number"] for d in erp.documents.values()) == \
        ["A-5531", "CN-2026-0009"]
    for key in POSTED:
        assert rows[key]["state"] == "posted"
    for key in BEFORE:
        assert rows[key]["state"] == "skipped"
        assert "before the go-live cutover 2026-11-05" in rows[key]["failure_message"]
    # on record in the invoice's history, and a later sync leaves them alone
    rt = make_runtime(tmp_path, outbound, erp, ignore_approved_before="2026-11-05",
                      cutover_date="invoice")
    try:
        events = rt.ledger.history(rt.resolve("V00877/INV-2026-0117"))
        skipped = [e for e in events if e["type"] == "Skipped"]
        assert skipped and skipped[0]["data"]["date"] == "2026-11-03"
        assert skipped[0]["data"]["date_field"] == "invoice"
        assert [r["invoice_number"] for r in rt.status_rows("skipped")] == \
            ["INV-2026-0117", "INV-2026-0117"]
        again = rt.sync_blocking()
        assert again.moved == {} and len(erp.documents) == 2
    finally:
        rt.close()


def test_the_approval_date_is_compared_by_default(tmp_path, outbound):
    erp = FakeErp()       # every sample was approved on 2026-11-06
    report, rows = sync(tmp_path, outbound, erp, ignore_approved_before="2026-11-07")
    assert report.moved["skipped_before_cutover"] == 4 and erp.documents == {}
    assert {r["state"] for k, r in rows.items() if k != ("V00231", "7781")} == {"skipped"}
    assert rows[("V00231", "7781")]["state"] == "awaiting_approval"   # not approved at all
    erp = FakeErp()
    _, rows = sync(tmp_path / "on", outbound, erp, ignore_approved_before="2026-11-06")
    assert len(erp.documents) == 4       # approved on the cutover day itself: posted


@pytest.mark.parametrize("connector, message", [
    ({"ignore_approved_before": "01.12.2026"}, "expected a date like 2026-12-01"),
    ({"ignore_approved_before": "2026-12-01", "cutover_date": "posted"},
     '`connector.cutover_date`: expected "approved" or "invoice"')])
def test_a_bad_cutover_setting_is_refused_at_load(tmp_path, connector, message):
    raw = config(tmp_path, **connector)
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        settings_from_dict(raw)
