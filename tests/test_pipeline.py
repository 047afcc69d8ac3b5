"""The pipeline end to end on the real ledger (SQLite) with in-memory ports: what the ledger
holds and what "IFS" received after each sync."""
from __future__ import annotations

import hashlib
import os
import shutil
import time
from functools import partial
from pathlib import Path
from uuid import UUID

import pytest

from adapters.settings import settings_from_dict
from ledger.model import export_file_id, vendor_stream_id
from ledger.ports import ErpFailure
from runtime import Runtime
from tests.fakes import FakeErp, FolderSource

SAMPLES = Path(__file__).resolve().parents[1] / "sandbox" / "data"


def config(tmp_path: Path, **connector) -> dict:
    return {"connector": {"company": "10", "ledger": f"sqlite:///{tmp_path}/ledger.db",
                          "data_dir": str(tmp_path / "data"), "retry_base": "0s",
                          "max_attempts": 3, **connector},
            "stampli": {"host": "sftp.invalid", "username": "u", "min_file_age": "0s",
                        "stable_wait": "0s", "companies": {"C1042": "10"}},
            "ifs": {"base_url": "http://ifs.invalid"}}


@pytest.fixture
def outbound(tmp_path):
    folder = tmp_path / "outbound"
    folder.mkdir()
    for sample in SAMPLES.glob("*_C1042_*"):
        shutil.copy(sample, folder)
    return folder


def make_runtime(tmp_path, outbound, erp, invoices=None, **connector):
    """`invoices`: the [stampli.invoices] settings, when not the defaults."""
    settings = config(tmp_path, **connector)
    if invoices is not None:
        settings["stampli"]["invoices"] = invoices
    return Runtime(settings_from_dict(settings), erp=erp, source=FolderSource(outbound))


def sync(tmp_path, outbound, erp, invoices=None, **connector):
    rt = make_runtime(tmp_path, outbound, erp, invoices, **connector)
    try:
        report = rt.sync_blocking()
        return report, {(r["vendor_id"], r["invoice_number"]): r for r in rt.status_rows()}
    finally:
        rt.close()


def test_samples_post_and_pending_waits(tmp_path, outbound):
    erp = FakeErp()
    report, rows = sync(tmp_path, outbound, erp)
    assert report.errors == []
    states = {key: row["state"] for key, row in rows.items()}
    assert states == {("V00231", "INV-2026-0117"): "posted", ("V00231", "CN-2026-0009"): "posted",
                      ("V00877", "INV-2026-0117"): "posted", ("V00231", "A-5531"): "posted",
                      ("V00231", "7781"): "awaiting_approval"}
    assert sorted(d["invoice_number"] for d in erp.documents.values()) == \
        ["A-5531", "CN-2026-0009", "INV-2026-0117", "INV-2026-0117"]
    assert rows[("V00877", "INV-2026-0117")]["supplier_id"] == "V00877"
    assert {t["file"] for t in report.poll["taken"]} == {p.name for p in outbound.iterdir()}


def test_second_sync_takes_nothing_and_posts_nothing(tmp_path, outbound):
    erp = FakeErp()
    sync(tmp_path, outbound, erp)
    calls = erp.post_calls
    report, _ = sync(tmp_path, outbound, erp)
    assert report.poll["taken"] == []
    assert {s["reason"] for s in report.poll["skipped"]} == {"already taken"}
    assert erp.post_calls == calls and report.moved == {}


def test_pending_posts_after_an_approved_reexport(tmp_path, outbound):
    erp = FakeErp()
    sync(tmp_path, outbound, erp)
    original = (outbound / "invoices_C1042_20261106152500.csv").read_text()
    pending_row = [l for l in original.splitlines() if ",7781," in l][0]
    header = original.splitlines()[0]
    approved = pending_row.replace(",Pending,,,", ",Approved,2026-11-07T09:00:00Z,j.doe,")
    (outbound / "invoices_C1042_20261107090000.csv").write_text(header + "\n" + approved + "\n")
    _, rows = sync(tmp_path, outbound, erp)
    assert rows[("V00231", "7781")]["state"] == "posted"
    assert len(erp.documents) == 5


def test_unknown_account_parks_then_posts_once_ifs_has_it(tmp_path, outbound):
    erp = FakeErp(accounts=("6100",))         # 6540 missing
    _, rows = sync(tmp_path, outbound, erp)
    parked = rows[("V00877", "INV-2026-0117")]
    assert (parked["state"], parked["failure_kind"]) == ("failed", "reference")
    assert "GL account 6540" in parked["failure_message"]
    erp.accounts.add("6540")
    report, rows = sync(tmp_path, outbound, erp)
    assert rows[("V00877", "INV-2026-0117")]["state"] == "posted"
    assert report.moved.get("resumed") == 2     # both invoices that used 6540


def test_every_parked_invoice_is_looked_at_not_just_the_first_page(tmp_path, outbound,
                                                                      monkeypatch):
    import runtime
    from ledger.pipeline import PipelineSettings

    monkeypatch.setattr(runtime, "PipelineSettings", partial(PipelineSettings, page=1))
    erp = FakeErp(accounts=())                # every approved invoice parks
    _, rows = sync(tmp_path, outbound, erp)
    assert sum(r["state"] == "failed" for r in rows.values()) == 4
    erp.accounts.add("6100")                  # two of them only lacked this one
    report, rows = sync(tmp_path, outbound, erp)
    assert report.moved.get("resumed") == 2
    assert rows[("V00231", "CN-2026-0009")]["state"] == "posted"
    assert rows[("V00231", "INV-2026-0117")]["state"] == "posted"
    assert sum(r["state"] == "failed" for r in rows.values()) == 2    # still lack 6540


def test_a_supplier_created_from_the_vendor_record_shows_on_the_vendor_stream(tmp_path,
                                                                             outbound):
    rt = make_runtime(tmp_path, outbound, FakeErp(suppliers=("V00231",)))
    try:
        rt.sync_blocking()
        vendor_events = rt.ledger.history(vendor_stream_id("V00877"))
        invoice_events = rt.ledger.history(rt.ledger.resolve_ref("V00877/INV-2026-0117", "10"))
    finally:
        rt.close()
    synced = [e["data"] for e in vendor_events if e["type"] == "Synced"]
    assert synced[-1]["action"] == "created" and synced[-1]["supplier_id"] == "V00877"
    assert "name" in synced[-1]["fields"]
    resolved = [e["data"] for e in invoice_events if e["type"] == "VendorResolved"]
    assert resolved[0]["how"] == "created"


def test_commit_then_drop_is_looked_up_not_reposted(tmp_path, outbound):
    erp = FakeErp()
    erp.commit_then_drop = 1
    _, rows = sync(tmp_path, outbound, erp, retry_base="0s")
    assert len(erp.documents) == 4             # IFS kept the one whose answer was lost
    assert all(r["state"] in ("posted", "awaiting_approval") for r in rows.values())
    rt = make_runtime(tmp_path, outbound, erp)
    found = [e for row in rt.status_rows() if row["state"] == "posted"
             for e in rt.ledger.history(UUID(row["id"]))
             if e["type"] == "Posted" and e["data"]["found_existing"]]
    rt.close()
    assert len(found) == 1


def test_transient_failures_retry_then_park_then_replay(tmp_path, outbound):
    erp = FakeErp()
    erp.fail_posts = {"A-5531": [ErpFailure("transient", "503 MI_MODIFIED_ERROR",
                                            code="MI_MODIFIED_ERROR") for _ in range(3)]}
    _, rows = sync(tmp_path, outbound, erp)
    parked = [r for r in rows.values() if r["state"] == "failed"]
    assert len(parked) == 1 and parked[0]["attempts"] == 3
    assert "gave up after 3 attempts" in parked[0]["failure_message"]
    rt = make_runtime(tmp_path, outbound, erp)
    replayed = rt.replay_failed("transient", "IFS is back", "tester")["replayed"]
    assert [d["restored_state"] for d in replayed] == ["posting"]
    rt.close()
    _, rows = sync(tmp_path, outbound, erp)
    assert sum(r["state"] == "posted" for r in rows.values()) == 4
    assert len(erp.documents) == 4


@pytest.mark.parametrize("refusals,state", [(1, "posted"), (3, "failed")])
def test_a_reference_ifs_refuses_at_posting_is_tried_again_then_parked(tmp_path, outbound,
                                                                     refusals, state):
    """Validation passed on the cached reference data, IFS still refused (a tax code): tried
    again at each reference refresh, up to max_attempts (3 here), then parked."""
    erp = FakeErp()
    erp.fail_posts = {"A-5531": [ErpFailure("reference", "TAX_CODE_NOT_FOUND: TX8",
                                            code="TAX_CODE_NOT_FOUND")] * refusals}
    settings = config(tmp_path)
    settings["ifs"]["reference_refresh"] = "0s"          # the next refresh is due at once
    rt = Runtime(settings_from_dict(settings), erp=erp, source=FolderSource(outbound))
    try:
        rt.sync_blocking()
        row = next(r for r in rt.status_rows() if r["invoice_number"] == "A-5531")
    finally:
        rt.close()
    assert row["state"] == state
    assert erp.fail_posts["A-5531"] == []                 # every planned refusal was met
    if state == "failed":
        assert (row["failure_kind"], row["attempts"]) == ("reference", 3)
        assert row["next_retry_at"] is None


def test_change_after_posting_needs_attention(tmp_path, outbound):
    erp = FakeErp()
    sync(tmp_path, outbound, erp)
    xml = (outbound / "invoices_C1042_20261106153000.xml").read_text()
    (outbound / "invoices_C1042_20261108000000.xml").write_text(
        xml.replace("Freight", "Freight and handling"))
    _, rows = sync(tmp_path, outbound, erp)
    row = rows[("V00231", "A-5531")]
    assert row["state"] == "needs_attention" and "already posted" in row["failure_message"]
    assert len(erp.documents) == 4


def test_unreadable_file_is_rejected_whole(tmp_path, outbound):
    (outbound / "invoices_C1042_bad.csv").write_bytes(
        (SAMPLES / "invoices_C1042_20261106152500.csv").read_bytes().replace(
            b"Acme Industrial Supply", b"Acme Industri\xe9l Supply"))
    report, rows = sync(tmp_path, outbound, FakeErp())
    rejected = [t for t in report.poll["taken"] if "rejected" in t]
    assert [t["file"] for t in rejected] == ["invoices_C1042_bad.csv"]
    assert "line 2" in rejected[0]["rejected"]
    assert len(rows) == 5                      # the good files still went through




def test_a_rejected_file_is_read_again_once_its_settings_change(tmp_path, outbound,
                                                                 monkeypatch):
    bad = outbound / "invoices_C1042_cp1252.csv"
    bad.write_bytes((SAMPLES / "invoices_C1042_20261106152500.csv").read_bytes().replace(
        b"INV-2026-0117", b"ENC-2026-0117").replace(b"Acme Industrial", b"Acm\xe9 Industrial"))
    file_id = export_file_id(bad.name, hashlib.sha256(bad.read_bytes()).hexdigest())
    report, rows = sync(tmp_path, outbound, FakeErp())
    assert [t["file"] for t in report.poll["taken"] if "rejected" in t] == [bad.name]
    assert ("V00231", "ENC-2026-0117") not in rows
    bad.unlink()                                 # archived, or gone: the kept copy is read

    report, rows = sync(tmp_path, outbound, FakeErp())        # same settings: left alone
    assert not [t for t in report.poll["taken"] if t["file"] == bad.name]

    def sync_fixed():
        report, rows = sync(tmp_path, outbound, FakeErp(), {"encoding": "cp1252"})
        rt = make_runtime(tmp_path, outbound, FakeErp())
        try:
            return report, rows, rt.ledger.history(file_id)
        finally:
            rt.close()

    from adapters.stampli import configured
    real = configured.ConfiguredReaders.invoices
    monkeypatch.setattr(configured.ConfiguredReaders, "invoices",
                        lambda *a: (_ for _ in ()).throw(RuntimeError("worker died")))
    report, _, _ = sync_fixed()                  # reopened, then reading it failed
    assert any("worker died" in e for e in report.poll["errors"])
    monkeypatch.setattr(configured.ConfiguredReaders, "invoices", real)
    report, rows, file_events = sync_fixed()     # so the next poll takes it up again
    taken = [t for t in report.poll["taken"] if t["file"] == bad.name]
    assert len(taken) == 1 and "rejected" not in taken[0] and taken[0]["invoices_new"] == 2
    assert rows[("V00231", "ENC-2026-0117")]["state"] == "posted"
    assert [e["type"] for e in file_events] == ["Downloaded", "Rejected", "Reopened", "Parsed"]
    assert "invoices reading settings changed" in file_events[2]["data"]["reason"]


def _cp1252_export(outbound: Path, name: str, age: float) -> Path:
    """The sample invoices with 7781 renumbered ENC-7781 and the vendor name in cp1252."""
    path = outbound / name
    path.write_bytes((SAMPLES / "invoices_C1042_20261106152500.csv").read_bytes()
                     .replace(b",7781,", b",ENC-7781,").replace(b"Acme Industrial", b"Acm\xe9 Industrial"))
    when = path.stat().st_mtime - age
    os.utime(path, (when, when))
    return path


def test_a_file_read_again_late_does_not_undo_what_later_files_said(tmp_path, outbound):
    old = _cp1252_export(outbound, "invoices_C1042_20261105000000.csv", age=86_400)
    erp = FakeErp()
    sync(tmp_path, outbound, erp)                              # old rejected, samples posted
    later = (SAMPLES / "invoices_C1042_20261106152500.csv").read_text().replace(
        "Hydraulic hoses", "Hydraulic hoses, 10 m")           # a newer INV-2026-0117
    (outbound / "invoices_C1042_20261109000000.csv").write_text(later)
    _, rows = sync(tmp_path, outbound, erp)
    assert rows[("V00231", "INV-2026-0117")]["state"] == "needs_attention"   # changed after posting
    report, rows = sync(tmp_path, outbound, erp, {"encoding": "cp1252"})
    [again] = [t for t in report.poll["taken"] if t["file"] == old.name]
    assert (again["invoices_new"], again["superseded"]) == (1, 3)
    assert rows[("V00231", "ENC-7781")]["state"] == "awaiting_approval"      # the new one
    assert rows[("V00231", "CN-2026-0009")]["state"] == "posted"            # left alone
    assert not [f for f in report.failed if f["invoice"] != "V00231/ENC-7781"]


def test_workers_with_different_settings_read_a_bad_file_once_each(tmp_path, outbound):
    bad = _cp1252_export(outbound, "invoices_C1042_20261105000000.csv", age=0)
    for encoding in ("utf-8", "ascii", "utf-8", "ascii", "utf-8"):    # both fail on 0xE9
        sync(tmp_path, outbound, FakeErp(), {"encoding": encoding})
    rt = make_runtime(tmp_path, outbound, FakeErp())
    try:
        events = rt.ledger.history(export_file_id(bad.name, hashlib.sha256(
            bad.read_bytes()).hexdigest()))
    finally:
        rt.close()
    assert [e["type"] for e in events] == ["Downloaded", "Rejected", "Reopened", "Rejected"]


def test_a_bad_file_whose_kept_copy_is_gone_says_so_once(tmp_path, outbound):
    bad = _cp1252_export(outbound, "invoices_C1042_20261105000000.csv", age=0)
    file_id = export_file_id(bad.name, hashlib.sha256(bad.read_bytes()).hexdigest())
    sync(tmp_path, outbound, FakeErp())
    bad.unlink()
    rt = make_runtime(tmp_path, outbound, FakeErp())
    try:
        Path(rt.ledger.export_file(file_id).local_path).unlink()    # data_dir cleaned up
    finally:
        rt.close()
    for _ in range(2):
        sync(tmp_path, outbound, FakeErp(), {"encoding": "cp1252"})
    rt = make_runtime(tmp_path, outbound, FakeErp())
    try:
        events = rt.ledger.history(file_id)
    finally:
        rt.close()
    assert [e["type"] for e in events] == ["Downloaded", "Rejected", "Rejected"]
    assert "kept copy" in events[-1]["data"]["reason"]


def test_sync_reports_the_invoices_a_file_itself_leaves_failed(tmp_path, outbound):
    erp = FakeErp()
    sync(tmp_path, outbound, erp)                             # INV-2026-0117 posted
    sample = (SAMPLES / "invoices_C1042_20261106152500.csv").read_text()
    (outbound / "invoices_C1042_20261108000000.csv").write_text(
        sample.replace("80.00,0.00,80.00", "80.00,0.00,81.00")   # 7781, pending: rules broken
        .replace("Consulting, October", "Consulting, Oct.")   # V00877's, already posted
        .replace("CN-2026-0009", "CN-2026-0010").replace("-216.00", "-217.00"))   # new, broken
    report, rows = sync(tmp_path, outbound, erp)
    failed = {f["invoice"]: f for f in report.failed}
    assert set(failed) == {"V00231/7781", "V00877/INV-2026-0117", "V00231/CN-2026-0010"}
    assert failed["V00231/CN-2026-0010"]["kind"] == "data"
    assert (rows[("V00231", "7781")]["state"], failed["V00231/7781"]["kind"]) == ("failed", "data")
    assert "correct the invoice in Stampli" in failed["V00231/7781"]["message"]
    assert rows[("V00877", "INV-2026-0117")]["state"] == "needs_attention"
    assert failed["V00877/INV-2026-0117"]["kind"] == "conflict"
    assert "already posted in IFS" in failed["V00877/INV-2026-0117"]["message"]
    assert all(f["stage"] == "intake" for f in failed.values())
    assert all("failed" not in t for t in report.poll["taken"])   # listed once, not twice


def test_a_file_that_fails_while_recording_does_not_stop_the_others(tmp_path, outbound,
                                                                    monkeypatch):
    from adapters.stampli import configured

    real = configured.ConfiguredReaders.invoices

    def flaky(self, path, name, prepare_for=None):
        if name.endswith(".xml"):
            raise RuntimeError("pass-2 worker died")
        return real(self, path, name, prepare_for)
    monkeypatch.setattr(configured.ConfiguredReaders, "invoices", flaky)
    report, rows = sync(tmp_path, outbound, FakeErp())
    assert any("pass-2 worker died" in e for e in report.poll["errors"])
    assert rows[("V00231", "INV-2026-0117")]["state"] == "posted"       # the CSV went through
    monkeypatch.setattr(configured.ConfiguredReaders, "invoices", real)
    report, rows = sync(tmp_path, outbound, FakeErp())                   # and the XML is retried
    assert [t["file"] for t in report.poll["taken"]] == ["invoices_C1042_20261106153000.xml"]
    assert ("V00231", "A-5531") in rows


@pytest.mark.parametrize("left_at", ["parsed", "validated", "vendor_resolved", "posting"])
def test_content_not_approved_never_reaches_ifs_whatever_the_ledger_says(tmp_path, outbound,
                                                                        left_at):
    """A ledger in which an earlier connector replayed the pending 7781 past its approval
    (its replay had no gate) and moved it on: the stage that finds it puts it back to
    waiting for approval, after looking up an open intent, and nothing is posted."""
    from ledger.invoice import Invoice

    erp = FakeErp()
    sync(tmp_path, outbound, erp)
    rt = make_runtime(tmp_path, outbound, erp)
    try:
        agg = rt.ledger.invoice(rt.resolve("V00231/7781"))
        agg.request_replay(2, "parsed", "an earlier connector's replay")
        if left_at != "parsed":
            agg.validate(["account 6100"], "s")
        if left_at in ("vendor_resolved", "posting"):
            agg.resolve_vendor("V00231", "existing")
        if left_at == "posting":          # an intent its guard did not stop; no answer came
            agg.trigger_event(Invoice.PostingIntended, connector_version="0.1.0", attempt=1,
                              supplier_id="V00231", content_hash=agg.content_hash,
                              worker="old")
        rt.ledger.record(agg)
    finally:
        rt.close()
    time.sleep(1.1)                      # the shortest lease allowed has passed
    report, rows = sync(tmp_path, outbound, erp, intent_lease="1s")
    assert rows[("V00231", "7781")]["state"] == "awaiting_approval"
    assert report.moved == {"held_for_approval": 1} and report.failed == []
    assert "7781" not in {d["invoice_number"] for d in erp.documents.values()}
    rt = make_runtime(tmp_path, outbound, erp)
    try:
        events = rt.ledger.history(rt.resolve("V00231/7781"))
    finally:
        rt.close()
    assert events[-1]["type"] == "AwaitingApproval"
    assert events[-1]["data"]["approval_status"] == "Pending"
    _, rows = sync(tmp_path, outbound, erp)                   # and it stays there
    assert rows[("V00231", "7781")]["state"] == "awaiting_approval"


def test_the_approval_is_judged_again_at_every_stage(tmp_path, outbound):
    """Read while Pending counted as approved, parked for a missing account; then the
    settings stop counting Pending: the resumed 7781 goes back to waiting, the rest post."""
    erp = FakeErp(accounts=())
    _, rows = sync(tmp_path, outbound, erp, {"approved_statuses": ["Approved", "Pending"]})
    assert {r["state"] for r in rows.values()} == {"failed"}
    erp.accounts |= {"6100", "6540"}
    report, rows = sync(tmp_path, outbound, erp)
    assert rows[("V00231", "7781")]["state"] == "awaiting_approval"
    assert report.moved["held_for_approval"] == 1 and report.moved["posted"] == 4
    assert "7781" not in {d["invoice_number"] for d in erp.documents.values()}
