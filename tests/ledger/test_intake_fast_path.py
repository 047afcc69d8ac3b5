"""Intake records a new invoice without building its aggregate (Invoice.discovered_events);
the events must be exactly those discover() + take_content() record, on every branch."""
from __future__ import annotations

import uuid

import msgspec
import orjson
import pytest

from ledger.app import Ledger
from ledger.errors import LedgerError
from ledger.intake import record_invoice_file
from ledger.invoice import Invoice
from ledger.model import (ParsedInvoice, RuleViolation, content_hash, invoice_data_and_hash,
                          invoice_to_data)
from ledger.signing import EventKeys
from tests.builders import export_file, invoice, parsed

VIOLATIONS = [{"rule": "lines_sum_net", "field": "invoice_net", "message": "m", "line": 0},
              {"rule": "required", "field": "gl_account", "message": "empty", "line": 3}]


def _state(event: Invoice.Event) -> dict:
    return {k: v for k, v in vars(event).items() if k != "timestamp"}


@pytest.mark.parametrize("violations,approved", [([], True), ([], False), (VIOLATIONS, True),
                                                 (VIOLATIONS, False)])
def test_fast_path_events_equal_the_aggregate_path(violations, approved):
    id = uuid.uuid4()
    data = invoice_to_data(invoice(approval="Approved" if approved else "Pending"))
    source = dict(file_name="f.csv", file_sha256="abc")
    aggregate = Invoice.discover(id, company="10", vendor_id="V1", document_type="Invoice",
                                 invoice_number="N1", locations=[4, 9], **source)
    outcome = aggregate.take_content(data, "h", violations, locations=[4, 9],
                                     approved=approved, **source)
    expected = aggregate.collect_events()
    fast = Invoice.discovered_events(id, company="10", vendor_id="V1", document_type="Invoice",
                                     invoice_number="N1", locations=[4, 9], invoice=data,
                                     content_hash="h", violations=violations,
                                     approved=approved, **source)
    assert outcome == "parsed"
    assert [type(e) for e in fast] == [type(e) for e in expected]
    assert [list(vars(e)) for e in fast] == [list(vars(e)) for e in expected]  # stored order
    assert [_state(e) for e in fast] == [_state(e) for e in expected]


def test_new_and_known_invoices_in_one_batch(tmp_path):
    """Encoded events and event objects sealed in one save, every MAC valid."""
    keys = EventKeys({"0000000a": b"k" * 32}, "0000000a")
    ledger = Ledger(f"sqlite:///{tmp_path}/l.db")
    ledger.use_keys(keys)
    try:
        record_invoice_file(ledger, export_file("a.csv"), [parsed(invoice("A"))], ["Approved"])
        changed = invoice("A", lines=(("6100", "CC210", "90.00", "8.00"),))
        summary = record_invoice_file(ledger, export_file("b.csv"), [
            parsed(invoice("B")), parsed(changed), parsed(invoice("C"),
                                                          RuleViolation(rule="r", field="f",
                                                                        message="m"))],
            ["Approved"])
        assert (summary["invoices_new"], summary["amendments"]) == (2, 1)
        assert [e["type"] for e in ledger.history(invoice("C").id)] == [
            "Discovered", "Parsed", "Failed"]
        assert ledger.invoice(invoice("A").id).state == "parsed"
        assert ledger.invoice(invoice("B").id).version == 2
        stored = ledger.recorder.select_notifications(1, 100)
        # each file Downloaded + Parsed; A 2; then B 2, A Amended, C 3 (with Failed)
        assert len(stored) == 2 + 2 + 2 + 2 + 1 + 3
        assert [keys.check(e.originator_id, e.originator_version, e.topic, e.state)
                for e in stored] == [""] * len(stored)
    finally:
        ledger.close()


def test_a_parsed_invoice_carries_its_id_and_hash_through_the_workers_wire():
    inv = invoice("N 7", lines=(("6100", "CC210", "1E+2", "-0.000"),))
    item = parsed(inv)
    assert (item.id, item.content_hash) == (inv.id, content_hash(inv))
    wire = msgspec.msgpack.decode(msgspec.msgpack.encode(item), type=ParsedInvoice)
    assert wire == item and (wire.id, wire.content_hash) == (inv.id, content_hash(inv))


def test_data_and_hash_in_one_go_equal_the_two_functions():
    for inv in (invoice(), invoice("X 1", currency="JPY", lines=(("6100", "CC", "1E+2", "0"),)),
                invoice("é\u2028\x1f\"\\😀", lines=(("a", "b", "-0.000", "0E-8"),) * 3)):
        data, digest = invoice_data_and_hash(inv)
        assert data == invoice_to_data(inv) and list(data) == list(invoice_to_data(inv))
        assert digest == content_hash(inv)


def _stored_members(state: bytes) -> list:
    """A stored state's members in stored order, without the two that differ between two
    recordings of the same event: when (timestamp) and the MAC made over it."""
    return [(k, v) for k, v in orjson.loads(state).items() if k not in ("timestamp", "mlc_mac")]


@pytest.mark.parametrize("violations,approval", [((), "Approved"), ((), "Pending"),
                                                 ((RuleViolation(rule="r", field="f",
                                                                 message="m", line=3),),
                                                  "Approved")])
def test_stored_rows_equal_those_of_the_aggregate_path(tmp_path, violations, approval):
    """Intake encodes a new invoice's events itself (ledger/intake.py): the stored rows must
    be the ones the aggregate and the mapper make, MACed alike, and read back the same."""
    keys = EventKeys({"0000000a": b"k" * 32}, "0000000a")
    ledger = Ledger(f"sqlite:///{tmp_path}/l.db")
    ledger.use_keys(keys)
    try:
        inv = invoice("N 7", lines=(("6100", "CC210", "1E+2", "-0.000"),) * 2,
                      approval=approval)
        file = export_file("a.csv")
        record_invoice_file(ledger, file, [parsed(inv, *violations, line=4)], ["Approved"])
        stored = ledger.recorder.select_events(inv.id)
        expected_aggregate = Invoice.discover(
            inv.id, company=inv.company, vendor_id=inv.vendor_id,
            document_type=inv.document_type, invoice_number=inv.invoice_number,
            file_name=file.name, file_sha256=file.sha256, locations=[4])
        data, digest = invoice_data_and_hash(inv)
        expected_aggregate.take_content(
            data, digest, [{"rule": v.rule, "field": v.field, "message": v.message,
                            "line": v.line} for v in violations],
            file_name=file.name, file_sha256=file.sha256, locations=[4],
            approved=approval == "Approved")
        expected = [ledger.mapper.to_stored_event(e)
                    for e in expected_aggregate.collect_events()]
        assert len(stored) == len(expected) == (2 if approval == "Approved" and not violations
                                                else 3)
        assert [(e.topic, e.originator_version) for e in stored] == [
            (e.topic, e.originator_version) for e in expected]
        assert [_stored_members(e.state) for e in stored] == [
            _stored_members(e.state) for e in expected]
        assert all(keys.check(e.originator_id, e.originator_version, e.topic, e.state) == ""
                   for e in stored)
        read_back = ledger.invoice(inv.id)
        assert (read_back.version, read_back.state, read_back.content_hash) == (
            expected_aggregate.version, expected_aggregate.state, digest)
    finally:
        ledger.close()


def test_fast_path_events_are_refused_without_the_audit_key(tmp_path):
    ledger = Ledger(f"sqlite:///{tmp_path}/l.db")
    ledger.use_keys(None, refusal="the audit key could not be read")
    try:
        with pytest.raises(LedgerError, match="audit key"):
            record_invoice_file(ledger, export_file("a.csv"), [parsed(invoice("A"))],
                                ["Approved"])
        assert ledger.recorder.max_notification_id() is None
    finally:
        ledger.close()
