"""`reconcile` after a real sync against the IFS emulator over HTTP: everything matches, then
documents are deleted or edited in IFS behind the connector's back (the emulator's admin
endpoint) and the report names each one, in every format; each run is in the ledger."""
from __future__ import annotations

import csv
import io
import json
import urllib.request

from adapters.settings import ledger_url, load_settings
from ledger.app import Ledger
from projections.export import iter_events

PERIOD = ("--from", "2026-11-01", "--to", "2026-11-30")


def _tamper(world, **spec) -> dict:
    request = urllib.request.Request(f"{world.ifs.base_url}/_emulator/tamper",
                                     data=json.dumps(spec).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as answer:
        return json.loads(answer.read())


def _ifs_invoice(world, vendor: str, number: str) -> dict:
    return next(i for i in world.ifs.state()["invoices"]
                if (i["Identity"], i["InvoiceNo"]) == (vendor, number))


def _runs(world) -> list[dict]:
    ledger = Ledger(ledger_url(load_settings(world.config)))
    try:
        return [e["data"] for e in iter_events(ledger) if e["type"] == "ReconciliationRun"]
    finally:
        ledger.close()


def test_all_matched_exits_0_and_is_recorded(close_world):
    assert close_world.sync().errors == []
    result = close_world.cli("reconcile", *PERIOD, "--format", "json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["counts"]["matched"] == 4 and report["ok"] is True
    assert {(t["currency"], t["count"], t["total"]) for t in report["totals"]} == {
        ("USD", 3, "1469.34"), ("EUR", 1, "1190.00")}
    assert 0 < report["ifs_requests"] <= 6            # pages, not one request per invoice
    writes = [r for r in close_world.ifs.requests() if r["method"] in ("POST", "PATCH")
              and not r["path"].startswith(("/_emulator/", "/auth/"))]
    posted_writes = len(writes)
    close_world.cli("reconcile", *PERIOD)
    writes = [r for r in close_world.ifs.requests() if r["method"] in ("POST", "PATCH")
              and not r["path"].startswith(("/_emulator/", "/auth/"))]
    assert len(writes) == posted_writes                # read-only
    runs = _runs(close_world)
    assert len(runs) == 2 and runs[0]["counts"]["matched"] == 4 and runs[0]["ok"]
    assert (runs[0]["period_from"], runs[0]["period_to"]) == ("2026-11-01", "2026-11-30")
    assert len(runs[0]["report_sha256"]) == 64


def test_deleted_and_edited_documents_are_named(close_world, tmp_path):
    assert close_world.sync().errors == []
    gone = _ifs_invoice(close_world, "V00877", "INV-2026-0117")
    _tamper(close_world, entity="invoice", delete=True,
            key={"Company": "10", "InvoiceId": gone["InvoiceId"]})
    edited = _ifs_invoice(close_world, "V00231", "INV-2026-0117")
    _tamper(close_world, entity="invoice", key={"Company": "10", "InvoiceId": edited["InvoiceId"]},
            set={"GrossCurrAmount": "1350.01", "InvoiceDate": "2026-10-30"})
    voucher = next(v for v in close_world.ifs.state()["vouchers"]
                   if v["ExternalRef"] == _ifs_invoice(close_world, "V00231",
                                                       "CN-2026-0009")["ExternalRef"])
    _tamper(close_world, entity="voucher", delete=True, key={
        k: voucher[k] for k in ("Company", "AccountingYear", "VoucherType", "VoucherNo")})

    result = close_world.cli("reconcile", *PERIOD, "--format", "json")
    assert result.exit_code == 1, result.output
    report = json.loads(result.output)
    by_ref = {(i["vendor_id"], i["invoice_number"]): i for i in report["items"]}
    missing = by_ref[("V00877", "INV-2026-0117")]
    assert missing["category"] == "posted_missing_or_changed_in_ifs"
    assert "deleted in IFS" in missing["reason"]
    changed = by_ref[("V00231", "INV-2026-0117")]
    assert changed["category"] == "posted_missing_or_changed_in_ifs"
    diffs = {d["field"]: d for d in changed["differences"]}
    assert diffs["GrossCurrAmount"]["difference"] == "0.01"          # to the minor unit
    assert diffs["InvoiceDate"]["ifs"] == "2026-10-30"                # found outside the period
    assert by_ref[("V00231", "CN-2026-0009")]["category"] == "voucher_missing_or_not_approved"
    assert by_ref[("V00231", "A-5531")]["category"] == "matched"
    assert report["counts"] == {"matched": 1, "approved_not_in_ifs": 0,
                                "posted_missing_or_changed_in_ifs": 2,
                                "in_ifs_unknown_to_ledger": 0,
                                "voucher_missing_or_not_approved": 1, "resolved_by_hand": 0,
                                "dismissed": 0}

    table = close_world.cli("reconcile", *PERIOD)
    assert table.exit_code == 1
    assert "GrossCurrAmount: ledger 1350.00, IFS 1350.01 (difference 0.01)" in table.output
    assert "V00877/INV-2026-0117" in table.output

    rows = list(csv.DictReader(io.StringIO(close_world.cli("reconcile", *PERIOD, "--format",
                                                           "csv").output)))
    assert {r["invoice_number"] for r in rows if r["category"] != "matched"} == {
        "INV-2026-0117", "CN-2026-0009"} and len(rows) == 4

    page = tmp_path / "close.html"
    html = close_world.cli("reconcile", *PERIOD, "--format", "html", "-o", str(page))
    assert html.exit_code == 1 and "wrote" in html.output
    text = page.read_text()
    assert text.index("Summary") < text.index("V00877")
    assert "<script" not in text and "http" not in text.split("<body>")[1].split("IFS read")[0]
    runs = _runs(close_world)
    assert runs[-1]["ok"] is False and runs[-1]["report_format"] == "html"
    import hashlib
    assert runs[-1]["report_sha256"] == hashlib.sha256(page.read_bytes()).hexdigest()


def test_unknown_external_ref_and_unposted_invoice(close_world):
    # Account 6540 has expired in IFS: the two invoices coded to it are approved, not in IFS.
    close_world.ifs.seed({"accounts": [{"Company": "10", "Account": "6540",
                                        "ValidUntil": "2000-01-02"}]})
    close_world.sync()
    stranger = _ifs_invoice(close_world, "V00231", "CN-2026-0009")
    _tamper(close_world, entity="invoice", key={"Company": "10",
                                                "InvoiceId": stranger["InvoiceId"]},
            set={"ExternalRef": "00000000-0000-5000-8000-000000000001",
                 "InvoiceNo": "CN-2026-0009-X"})
    report = json.loads(close_world.cli("reconcile", *PERIOD, "--format", "json").output)
    by_cat: dict[str, list] = {}
    for item in report["items"]:
        by_cat.setdefault(item["category"], []).append(item)
    unposted = by_cat["approved_not_in_ifs"]
    assert sorted((i["vendor_id"], i["invoice_number"], i["state"]) for i in unposted) == [
        ("V00231", "A-5531", "failed"), ("V00877", "INV-2026-0117", "failed")]
    assert "reference" in unposted[0]["reason"]
    assert [i["ledger_id"] for i in by_cat["in_ifs_unknown_to_ledger"]] == [
        "00000000-0000-5000-8000-000000000001"]


def test_usage_errors_exit_2(close_world):
    assert close_world.cli("reconcile", "--from", "2026-13-01").exit_code == 2
    assert close_world.cli("reconcile", "--from", "2026-11-30", "--to", "2026-11-01"
                           ).exit_code == 2
    assert close_world.cli("reconcile", "--format", "pdf").exit_code == 2
