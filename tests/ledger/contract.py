"""The ledger contract: one suite, run against SQLite and PostgreSQL (subclassed per backend).
Each test drives the ledger as the pipeline does and asserts what the ledger and the status
projection then hold."""
from __future__ import annotations

import pytest

from ledger.app import Ledger
from ledger.errors import ConcurrentChange, LedgerError
from ledger.intake import record_invoice_file
from ledger.invoice import NotApproved
from ledger.model import RuleViolation
from projections.runner import Projector
from projections.status import read_status
from tests.builders import export_file, invoice, parsed

APPROVED = ["Approved"]


class LedgerContract:
    @pytest.fixture
    def url(self) -> str:  # pragma: no cover - each backend provides it
        raise NotImplementedError

    @pytest.fixture
    def ledger(self, url):
        app = Ledger(url)
        yield app
        app.close()

    @pytest.fixture
    def projector(self, ledger):
        projector = Projector(ledger)
        yield projector
        projector.store.close()

    def status(self, projector, state=None):
        projector.catch_up()
        with projector.store.transaction() as cur:
            return {r["invoice_number"]: r for r in read_status(cur, state)}

    def ingest(self, ledger, *items, name="invoices_1.csv", content=None):
        return record_invoice_file(ledger, export_file(name, content or name), items, APPROVED)

    # ------------------------------------------------------------------ intake

    def test_new_invoice_is_discovered_and_parsed_with_its_source(self, ledger, projector):
        inv = invoice("INV-1")
        summary = self.ingest(ledger, parsed(inv, line=7))
        assert summary["invoices_new"] == 1
        events = ledger.history(inv.id)
        assert [e["type"] for e in events] == ["Discovered", "Parsed"]
        assert events[0]["data"]["file_name"] == "invoices_1.csv"
        assert events[0]["data"]["locations"] == [7]
        assert events[1]["data"]["invoice"]["total"] == "108.00"
        assert events[0]["recorded_at"] <= events[1]["recorded_at"]
        assert all(e["data"]["connector_version"] for e in events)
        row = self.status(projector)["INV-1"]
        assert (row["state"], row["total"], row["currency"]) == ("parsed", "108.00", "USD")

    def test_same_invoice_number_from_two_vendors_are_two_invoices(self, ledger, projector):
        self.ingest(ledger, parsed(invoice("1001", "V1")), parsed(invoice("1001", "V2")))
        projector.catch_up()
        with projector.store.transaction() as cur:
            rows = read_status(cur)
        assert sorted(r["vendor_id"] for r in rows) == ["V1", "V2"]

    def test_same_content_again_is_a_duplicate(self, ledger, projector):
        inv = invoice("INV-1")
        self.ingest(ledger, parsed(inv), name="a.csv")
        summary = self.ingest(ledger, parsed(inv), name="b.csv")
        assert (summary["duplicates"], summary["invoices_new"]) == (1, 0)
        assert [e["type"] for e in ledger.history(inv.id)][-1] == "SeenAgain"
        assert self.status(projector)["INV-1"]["state"] == "parsed"

    def test_normalized_invoice_number_lands_on_the_same_stream(self, ledger):
        self.ingest(ledger, parsed(invoice("INV-1")))
        assert invoice(" inv-1 ").id == invoice("INV-1").id
        assert ledger.find_invoice(invoice("i n v-1").id) is not None

    def test_changed_before_posting_is_an_amendment(self, ledger, projector):
        self.ingest(ledger, parsed(invoice("INV-1")), name="a.csv")
        amended = invoice("INV-1", lines=(("6100", "CC210", "150.00", "12.00"),))
        summary = self.ingest(ledger, parsed(amended), name="b.csv")
        assert summary["amendments"] == 1
        events = ledger.history(amended.id)
        assert [e["type"] for e in events] == ["Discovered", "Parsed", "Amended"]
        assert events[1]["data"]["invoice"]["total"] == "108.00"   # the old content is kept
        assert events[2]["data"]["previous_hash"] == events[1]["data"]["content_hash"]
        assert self.status(projector)["INV-1"]["total"] == "162.00"

    def test_pending_waits_then_approved_export_proceeds(self, ledger, projector):
        self.ingest(ledger, parsed(invoice("INV-1", approval="Pending")), name="a.csv")
        assert self.status(projector)["INV-1"]["state"] == "awaiting_approval"
        self.ingest(ledger, parsed(invoice("INV-1")), name="b.csv")
        assert self.status(projector)["INV-1"]["state"] == "parsed"

    def test_rule_violation_parks_the_invoice_as_data_failure(self, ledger, projector):
        bad = RuleViolation(rule="lines_sum_net", field="invoice_net", line=3,
                            message="lines add up to 90.00, InvoiceNet is 100.00")
        self.ingest(ledger, parsed(invoice("INV-1"), bad))
        row = self.status(projector)["INV-1"]
        assert (row["state"], row["failure_kind"]) == ("failed", "data")
        assert "line 3" in row["failure_message"] and "InvoiceNet is 100.00" in row["failure_message"]

    def test_references_people_type_find_the_invoice_even_with_slashes(self, ledger):
        slashed, credit = invoice("INV/77/1"), invoice("CN-9", document_type="CreditNote")
        self.ingest(ledger, parsed(slashed), parsed(credit))
        assert ledger.resolve_ref("V00231/INV/77/1", "10") == slashed.id
        assert ledger.resolve_ref("10/V00231/Invoice/INV/77/1", "10") == slashed.id
        assert ledger.resolve_ref("V00231/CN-9", "10") == credit.id
        assert ledger.resolve_ref(str(credit.id), "10") == credit.id
        with pytest.raises(LedgerError, match="no invoice V00231/INV/77/2"):
            ledger.resolve_ref("V00231/INV/77/2", "10")
        with pytest.raises(LedgerError, match="not an invoice reference"):
            ledger.resolve_ref("INV-77", "10")

    # ------------------------------------------------------------------ posting and replay

    def _post(self, ledger, inv_id):
        inv = ledger.invoice(inv_id)
        inv.validate(["account 6100"], "snap-1")
        inv.resolve_vendor("V00231", "existing")
        inv.intend_posting("worker-a", approved_statuses=APPROVED)
        inv.post("4711", {"VoucherNo": 9}, {"invoice": 'W/"x"'}, [{"method": "POST"}])
        ledger.record(inv)

    def test_changed_after_posting_needs_attention_and_is_not_reposted(self, ledger, projector):
        inv = invoice("INV-1")
        self.ingest(ledger, parsed(inv), name="a.csv")
        self._post(ledger, inv.id)
        changed = invoice("INV-1", lines=(("6100", "CC210", "1.00", "0.00"),))
        summary = self.ingest(ledger, parsed(changed), name="b.csv")
        assert summary["changed_after_posting"] == 1
        row = self.status(projector)["INV-1"]
        assert (row["state"], row["ifs_invoice_id"]) == ("needs_attention", "4711")
        assert "already posted in IFS" in row["failure_message"]

    def test_changed_while_posting_says_ifs_may_hold_the_earlier_content(self, ledger,
                                                                          projector):
        inv = invoice("INV-1")
        self.ingest(ledger, parsed(inv), name="a.csv")
        agg = ledger.invoice(inv.id)
        agg.validate(["account 6100"], "snap-1")
        agg.resolve_vendor("V00231", "existing")
        agg.intend_posting("worker-a", approved_statuses=APPROVED)   # the answer never came
        ledger.record(agg)
        changed = invoice("INV-1", lines=(("6100", "CC210", "1.00", "0.00"),))
        summary = self.ingest(ledger, parsed(changed), name="b.csv")
        assert summary["failed"][0]["kind"] == "conflict"
        row = self.status(projector)["INV-1"]
        assert row["state"] == "needs_attention"
        assert "while it was being posted" in row["failure_message"]
        assert f"ExternalRef {inv.id}" in row["failure_message"]

    def test_posted_invoice_shows_ifs_keys(self, ledger, projector):
        inv = invoice("INV-1")
        self.ingest(ledger, parsed(inv))
        self._post(ledger, inv.id)
        row = self.status(projector)["INV-1"]
        assert (row["state"], row["ifs_invoice_id"], row["ifs_voucher_no"]) == \
            ("posted", "4711", "9")
        posted = ledger.history(inv.id)[-1]
        assert posted["type"] == "Posted" and posted["data"]["exchanges"] == [{"method": "POST"}]

    def test_replay_appends_and_restores_the_state_before_the_failure(self, ledger, projector):
        inv = invoice("INV-1")
        self.ingest(ledger, parsed(inv))
        agg = ledger.invoice(inv.id)
        agg.fail("validate", "reference", "GL account 6999 does not exist")
        ledger.record(agg)
        before = ledger.history(inv.id)
        assert self.status(projector)["INV-1"]["state"] == "failed"
        ledger.request_replay(inv.id, None, "test", operator="tester")
        after = ledger.history(inv.id)
        assert after[:len(before)] == before                      # history never rewritten
        assert after[-1]["type"] == "Retried"
        assert after[-1]["data"]["restored_state"] == "parsed"
        assert (after[-1]["data"]["operator"], after[-1]["data"]["reason"]) == ("tester", "test")
        row = self.status(projector)["INV-1"]
        assert (row["state"], row["failure_kind"]) == ("parsed", "")

    def test_replay_goes_back_past_every_failure_and_earlier_replay(self, ledger, projector):
        inv = invoice("INV-1")
        self.ingest(ledger, parsed(inv))
        agg = ledger.invoice(inv.id)
        agg.validate(["x"], "s")
        agg.resolve_vendor("V00231", "existing")                   # event 4
        agg.fail("post", "transient", "IFS answered 503")
        ledger.record(agg)
        _, went_back_to = ledger.request_replay(inv.id, None, "first", operator="tester")
        agg = ledger.invoice(inv.id)
        agg.fail("post", "transient", "IFS answered 503 again")
        agg.fail("post", "transient", "and again")
        ledger.record(agg)
        _, second = ledger.request_replay(inv.id, None, "second", operator="tester")
        assert went_back_to == second == 4
        assert [e["type"] for e in ledger.history(inv.id)][4:] == [
            "Failed", "Retried", "Failed", "Failed", "Retried"]
        assert self.status(projector)["INV-1"]["state"] == "vendor_resolved"

    def test_replay_from_an_event_number(self, ledger, projector):
        inv = invoice("INV-1")
        self.ingest(ledger, parsed(inv))
        agg = ledger.invoice(inv.id)
        agg.validate(["x"], "s")
        agg.resolve_vendor("V00231", "existing")
        ledger.record(agg)
        ledger.request_replay(inv.id, 3, "re-check references",   # after Validated
                             operator="tester")
        assert self.status(projector)["INV-1"]["state"] == "validated"

    def test_replay_that_could_post_twice_is_refused(self, ledger):
        inv = invoice("INV-1")
        self.ingest(ledger, parsed(inv))
        self._post(ledger, inv.id)
        with pytest.raises(LedgerError, match="already posted"):
            ledger.request_replay(inv.id, 2, "test", operator="tester")

    # ------------------------------------------------------------------ the approval gate

    def _approved_then_withdrawn(self, ledger):
        """1 Discovered 2 Parsed (Approved) 3 Validated 4 Amended (Pending) 5 AwaitingApproval"""
        self.ingest(ledger, parsed(invoice("INV-1")), name="a.csv")
        agg = ledger.invoice(invoice("INV-1").id)
        agg.validate(["x"], "s")
        ledger.record(agg)
        self.ingest(ledger, parsed(invoice("INV-1", approval="Pending")), name="b.csv")
        return agg.id

    def test_a_replay_cannot_skip_the_approval(self, ledger, projector):
        inv = invoice("INV-1", approval="Pending")
        self.ingest(ledger, parsed(inv))                 # 1 Discovered 2 Parsed 3 Awaiting
        for target in (1, 2, 4):
            with pytest.raises(LedgerError, match=r"\(allowed: --from 3\)"):
                ledger.request_replay(inv.id, target, "test", approved_statuses=APPROVED,
                                      operator="tester")
        with pytest.raises(LedgerError, match="not approved in Stampli .approval status"
                           " 'Pending'.*replaying it to 'parsed' would skip the approval"):
            # the recorded judgement suffices
            ledger.request_replay(inv.id, 2, "test", operator="tester")
        assert [e["type"] for e in ledger.history(inv.id)][-1] == "AwaitingApproval"
        _, went_back_to = ledger.request_replay(inv.id, None, "test", approved_statuses=APPROVED,
                                      operator="tester")
        assert went_back_to == 3                         # a no-op: it still waits
        assert self.status(projector)["INV-1"]["state"] == "awaiting_approval"

    def test_a_replay_cannot_resurrect_replaced_content(self, ledger, projector):
        inv_id = self._approved_then_withdrawn(ledger)
        for target, why in ((2, "before event 4 .Amended"), (3, "before event 4 .Amended"),
                            (4, "not approved"), (6, "has events 1..5")):
            with pytest.raises(LedgerError, match=why):
                ledger.request_replay(inv_id, target, "test", approved_statuses=APPROVED,
                                      operator="tester")
        assert self.status(projector)["INV-1"]["state"] == "awaiting_approval"

    def test_content_the_settings_do_not_approve_cannot_be_replayed_on(self, ledger):
        inv = invoice("INV-1", approval="Approved")
        self.ingest(ledger, parsed(inv))
        with pytest.raises(LedgerError, match="approval status 'Approved'"):
            ledger.request_replay(inv.id, 2, "test", approved_statuses=["Final"], operator="tester")
        ledger.request_replay(inv.id, 2, "test", approved_statuses=APPROVED,
                                      operator="tester")

    def test_a_replay_to_a_failure_names_the_step_before(self, ledger):
        inv = invoice("INV-1")
        self.ingest(ledger, parsed(inv))
        agg = ledger.invoice(inv.id)
        agg.validate(["x"], "s")
        agg.fail("resolve_vendor", "rejected", "IFS refused the supplier")   # event 4
        ledger.record(agg)
        with pytest.raises(LedgerError, match=r"recorded a failure.*\(allowed: --from 2..3\)"):
            ledger.request_replay(inv.id, 4, "test", approved_statuses=APPROVED,
                                      operator="tester")
        _, went_back_to = ledger.request_replay(inv.id, None, "test", approved_statuses=APPROVED,
                                      operator="tester")
        assert went_back_to == 3

    def test_the_posting_intent_refuses_content_that_is_not_approved(self, ledger):
        inv_id = self._approved_then_withdrawn(ledger)
        agg = ledger.invoice(inv_id)
        # as an earlier connector's replay left it: back to 'validated' on pending content
        agg.request_replay(3, "validated", "recorded before the approval gate existed")
        agg.resolve_vendor("V00231", "existing")
        with pytest.raises(NotApproved, match="not approved in Stampli"):
            agg.intend_posting("w", approved_statuses=["Approved", "Pending"])
        self.ingest(ledger, parsed(invoice("INV-2")))
        fresh = ledger.invoice(invoice("INV-2").id)
        fresh.validate(["x"], "s")
        fresh.resolve_vendor("V00231", "existing")
        with pytest.raises(NotApproved, match="approval status 'Approved'"):
            fresh.intend_posting("w", approved_statuses=["Final"])
        fresh.intend_posting("w", approved_statuses=APPROVED)

    def test_posting_intent_is_a_lock_between_processes(self, ledger, url):
        inv = invoice("INV-1")
        self.ingest(ledger, parsed(inv))
        agg = ledger.invoice(inv.id)
        agg.validate(["x"], "s")
        agg.resolve_vendor("V00231", "existing")
        ledger.record(agg)
        other = Ledger(url)
        try:
            mine, theirs = ledger.invoice(inv.id), other.invoice(inv.id)
            mine.intend_posting("a", approved_statuses=APPROVED)
            theirs.intend_posting("b", approved_statuses=APPROVED)
            ledger.record(mine)
            with pytest.raises(ConcurrentChange):
                other.record(theirs)
        finally:
            other.close()
        intents = [e for e in ledger.history(inv.id) if e["type"] == "PostingIntended"]
        assert [e["data"]["worker"] for e in intents] == ["a"]

    # ------------------------------------------------------------------ projections

    def test_rebuilt_projection_equals_the_live_one(self, ledger, projector):
        for n in range(30):
            self.ingest(ledger, parsed(invoice(f"INV-{n}", approval="Pending" if n % 3 else
                                               "Approved")), name=f"f{n}.csv")
            if n % 4 == 0:
                projector.catch_up()                              # live, step by step
        live = self.status(projector)
        projector.rebuild()
        assert self.status(projector) == live
        projector.rebuild(from_position=5)
        assert self.status(projector) == live
