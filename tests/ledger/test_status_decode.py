"""The status projection decodes only the fields its fold reads (ledger.status.FOLD_READS);
the view it builds that way equals the one built from each event's whole state."""
from __future__ import annotations

import orjson

from ledger.app import Ledger
from ledger.codec import decode_state
from projections.runner import Decoders, Projector, decode_notifications
from projections.status import StatusProjection, read_status
from tests.ledger.test_rebuild_pages import INVOICE_EVENTS, _every_event

PREFIX = "ml_connector.invoice."


class WholeStateStatus(StatusProjection):
    """Today's contract before the hook: every state decoded in whole."""

    def decoder(self, topic: str):
        return None


def _view(ledger: Ledger, projection: StatusProjection) -> list[dict]:
    projector = Projector(ledger, projections=[projection])
    try:
        projector.rebuild()
        with projector.store.transaction() as cur:
            return read_status(cur)
    finally:
        projector.store.close()


def test_the_partial_decode_builds_the_same_view_as_the_whole_state(tmp_path):
    ledger = Ledger(f"sqlite:///{tmp_path}/ledger.db")
    live = Projector(ledger, projections=[WholeStateStatus()], page_size=3)
    try:
        _every_event(ledger, live)
        rows = ledger.notification_rows(1, 10_000)
        partial = decode_notifications(rows, Decoders([StatusProjection()]))
        whole = decode_notifications(rows)
        kinds = {e.type for e in partial if e.topic.startswith(PREFIX)}
        assert kinds == INVOICE_EVENTS - {"Created"}
        for p, w in zip(partial, whole):
            assert p[:5] == w[:5] and p.recorded_at == w.recorded_at and p.raw == w.raw
            if p.topic.startswith(PREFIX) and p.type != "Failed":   # Failed: class version 2
                assert p.data.keys() < w.data.keys(), p.type        # fewer fields decoded
        assert any("invoice" in e.data and "lines" not in e.data["invoice"] for e in partial)
        by_whole_state = _view(ledger, WholeStateStatus())
        assert by_whole_state and _view(ledger, StatusProjection()) == by_whole_state
    finally:
        live.store.close()
        ledger.close()


class EveryTopic(StatusProjection):
    name, topic_prefix = "every_topic", ""


def _decoded(state: bytes, topic: str, projections: list) -> dict:
    [event] = decode_notifications([(1, "s", 1, PREFIX + topic, state)], Decoders(projections))
    return event.data


def test_a_topic_several_projections_read_is_decoded_in_whole():
    state = orjson.dumps({"timestamp": "t", "supplier_id": "S1", "note": "kept"})
    assert _decoded(state, "VendorResolved", [StatusProjection()]) == {"timestamp": "t",
                                                                       "supplier_id": "S1"}
    both = [StatusProjection(), EveryTopic()]
    assert _decoded(state, "VendorResolved", both) == decode_state(state)


def test_a_state_not_of_the_declared_shape_is_decoded_in_whole():
    state = orjson.dumps({"timestamp": "t", "ifs_invoice_id": "7", "voucher": ["odd"]})
    assert _decoded(state, "Posted", [StatusProjection()]) == decode_state(state)
