"""Two posting batches in flight (PipelineSettings.posts_in_flight): IFS works on one while the
connector records the outcomes of the other. Never more than the setting; every invoice posted
once; when IFS goes away under one batch, the other's outcomes are recorded all the same and
the cycle reports IFS's error."""
from __future__ import annotations

import asyncio

import pytest

from ledger.ports import ErpUnavailable
from tests.fakes import FakeErp
from tests.test_pipeline import make_runtime, outbound  # noqa: F401 - a fixture

POSTABLE = {"INV-2026-0117", "CN-2026-0009", "A-5531"}       # the samples' approved ones


class SlowErp(FakeErp):
    """IFS taking `seconds` for each posting call; counts how many calls overlap."""

    def __init__(self, seconds: float = 0.2, unavailable_on_call: int | None = None) -> None:
        super().__init__(suppliers=("V00231", "V00877"))
        self.seconds, self.unavailable_on_call = seconds, unavailable_on_call
        self.in_flight = self.most_in_flight = self.calls = 0

    async def post(self, requests):
        self.calls += 1
        call = self.calls
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await asyncio.sleep(self.seconds)
            if call == self.unavailable_on_call:
                raise ErpUnavailable("transient", "IFS went away (test)")
            return await super().post(requests)
        finally:
            self.in_flight -= 1


def sync_with(tmp_path, outbound, erp, posts_in_flight):  # noqa: F811 - the fixture's name
    rt = make_runtime(tmp_path, outbound, erp, post_batch=1)
    try:
        pipeline = rt.pipeline()
        if posts_in_flight is not None:        # None: the default
            pipeline.settings.posts_in_flight = posts_in_flight
        report = asyncio.run(rt.sync(pipeline))
        return report, {(r["vendor_id"], r["invoice_number"]): r["state"]
                        for r in rt.status_rows()}
    finally:
        rt.close()


@pytest.mark.parametrize("posts_in_flight, expected", [(1, 1), (2, 2), (None, 2)])
def test_at_most_the_setting_is_in_flight_and_each_invoice_is_posted_once(
        tmp_path, outbound, posts_in_flight, expected):  # noqa: F811
    erp = SlowErp()
    report, states = sync_with(tmp_path, outbound, erp, posts_in_flight)
    assert report.errors == []
    assert erp.most_in_flight == expected      # one batch a call (post_batch = 1)
    numbers = sorted(d["invoice_number"] for d in erp.documents.values())
    assert numbers == sorted(["INV-2026-0117", "INV-2026-0117", "CN-2026-0009", "A-5531"])
    assert sorted(s for s in states.values()) == ["awaiting_approval"] + ["posted"] * 4


def test_ifs_gone_under_one_batch_still_records_the_other_and_says_why(tmp_path,
                                                                       outbound):  # noqa: F811
    erp = SlowErp(unavailable_on_call=1)
    report, states = sync_with(tmp_path, outbound, erp, 2)
    assert report.errors == ["IFS: IFS went away (test)"]
    assert [(f["invoice"], f["kind"]) for f in report.failed] == [("V00231/A-5531", "transient")]
    assert states[("V00231", "A-5531")] == "retry_scheduled"
    # The second batch was in flight when the first failed: its answer is recorded.
    assert erp.calls == 2 and len(erp.documents) == 1
    assert list(states.values()).count("posted") == 1
