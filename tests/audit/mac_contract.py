"""The event MAC contract (ledger/signing.py, projections/audit_macs.py), run on SQLite and
PostgreSQL: every write path MACs its events, and whatever someone with database access but
without the key does to an event (adds, copies, moves, re-dates, strips) is named by verify."""
from __future__ import annotations

import re
import uuid

import orjson
import pytest

from ledger import audit_trail
from ledger.app import Ledger
from ledger.intake import record_invoice_file, record_vendor_file
from ledger.model import VendorRecord
from ledger.signing import EventKeys, split
from projections.audit import AuditChainProjection, recompute
from projections.audit_macs import MacPolicy
from projections.audit_verify import verify
from projections.runner import Projector
from projections.store import open_view_store
from tests.audit.tamper import Tamper
from tests.builders import export_file, invoice, parsed

OLD, NEW = "0000000a", "0000000b"
RING = {OLD: b"\x01" * 32, NEW: b"\x02" * 32}


def keys(*ids: str, current: str | None = None) -> EventKeys:
    ids = ids or (OLD,)
    return EventKeys({i: RING[i] for i in ids}, current or ids[-1])


def populate(ledger: Ledger, tag: str = "A") -> None:
    """Each write path: intake's fast path, an amendment through the aggregate, a vendor file,
    a posting, the audit trail."""
    record_invoice_file(ledger, export_file(f"invoices_{tag}_1.csv", content=f"{tag}1"),
                        [parsed(invoice(f"{tag}-1")), parsed(invoice(f"{tag}-2",
                                                                     approval="Pending"))],
                        ["Approved"])
    record_invoice_file(ledger, export_file(f"invoices_{tag}_2.csv", content=f"{tag}2"),
                        [parsed(invoice(f"{tag}-2", approval="Pending",
                                        lines=(("6100", "CC210", "90.00", "8.00"),)))],
                        ["Approved"])
    vendor = VendorRecord(vendor_id=f"V-{tag}", name="Acme")
    record_vendor_file(ledger, export_file(f"vendors_{tag}.csv", content=f"v{tag}"), [vendor])
    agg = ledger.invoice(invoice(f"{tag}-1").id)
    agg.validate(["accounts"], "ref-1")
    agg.resolve_vendor("S-100", "by id")
    agg.intend_posting("worker-1", approved_statuses=["Approved"])
    agg.post("IFS-1", {"voucher_no": "V-1"}, {}, [])
    ledger.record(agg)
    audit_trail.record_key(ledger, ledger.keys.current if ledger.keys else "", origin="test")


class MacContract:
    @pytest.fixture
    def url(self) -> str:  # pragma: no cover - each backend provides it
        raise NotImplementedError

    @pytest.fixture
    def ledger(self, url):
        app = Ledger(url)
        app.use_keys(keys())
        yield app
        app.close()

    @pytest.fixture
    def store(self, url):
        view_store = open_view_store(url)
        yield view_store
        view_store.close()

    @pytest.fixture
    def tamper(self, url):
        t = Tamper(url)
        yield t
        t.close()

    def check(self, ledger, store, policy=None):
        return verify(ledger, store=store, macs=policy or MacPolicy(keys(OLD, NEW)))

    # ----------------------------------------------------------------- writing

    def test_every_write_path_macs_its_events(self, ledger, store, tamper):
        populate(ledger)
        rows = tamper.rows()
        assert len(rows) > 15 and all(split(state) is not None for *_, state in rows)
        assert {t.rsplit(".", 2)[1] for _, _, _, t, _ in rows} >= {"invoice", "file", "vendor",
                                                                  "audit"}
        result = self.check(ledger, store)
        assert result.ok, result.problems
        assert result.macs_checked == result.checked == len(rows)
        # The MAC is not part of what the events say.
        assert "mlc_mac" not in str(ledger.history(invoice("A-1").id))

    # ----------------------------------------------------------------- forging

    def test_a_copied_event_is_named_with_where_it_came_from(self, ledger, store, tamper):
        populate(ledger)
        posted = tamper.find(".Posted")[0]
        awaiting = tamper.find(".AwaitingApproval")[-1]
        version = max(v for p, o, v, t, s in tamper.rows() if o == awaiting[1]) + 1
        at = tamper.append(awaiting[0], version, posted[3], posted[4])
        result = self.check(ledger, store)
        assert not result.ok and result.first_break == at
        assert [(p.position, p.kind) for p in result.problems] == [(at, "forged")]
        assert result.reason.startswith(f"Posted event at position {at} (stream ")
        assert f"version {version}) fails its MAC" in result.reason
        assert result.reason.endswith(f"it is a copy of the Posted event at position"
                                      f" {posted[0]} (stream {_uuid(posted[1])}, version"
                                      f" {posted[2]})")

    def test_an_event_written_by_hand_carries_no_mac(self, ledger, store, tamper):
        populate(ledger)
        awaiting = tamper.find(".AwaitingApproval")[-1]
        body = orjson.loads(split(awaiting[4]).body)
        body.update(ifs_invoice_id="IFS-9", voucher={}, etags={}, exchanges=[],
                    found_existing=False, content_hash="x")
        at = tamper.append(awaiting[0], 99, awaiting[3].replace("AwaitingApproval", "Posted"),
                           orjson.dumps(body))
        result = self.check(ledger, store)
        assert (result.first_break, result.problems[0].kind) == (at, "unsigned")
        assert "carries no MAC" in result.reason and "version 99" in result.reason

    def test_a_redated_event_fails_its_mac(self, ledger, store, tamper):
        populate(ledger)
        posted = tamper.find(".Posted")[0]
        redated = re.sub(rb'"timestamp":"\d{4}', b'"timestamp":"2020', posted[4], count=1)
        assert redated != posted[4] and split(redated).mac == split(posted[4]).mac
        tamper.set_state(posted[0], redated)
        result = self.check(ledger, store)
        assert [(p.position, p.kind) for p in result.problems] == [(posted[0], "forged")]
        assert "copy of" not in result.reason

    def test_an_event_moved_to_another_version_fails_its_mac(self, ledger, store, tamper):
        populate(ledger)
        posted = tamper.find(".Posted")[0]
        tamper.sql("UPDATE {t} SET originator_version = {m} WHERE {id} = {m}", 50, posted[0])
        result = self.check(ledger, store)
        assert [(p.position, p.kind) for p in result.problems] == [(posted[0], "forged")]

    def test_a_stripped_mac_is_an_unsigned_event(self, ledger, store, tamper):
        populate(ledger)
        first = tamper.rows()[0]
        tamper.set_state(first[0], split(first[4]).body)
        assert [p.kind for p in self.check(ledger, store).problems] == ["unsigned"]

    # ----------------------------------------------------------------- keys

    def test_a_key_this_store_does_not_hold_is_named(self, ledger, store):
        populate(ledger)
        result = self.check(ledger, store, MacPolicy(keys(NEW)))
        assert not result.ok and {p.kind for p in result.problems} == {"unknown_key"}
        assert f"audit key '{OLD}'" in result.reason

    def test_rotated_keys_verify_old_and_new_events(self, ledger, store, tamper):
        populate(ledger, "A")
        ledger.use_keys(keys(OLD, NEW, current=NEW))
        populate(ledger, "B")
        used = {split(state).key_id for *_, state in tamper.rows()}
        assert used == {OLD, NEW}
        assert self.check(ledger, store).ok
        only_new = self.check(ledger, store, MacPolicy(keys(NEW)))
        assert {p.kind for p in only_new.problems} == {"unknown_key"}

    def test_events_from_before_the_key_are_held_to_the_link_kept_with_it(self, ledger, store,
                                                                         tamper):
        ledger.use_keys(None)
        populate(ledger, "A")                           # an install from before MACs
        upto = ledger.recorder.max_notification_id()
        policy = MacPolicy(keys(OLD), upto, recompute(ledger, upto)[1].hex())
        ledger.use_keys(keys(OLD))
        populate(ledger, "B")
        result = self.check(ledger, store, policy)
        # Positions may skip on PostgreSQL (a save that failed used sequence values): count.
        before = len(ledger.recorder.select_notifications(1, 10_000, stop=upto))
        assert result.ok and result.macs_checked == result.checked - before
        tamper.flip_byte(3)
        result = self.check(ledger, store, policy)
        assert [(p.position, p.kind) for p in result.problems] == [(upto, "sealed")]
        assert "recorded before the audit key existed, changed" in result.reason

    # ----------------------------------------------------------------- the chain's tables

    def test_dropped_chain_tables_are_reported(self, ledger, store):
        populate(ledger)
        projector = Projector(ledger, store, [AuditChainProjection()])
        projector.catch_up()
        audit_trail.record_chain_started(ledger, ledger.recorder.max_notification_id())
        projector.catch_up()
        assert self.check(ledger, store).ok
        with store.transaction() as cur:
            AuditChainProjection().drop(cur)
        result = self.check(ledger, store)
        assert [p.kind for p in result.problems] == ["chain_lost"]
        assert "tables are gone" in result.reason and "dropped or emptied" in result.reason


def _uuid(value) -> str:
    return str(uuid.UUID(str(value)))
