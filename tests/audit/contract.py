"""The audit chain contract: one suite, run on SQLite and PostgreSQL (subclassed per backend),
each test twice: with checkpoints every 5 events (localised by many small segments) and with
the default 1000 (everything in the head's open segment)."""
from __future__ import annotations

import pytest

from ledger.app import Ledger
from ledger.intake import record_invoice_file
from projections import audit
from projections.audit import AuditChainError, AuditChainProjection, recompute
from projections.audit_verify import verify
from projections.audit_digest import current_digest
from projections.runner import Projector, default_projections
from tests.audit.tamper import Tamper
from tests.builders import export_file, invoice, parsed

EVENTS_PER_FILE = 14            # 6 invoices x (Discovered, Parsed) + the file's 2 events


def ingest(ledger: Ledger, batch: int, invoices: int = 6, prefix: str = "INV") -> None:
    record_invoice_file(ledger, export_file(f"invoices_{prefix}_{batch}.csv",
                                            content=f"{prefix}{batch}"),
                        [parsed(invoice(f"{prefix}-{batch}-{i}")) for i in range(invoices)],
                        ["Approved"])


class AuditContract:
    @pytest.fixture
    def url(self) -> str:  # pragma: no cover - each backend provides it
        raise NotImplementedError

    @pytest.fixture(params=[5, 1000], ids=["every5", "every1000"])
    def every(self, request) -> int:
        return request.param

    @pytest.fixture
    def ledger(self, url):
        app = Ledger(url)
        yield app
        app.close()

    @pytest.fixture
    def projector(self, ledger, every):
        # Beside the other projections, in small pages: the chain must survive both.
        others = [p for p in default_projections() if p.name != "audit_chain"]
        projector = Projector(ledger, projections=others + [AuditChainProjection(every)],
                              page_size=7)
        yield projector
        projector.store.close()

    @pytest.fixture
    def tamper(self, url):
        t = Tamper(url)
        yield t
        t.close()

    @pytest.fixture
    def digest(self, ledger, projector):
        """42 events, chained; the digest a user would keep."""
        for batch in range(3):
            ingest(ledger, batch)
        projector.catch_up()
        return current_digest(ledger, projector.store)

    def check(self, ledger, projector, digest=None):
        return verify(ledger, digest, store=projector.store)

    # ----------------------------------------------------------------- untouched

    def test_untouched_ledger_verifies(self, ledger, projector, digest):
        assert digest["position"] == digest["events"] == 3 * EVENTS_PER_FILE
        assert digest["hash"] == recompute(ledger)[1].hex()
        for given in (digest, None):
            result = self.check(ledger, projector, given)
            assert result.ok, result.problems
            assert result.checked == 42 and result.last_position == 42
            assert result.first_break is None and result.reason == ""
        assert result.reference == "checkpoints"
        assert self.check(ledger, projector, digest).digest_ok is True

    def test_documented_encoding_recomputes_the_digest(self, digest, tamper):
        # The auditor's lines from the module docstring, run as written on raw rows.
        doc = audit.__doc__
        block = doc[doc.index("    link = bytes(32)"):doc.index("A digest (")].strip("\n")
        scope = {"rows": tamper.rows()}
        exec("import hashlib, uuid\n" + "\n".join(line[4:] for line in block.splitlines()),
             scope)
        assert scope["link"].hex() == digest["hash"]

    def test_earlier_digest_still_verifies_after_appends(self, ledger, projector, digest):
        ingest(ledger, 3)
        assert self.check(ledger, projector, digest).ok          # not yet chained
        projector.catch_up()
        ingest(ledger, 4)
        result = self.check(ledger, projector, digest)
        assert result.ok and result.digest_ok and result.checked == 5 * EVENTS_PER_FILE
        later = current_digest(ledger, projector.store)
        assert later["position"] == 70 and later["hash"] != digest["hash"]
        assert self.check(ledger, projector, later).ok

    def test_digest_of_another_ledger_fails(self, ledger, projector, digest, tmp_path):
        other = Ledger(f"sqlite:///{tmp_path}/other.db")
        try:
            for batch in range(3):
                ingest(other, batch, prefix="OTHER")
            foreign = current_digest(other)
        finally:
            other.close()
        assert (foreign["position"], foreign["events"]) == (digest["position"], 42)
        result = self.check(ledger, projector, foreign)
        assert not result.ok and result.digest_ok is False
        assert result.first_break == 42 and "differs from the digest" in result.reason
        forged = dict(digest, hash=digest["hash"][:-1] + ("0" if digest["hash"][-1] != "0"
                                                          else "1"))
        assert self.check(ledger, projector, forged).digest_ok is False

    # ----------------------------------------------------------------- tampering

    def test_one_changed_byte_is_named(self, ledger, projector, digest, tamper):
        tamper.flip_byte(17)
        for given in (digest, None):
            result = self.check(ledger, projector, given)
            assert not result.ok and result.first_break == 17
            assert result.reason.startswith("event at position 17 differs from checkpoint")
            assert "state changed" in result.reason
            assert [p.position for p in result.problems if p.kind == "changed"] == [17]
        assert self.check(ledger, projector, digest).digest_ok is False

    def test_deleted_event_is_a_gap(self, ledger, projector, digest, tamper):
        tamper.delete(12)
        result = self.check(ledger, projector, digest)
        assert not result.ok and not result.digest_ok and result.checked == 41
        assert result.first_break == 12
        assert result.reason.startswith("position 12 is missing (gap)")
        assert any(p.kind == "digest" and "1 event(s) missing" in p.message
                   for p in result.problems)

    def test_swapped_states_are_out_of_order(self, ledger, projector, digest, tamper):
        tamper.swap_states(5, 9)
        result = self.check(ledger, projector, None)
        assert not result.ok and result.first_break == 5
        assert result.reason == ("event at position 5 holds the state the chain recorded at"
                                 " position 9 (events out of order)")
        assert [(p.position, p.kind) for p in result.problems] == [
            (5, "out_of_order"), (9, "out_of_order")]
        assert self.check(ledger, projector, digest).digest_ok is False

    def test_swapped_notification_ids_are_out_of_order(self, ledger, projector, digest,
                                                       tamper):
        tamper.swap_ids(3, 8)
        result = self.check(ledger, projector, digest)
        assert not result.ok and not result.digest_ok and result.first_break == 3
        assert result.reason == ("event at position 3 is the one the chain recorded at"
                                 " position 8 (events out of order)")
        assert {(p.position, p.kind) for p in result.problems if p.kind != "digest"} == {
            (3, "out_of_order"), (8, "out_of_order")}

    def test_truncated_tail(self, ledger, projector, digest, tamper):
        tamper.truncate_after(30)
        result = self.check(ledger, projector, digest)
        assert not result.ok and not result.digest_ok and result.last_position == 30
        assert result.first_break == 31
        assert {p.message for p in result.problems} >= {
            "ledger ends at 30 but the digest says 42 (truncated)"}
        assert result.reason == "ledger ends at 30 but the digest says 42 (truncated)"
        alone = self.check(ledger, projector, None)
        assert alone.reason == ("ledger ends at 30 but the checkpoints record events up to 42"
                                " (truncated)")

    def test_an_event_put_into_a_chained_gap_is_inserted(self, ledger, projector, tamper):
        # A gap present when the chain was recorded (PostgreSQL sequences can skip values)
        # is part of the chain, not a break; filling it afterwards is one.
        for batch in range(2):
            ingest(ledger, batch)
        row = tamper.raw_row(12)
        tamper.delete(12)
        projector.catch_up()
        digest = current_digest(ledger, projector.store)
        assert digest["events"] == 27 and self.check(ledger, projector, digest).ok
        tamper.insert(row)
        result = self.check(ledger, projector, digest)
        assert not result.ok and not result.digest_ok and result.first_break == 12
        assert result.problems[0].kind == "inserted"
        assert result.reason.startswith("event at position 12 was not in the ledger")

    def test_empty_ledger(self, ledger, projector):
        projector.catch_up()
        digest = current_digest(ledger, projector.store)
        assert (digest["position"], digest["hash"], digest["events"]) == (0, "0" * 64, 0)
        assert self.check(ledger, projector, digest).ok
        ingest(ledger, 0)
        projector.catch_up()
        result = self.check(ledger, projector, digest)
        assert result.ok and result.checked == EVENTS_PER_FILE

    def test_digest_alone_catches_a_change_without_the_projection(self, ledger, projector,
                                                                  digest, tamper):
        with projector.store.transaction() as cur:
            AuditChainProjection().drop(cur)
        assert self.check(ledger, projector, digest).ok
        tamper.flip_byte(40)
        result = self.check(ledger, projector, digest)
        assert result.reference == "digest" and not result.ok and result.first_break == 42
        assert "differs from the digest" in result.reason
        tamper.delete(7)                       # a gap is named even without checkpoints
        assert self.check(ledger, projector, digest).first_break == 7

    def test_two_separate_breaks_are_both_named(self, ledger, projector, digest, tamper):
        tamper.flip_byte(2)
        tamper.flip_byte(38)
        result = self.check(ledger, projector, None)
        assert [(p.position, p.kind) for p in result.problems] == [
            (2, "changed"), (38, "changed")]          # and no cascade of checkpoint failures

    def test_a_changed_checkpoint_is_reported(self, ledger, projector, digest):
        table = audit.HEAD if projector.projections[-1].checkpoint_every > 42 \
            else audit.CHECKPOINTS
        with projector.store.transaction() as cur:
            cur.execute(f"UPDATE {table} SET link_hex = ? WHERE position ="
                        f" (SELECT MIN(position) FROM {table})", ("ab" * 32,))
        result = self.check(ledger, projector, digest)
        assert result.digest_ok is True and not result.ok       # the digest itself holds
        assert [p.kind for p in result.problems] == ["checkpoint"]

    # ----------------------------------------------------------------- the projection

    def test_live_chain_equals_one_rebuilt_from_scratch(self, ledger, projector, every):
        for batch in range(4):               # appended and chained page by page, in rounds
            ingest(ledger, batch, invoices=batch + 2)
            projector.catch_up()
        live = self.chain_tables(projector)
        assert live[1][0][:3] == (ledger.recorder.max_notification_id(),
                                  recompute(ledger)[1].hex(), 36)
        projector.rebuild(from_position=10)    # re-applying must not chain events twice
        assert self.chain_tables(projector) == live
        projector.rebuild()
        assert self.chain_tables(projector) == live
        fresh = Projector(ledger, projector.store, [AuditChainProjection(every)],
                          page_size=1000)
        fresh.rebuild()
        assert self.chain_tables(fresh) == live
        assert len(live[0]) == 36 // every

    def test_a_lost_head_stops_the_chain_instead_of_forking_it(self, ledger, projector,
                                                               digest):
        with projector.store.transaction() as cur:       # tables emptied, position kept
            AuditChainProjection().drop(cur)
        ingest(ledger, 3)
        with pytest.raises(AuditChainError, match="rebuild the audit_chain projection"):
            Projector(ledger, projector.store, [AuditChainProjection()]).catch_up()
        with pytest.raises(AuditChainError):             # a read-model rebuild leaves it
            projector.rebuild()
        projector.rebuild(include_evidence=True)
        assert self.check(ledger, projector, digest).ok

    @staticmethod
    def chain_tables(projector):
        columns = "position, link_hex, events, positions, leaves"     # not recorded_at
        with projector.store.transaction() as cur:
            return tuple(cur.execute(f"SELECT {columns} FROM {table} ORDER BY position")
                         .fetchall() for table in (audit.CHECKPOINTS, audit.HEAD))

    def test_progress_is_reported_by_position(self, ledger, projector, digest):
        seen = []
        verify(ledger, digest, lambda done, total: seen.append((done, total)),
               store=projector.store, page_size=10)
        assert seen == [(10, 42), (20, 42), (30, 42), (40, 42), (42, 42)]
