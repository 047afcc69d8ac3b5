"""Posting over real HTTP against the IFS emulator: $batch, failures in isolation, crashes
and dropped connections (never a second document), credit notes and currencies."""
from __future__ import annotations

from decimal import Decimal

import pytest

from adapters.ifs import OutcomeUnknown
from ledger.ports import ErpFailure, PostingResult

from .helpers import (SECRET, make_invoice, odata_log, request, run, simple, state_invoices,
                      state_vouchers)

D = Decimal


def balanced(voucher):
    debit = sum(D(r["CurrencyDebitAmount"] or 0) for r in voucher["Rows"])
    credit = sum(D(r["CurrencyCreditAmount"] or 0) for r in voucher["Rows"])
    return debit == credit and debit > 0


def assert_no_secrets(exchanges):
    text = repr(exchanges)
    assert SECRET not in text and "Bearer" not in text and "Authorization" not in text


def test_batch_posts_many_documents_in_two_requests():
    async def body(emu, erp):
        reqs = [request(simple(f"INV-{n}")) for n in range(3)]
        results = await erp.post(reqs)
        assert all(isinstance(r, PostingResult) for r in results), results
        invoices, vouchers = state_invoices(emu), state_vouchers(emu)
        assert [i["Objstate"] for i in invoices] == ["Posted"] * 3
        assert [v["Objstate"] for v in vouchers] == ["Approved"] * 3
        assert all(balanced(v) for v in vouchers)
        assert {i["ExternalRef"] for i in invoices} == {"led-INV-0", "led-INV-1", "led-INV-2"}
        batches = [e for e in odata_log(emu) if e["path"].endswith("$batch")]
        assert len(odata_log(emu)) == len(batches) == 2
        r = results[1]
        assert r.ifs_invoice_id == str(invoices[1]["InvoiceId"])
        assert r.voucher == {k: vouchers[1][k] for k in
                             ("Company", "AccountingYear", "VoucherType", "VoucherNo")}
        assert set(r.etags) == {"invoice", "voucher"}
        assert r.etags["invoice"] == invoices[1]["@odata.etag"]
        # each document files its own slice of each $batch, nothing of its neighbours
        assert len(r.exchanges) == 2 and all(x["batch"] for x in r.exchanges)
        assert "INV-1" in r.exchanges[0]["request_body"]
        assert "INV-0" not in r.exchanges[0]["request_body"]
        assert r.exchanges[0]["statuses"] == [201, 204, 200]
        assert_no_secrets([x.exchanges for x in results])
    run(body)


def test_one_bad_document_fails_alone_with_ifs_text():
    async def body(emu, erp):
        reqs = [request(simple("INV-A")), request(simple("INV-B", account="6999")),
                request(simple("INV-C"))]
        results = await erp.post(reqs)
        assert isinstance(results[0], PostingResult) and isinstance(results[2], PostingResult)
        bad = results[1]
        assert isinstance(bad, ErpFailure) and bad.kind == "reference"
        assert "Account 6999 does not exist in company 10." in str(bad)
        assert bad.code == "ACCOUNT_NOT_FOUND" and bad.status == 500
        assert "`ml-connector replay V00231/INV-B --reason \"...\"`" in str(bad)
        assert bad.exchanges and "INV-B" in bad.exchanges[0]["request_body"]
        assert sorted(i["InvoiceNo"] for i in state_invoices(emu)) == ["INV-A", "INV-C"]
        assert len(state_vouchers(emu)) == 2
    run(body)


def test_batch_split_by_document_cap_keeps_order():
    async def body(emu, erp):
        reqs = [request(simple(f"INV-{n:02d}")) for n in range(7)]
        results = await erp.post(reqs)
        assert [r.ifs_invoice_id for r in results] == [
            str(i["InvoiceId"]) for i in sorted(state_invoices(emu), key=lambda i: i["InvoiceNo"])]
        assert len([e for e in odata_log(emu) if e["path"].endswith("$batch")]) == 6
    run(body, erp_options={"batch_max_documents": 3})


def test_drop_after_commit_in_batch_recovers_without_a_second_document():
    async def body(emu, erp):
        reqs = [request(simple(f"INV-{n}")) for n in range(3)]
        emu.drop_after_commit(1, method="POST", path="PostingProposalHeadSet")
        results = await erp.post(reqs)
        assert all(isinstance(r, PostingResult) and r.found_existing for r in results), results
        assert len(state_invoices(emu)) == 3 and len(state_vouchers(emu)) == 3
        assert all(v["Objstate"] == "Approved" for v in state_vouchers(emu))
        # posting the same requests again (a crash before the outcome was recorded)
        again = await erp.post(reqs)
        assert all(isinstance(r, PostingResult) and r.found_existing for r in again), again
        assert [r.ifs_invoice_id for r in again] == [r.ifs_invoice_id for r in results]
        assert len(state_invoices(emu)) == 3 and len(state_vouchers(emu)) == 3
    run(body)


def test_drop_after_commit_on_create_then_find_posted_recovers():
    async def body(emu, erp):
        req = request(simple("INV-0117"))
        emu.drop_after_commit(1, method="POST", path="PostingProposalHeadSet")
        [result] = await erp.post([req])
        assert isinstance(result, PostingResult) and result.found_existing
        invoices = state_invoices(emu)
        assert len(invoices) == 1 and invoices[0]["Objstate"] == "Posted"
        assert len(invoices[0]["Lines"]) == 1
        assert len(state_vouchers(emu)) == 1
        dropped = [e for e in odata_log(emu) if e["dropped"]]
        assert len(dropped) == 1 and dropped[0]["status"] == 201
        since = emu.requests()[-1]["seq"]
        found = await erp.find_posted(req)
        assert found.found_existing and found.ifs_invoice_id == result.ifs_invoice_id
        assert found.voucher == result.voucher
        assert [e["method"] for e in odata_log(emu, since)] == ["GET", "GET"]
        assert len(state_invoices(emu)) == 1 and len(state_vouchers(emu)) == 1
    run(body, use_batch=False)


def test_find_posted_finishes_a_half_done_document():
    """A crash left the header (no lines, Preliminary): find_posted adds the lines, posts,
    and creates the voucher; it never creates a second header."""
    async def body(emu, erp):
        inv = make_invoice([("6100", "CC210", "750.00", "TX8", "60.00"),
                            ("6540", "CC220", "500.00", "TX8", "40.00")])
        req = request(inv)
        ep = erp.endpoints["invoice"]
        from adapters.ifs import mapping
        doc = mapping.document(req, erp.settings.posting)
        head, etag = await erp.odata.write("POST", ep.projection, ep.entity_set, doc.invoice,
                                           what="simulating a crash after the header")
        line_path = f"{ep.entity_set}(Company='10',InvoiceId={head['InvoiceId']})/Lines"
        await erp.odata.write("POST", ep.projection, line_path, doc.lines[0], if_match=etag,
                              what="one line before the crash")
        assert await erp.find_posted(request(simple("OTHER"))) is None
        found = await erp.find_posted(req)
        assert found.found_existing and found.ifs_invoice_id == str(head["InvoiceId"])
        [invoice] = state_invoices(emu)
        assert invoice["Objstate"] == "Posted" and len(invoice["Lines"]) == 2
        [voucher] = state_vouchers(emu)
        assert voucher["Objstate"] == "Approved" and len(voucher["Rows"]) == 4
    run(body)


def test_found_document_with_other_amounts_is_a_conflict_not_taken_as_posted():
    """An attempt reached IFS, then the invoice was amended: the document found by ExternalRef
    holds the old amounts, so it is neither finished nor recorded as this content's posting."""
    async def body(emu, erp):
        [first] = await erp.post([request(simple("INV-0117", amount="750.00", tax="60.00"),
                                          "led-1")])
        assert isinstance(first, PostingResult)
        since = emu.requests()[-1]["seq"]
        amended = request(simple("INV-0117", amount="700.00", tax="56.00"), "led-1")
        with pytest.raises(ErpFailure) as err:
            await erp.find_posted(amended)
        assert err.value.kind == "conflict" and err.value.code == "CONTENT_DIFFERS"
        assert "GrossCurrAmount 810.00 (the invoice now says 756.00)" in str(err.value)
        assert [e["method"] for e in odata_log(emu, since)] == ["GET"]   # nothing written
        [invoice] = state_invoices(emu)
        assert invoice["GrossCurrAmount"] == "810.00"
    run(body, use_batch=False)


def test_504_on_a_write_is_looked_up_not_resent():
    async def body(emu, erp):
        req = request(simple("INV-504"))
        emu.gateway_timeout(1, method="POST", path="PostingProposalHeadSet")
        [result] = await erp.post([req])
        assert isinstance(result, OutcomeUnknown) and result.kind == "transient"
        assert "looked up by ExternalRef" in str(result)
        posts = [e for e in odata_log(emu) if e["method"] == "POST"]
        assert len(posts) == 1 and posts[0]["status"] == 504     # sent once, never again
        assert state_invoices(emu) == []
        [again] = await erp.post([req])
        assert isinstance(again, PostingResult) and not again.found_existing
        assert len(state_invoices(emu)) == 1 and len(state_vouchers(emu)) == 1
    run(body, use_batch=False)


def test_sequence_mode_uses_etags_and_rolls_back_a_refused_document():
    async def body(emu, erp):
        ok, bad = request(simple("INV-OK")), request(simple("INV-BAD", account="6999"))
        results = await erp.post([ok, bad])
        assert isinstance(results[0], PostingResult)
        assert isinstance(results[1], ErpFailure) and results[1].kind == "reference"
        assert [i["InvoiceNo"] for i in state_invoices(emu)] == ["INV-OK"]   # rolled back
        log = odata_log(emu)
        child_posts = [e for e in log if e["method"] == "POST" and
                       e["path"].endswith(("/Lines", "/Rows"))]
        assert child_posts and all(e["headers"].get("If-Match", "").startswith('W/"')
                                   for e in child_posts)
        assert any(e["method"] == "DELETE" and e["status"] == 204 for e in log)
        assert all(e["headers"].get("If-Match") != "*" for e in log)
    run(body, use_batch=False)


def test_credit_note_and_currencies_balance_and_approve():
    async def body(emu, erp):
        credit = make_invoice([("6100", "CC210", "-200.00", "TX8", "-16.00")],
                              doc_type="CreditNote", number="CN-7")
        jpy = make_invoice([("6100", "CC210", "10000", "TX8", "800"),
                            ("6540", "CC300", "333", "TX8", "26")], currency="JPY",
                           number="JP-1")
        kwd = make_invoice([("6100", "CC210", "12.345", "TX8", "0.988"),
                            ("6540", "CC220", "0.001", "", "0")], currency="KWD",
                           number="KW-1")
        results = await erp.post([request(credit), request(jpy), request(kwd)])
        assert all(isinstance(r, PostingResult) for r in results), results
        invoices = {i["InvoiceNo"]: i for i in state_invoices(emu)}
        assert invoices["CN-7"]["InvoiceType"] == "CREDIT"
        assert invoices["CN-7"]["GrossCurrAmount"] == "-216.00"
        assert invoices["JP-1"]["GrossCurrAmount"] == "11159"
        assert invoices["KW-1"]["GrossCurrAmount"] == "13.334"
        vouchers = {v["ExternalRef"]: v for v in state_vouchers(emu)}
        assert all(v["Objstate"] == "Approved" and balanced(v) for v in vouchers.values())
        cn_rows = {r["Account"]: (r["CurrencyDebitAmount"], r["CurrencyCreditAmount"])
                   for r in vouchers["led-CN-7"]["Rows"]}
        assert cn_rows == {"6100": ("0.00", "200.00"), "2640": ("0.00", "16.00"),
                           "2440": ("216.00", "0.00")}
        assert vouchers["led-JP-1"]["Currency"] == "JPY"
        assert {r["CurrencyCreditAmount"] for r in vouchers["led-JP-1"]["Rows"]} == {"0",
                                                                                     "11159"}
        kw_debit = sum(D(r["CurrencyDebitAmount"]) for r in vouchers["led-KW-1"]["Rows"])
        assert kw_debit == D("13.334")
    run(body)


def test_voucher_refused_after_invoice_posted_then_replay_finishes_only_the_voucher():
    async def body(emu, erp):
        req = request(simple("INV-2025", date="2025-06-30"))      # period 2025 is closed
        [failed] = await erp.post([req])
        assert isinstance(failed, ErpFailure) and failed.kind == "rejected"
        assert "is posted in IFS (InvoiceId" in str(failed) and "PERIOD_CLOSED" in str(failed)
        assert [i["Objstate"] for i in state_invoices(emu)] == ["Posted"]
        assert state_vouchers(emu) == []                          # the changeset rolled back
        emu.seed({"companies": [{"company": "10", "open_periods": ["2025", "2026"],
                                 "closed_periods": []}]})
        [done] = await erp.post([req])                           # a replay posts again
        assert isinstance(done, PostingResult) and done.found_existing
        assert len(state_invoices(emu)) == 1
        [voucher] = state_vouchers(emu)
        assert voucher["Objstate"] == "Approved" and voucher["VoucherDate"] == "2025-06-30"
    run(body)


def test_same_number_entered_outside_the_connector_is_a_conflict():
    async def body(emu, erp):
        ep = erp.endpoints["invoice"]
        await erp.odata.write("POST", ep.projection, ep.entity_set, {
            "Company": "10", "Identity": "V00231", "InvoiceNo": "INV-0117",
            "InvoiceDate": "2026-11-01", "Currency": "USD"}, what="a person entering it")
        [result] = await erp.post([request(simple("INV-0117"))])
        assert isinstance(result, ErpFailure) and result.kind == "conflict"
        assert "entered outside the connector" in str(result)
        assert "set its ExternalRef to led-INV-0117" in str(result)
        assert len(state_invoices(emu)) == 1 and state_vouchers(emu) == []
    run(body)


def test_data_errors_are_refused_before_anything_is_sent():
    async def body(emu, erp):
        bad = make_invoice([("6100", "CC210", "100.005", "TX8", "0")])
        results = await erp.post([request(bad), request(simple("INV-GOOD"))])
        assert isinstance(results[0], ErpFailure) and results[0].kind == "data"
        assert isinstance(results[1], PostingResult)
        assert not [e for e in emu.requests() if "100.005" in e["body_text"]]
    run(body)


def test_more_than_5000_operations_are_split_into_several_batches():
    """1667 invoices x 3 operations (header, line, post) = 5001: the first $batch carries
    4998 (1666 whole changesets), the second 3; IFS would answer 400 ODP_REQUEST_TOO_LARGE
    to a $batch above 5000. (Vouchers off to keep the test fast; the packing is the same.)"""
    async def body(emu, erp):
        reqs = [request(make_invoice([("6100", "CC210", "10.00", "", "0")],
                                     number=f"B-{n:05d}")) for n in range(1667)]
        results = await erp.post(reqs)
        assert all(isinstance(r, PostingResult) for r in results)
        batches = [e for e in odata_log(emu) if e["path"].endswith("$batch")]
        assert [e["status"] for e in batches] == [200, 200]
        per_batch: dict[int, int] = {}
        for e in emu.requests():
            if e.get("kind") == "batch-operation":
                per_batch[e["batch"]] = per_batch.get(e["batch"], 0) + 1
        assert sorted(per_batch.values()) == [3, 4998]
        assert len(state_invoices(emu)) == 1667
        assert [r.ifs_invoice_id for r in results] == [str(i["InvoiceId"]) for i in
                                                       state_invoices(emu)]
    run(body, posting={"post_voucher": False}, erp_options={"batch_max_documents": 5000})
