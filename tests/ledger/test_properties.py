"""Property tests: every event round-trips through the codec, and for any sequence of
events the projection rebuilt from the ledger equals the one kept live."""
from __future__ import annotations

import tempfile
from decimal import Decimal
from uuid import UUID

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger.app import Ledger
from ledger.errors import LedgerError
from ledger.codec import MAC_FIELD, OrjsonTranscoder
from ledger.intake import record_invoice_file
from ledger.invoice import InvoiceRuleError
from projections.runner import Projector
from projections.status import read_status
from tests.builders import export_file, invoice, parsed

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**53, 2**53) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=8), children, max_size=4), max_leaves=20)


# "timestamp" and the MAC field are the codec's own keys (the MAC is stripped on decode).
@given(st.dictionaries(st.text(max_size=10).filter(lambda k: k not in ("timestamp", MAC_FIELD)),
                       json_values))
def test_codec_round_trips_event_state(state):
    transcoder = OrjsonTranscoder()
    assert transcoder.decode(transcoder.encode(state)) == state


def test_codec_writes_decimals_as_exact_strings():
    transcoder = OrjsonTranscoder()
    assert transcoder.decode(transcoder.encode({"a": Decimal("0.10")})) == {"a": "0.10"}


NUMBERS = ["INV-1", "INV-2", "INV-3"]
steps = st.lists(st.tuples(
    st.sampled_from(["ingest", "ingest_changed", "ingest_pending", "validate", "resolve",
                     "intend", "post", "fail_transient", "fail_reference", "replay",
                     "catch_up"]),
    st.sampled_from(NUMBERS)), min_size=1, max_size=25)


def _apply(ledger: Ledger, projector: Projector, step: str, number: str, n: int) -> None:
    inv = invoice(number)
    try:
        if step.startswith("ingest"):
            content = {"ingest": invoice(number),
                       "ingest_changed": invoice(number, lines=(("6100", "CC2", "5.00", "0"),)),
                       "ingest_pending": invoice(number, approval="Pending")}[step]
            record_invoice_file(ledger, export_file(f"f{n}.csv"), [parsed(content)],
                                ["Approved"])
            return
        if step == "catch_up":
            projector.catch_up()
            return
        if step == "replay":
            ledger.request_replay(inv.id, None, "property", operator="tester")
            return
        agg = ledger.invoice(inv.id)
        if step == "validate":
            agg.validate(["ok"], "s")
        elif step == "resolve":
            agg.resolve_vendor("S1", "existing")
        elif step == "intend":
            agg.intend_posting("w", looked_up=True, approved_statuses=["Approved"])
        elif step == "post":
            agg.post("77", {"VoucherNo": 5}, {}, [])
        elif step == "fail_transient":
            agg.fail(agg.row["stage"] or "validate", "transient", "503",
                     next_retry_at="2026-11-06T16:00:00+00:00")
        elif step == "fail_reference":
            agg.fail("validate", "reference", "no such account")
        ledger.record(agg)
    except (LedgerError, InvoiceRuleError):
        pass  # a command the state does not allow: nothing recorded, as in production


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps)
def test_rebuilt_projection_equals_live_for_any_sequence(sequence):
    with tempfile.TemporaryDirectory() as tmp:
        ledger = Ledger(f"sqlite:///{tmp}/ledger.db")
        projector = Projector(ledger)
        try:
            for n, (step, number) in enumerate(sequence):
                _apply(ledger, projector, step, number, n)
            projector.catch_up()
            with projector.store.transaction() as cur:
                live = read_status(cur)
            projector.rebuild()
            with projector.store.transaction() as cur:
                rebuilt = read_status(cur)
            assert rebuilt == live
            for row in live:                       # and the aggregates agree with both
                assert ledger.invoice(UUID(row["id"])).row == row
        finally:
            projector.store.close()
            ledger.close()
