"""The portable path (`batch_mode = "portable"`) posts a whole round in a few `$batch`
requests: one changeset per document (a refusal costs only its own document), real ETags in
every If-Match, each document posted once with its voucher."""
from __future__ import annotations

from collections import Counter

from adapters.ifs import mapping
from ledger.ports import ErpFailure, PostingResult
from tests.ifs.helpers import make_invoice, odata_log, request, run

LINES = [("6100", "CC210", "750.00", "TX8", "60.00"), ("6540", "CC220", "500.00", "TX8", "40.00")]


def invoices(n, start=0, bad=()):
    return [make_invoice([(("9999" if i in bad else a), cc, net, tc, tax)
                          for a, cc, net, tc, tax in LINES], number=f"INV-{i:04d}")
            for i in range(start, start + n)]


def inner(emu, since=0):
    """What each `$batch` carried: [(method, last path segment, If-Match)] per request."""
    log = emu.requests(since)
    out = []
    for outer in (e for e in log if e.get("kind") == "odata"):
        ops = [e for e in log if e.get("batch") == outer["seq"]]
        out.append([(e["method"], e["path"].rsplit("/", 1)[-1].split("(")[0],
                     e["headers"].get("If-Match", e["headers"].get("if-match", "")))
                    for e in ops])
    return out


def assert_posted_once(emu, refs):
    state = emu.state()
    posted = Counter(i["ExternalRef"] for i in state["invoices"])
    approved = Counter(v["ExternalRef"] for v in state["vouchers"])
    assert posted == Counter(refs) and approved == Counter(refs), (posted, approved)
    assert {i["Objstate"] for i in state["invoices"]} == {"Posted"}
    assert {v["Objstate"] for v in state["vouchers"]} == {"Approved"}
    assert all(len(i["Lines"]) == 2 for i in state["invoices"])


def test_a_round_is_four_batches_against_a_server_with_deep_insert():
    async def body(emu, erp):
        batch = invoices(40)
        results = await erp.post([request(inv) for inv in batch])
        assert all(isinstance(r, PostingResult) for r in results), results
        assert_posted_once(emu, [f"led-{inv.invoice_number}" for inv in batch])
        assert [e["path"].rsplit("/", 1)[-1] for e in odata_log(emu)] == ["$batch"] * 4
        creates, posts, vouchers, approves = inner(emu)
        assert Counter(m for m, _, _ in creates) == {"POST": 40}      # headers, lines inline
        assert all(path == "PostingProposalHeadSet" for _, path, _ in creates)
        for actions in (posts, approves):
            assert len(actions) == 40 and all(m == "POST" for m, _, _ in actions)
            assert all(tag.startswith('W/"') for _, _, tag in actions)   # real ETags
        assert len(vouchers) == 40
    run(body, batch_mode="portable", emulator={"deep_insert": True})


def test_without_deep_insert_the_children_go_batched_too():
    async def body(emu, erp):
        first = await erp.post([request(inv) for inv in invoices(30)])
        learned = len(odata_log(emu))
        since = emu.requests()[-1]["seq"]
        second = await erp.post([request(inv) for inv in invoices(30, start=30)])
        assert all(isinstance(r, PostingResult) for r in first + second)
        assert_posted_once(emu, [f"led-INV-{i:04d}" for i in range(60)])
        # per projection: creates, children, headers re-read, actions (+ the refused deep
        # insert it learned from, in the first round only)
        assert learned == 10 and len(odata_log(emu, since)) == 8
        creates, children, reads, posts = inner(emu, since)[:4]
        assert Counter(m for m, _, _ in children) == {"POST": 60}
        assert all(tag.startswith('W/"') for _, _, tag in children + posts)
        assert Counter(m for m, _, _ in reads) == {"GET": 30}
    run(body, batch_mode="portable")


def _refused_one(deep: bool):
    async def body(emu, erp):
        emu.add_fault("error", 1, path="PostingProposalHead_Post", status=412,
                      code="ODP_PRECONDITION_FAILED", message="The record was modified.")
        batch = invoices(6, bad={2})
        results = await erp.post([request(inv) for inv in batch])
        failed = [r for r in results if not isinstance(r, PostingResult)]
        assert len(failed) == 1 and isinstance(results[2], ErpFailure), results
        assert results[2].code == "ACCOUNT_NOT_FOUND"
        # the 412 one was re-read and posted; the refused one left nothing in IFS
        assert_posted_once(emu, [f"led-{inv.invoice_number}" for n, inv in enumerate(batch)
                                 if n != 2])
        return len(odata_log(emu))
    return run(body, batch_mode="portable", emulator={"deep_insert": deep})


def test_a_refused_document_leaves_its_siblings_posted():
    # the four batches, then the 412's document alone: its lines re-read, its action again
    assert _refused_one(deep=True) == 4 + 2
    assert _refused_one(deep=False) == 10 + 5         # + the refused lines: re-read, re-sent,
                                                      # header removed; the 412's two


def test_children_a_create_answer_did_not_show_are_read_and_completed_a_round_at_a_time():
    """A server may take a deep insert and answer with the header alone (OData 4.0 does not
    ask for the children in the answer): the settler reads them (GETs in one `$batch`), adds
    what is missing (one changeset per document), re-reads the headers' ETags, once each."""
    async def body(emu, erp):
        poster = erp._poster
        docs = {n: mapping.document(request(inv), poster._posting)
                for n, inv in enumerate(invoices(5))}
        created = []
        for n, doc in docs.items():
            inline = {"Lines": doc.lines} if n < 3 else {}     # the last two without lines
            head, etag = await erp.odata.write(
                "POST", "ManualSupplierInvoiceHandling", "PostingProposalHeadSet",
                {**doc.invoice, **inline}, what="creating a header")
            head = {k: v for k, v in (head or {}).items() if k != "Lines"}
            created.append(((n, head, etag, []), None))
        since = emu.requests()[-1]["seq"]
        ready, leftover = await poster._settler.settle(created, docs, voucher=False)
        assert leftover == [] and sorted(n for n, *_ in ready) == [0, 1, 2, 3, 4]
        reads, adds, rereads = inner(emu, since)
        assert Counter(m for m, _, _ in reads) == {"GET": 5}
        assert Counter(m for m, _, _ in adds) == {"POST": 4}        # two lines, two headers
        assert Counter(m for m, _, _ in rereads) == {"GET": 2}
        held = {i["InvoiceId"]: i for i in emu.state()["invoices"]}
        for _, head, etag, record in ready:
            assert etag == held[head["InvoiceId"]]["@odata.etag"] and record   # what IFS has
            assert len(held[head["InvoiceId"]]["Lines"]) == 2
    run(body, batch_mode="portable", emulator={"deep_insert": True})
