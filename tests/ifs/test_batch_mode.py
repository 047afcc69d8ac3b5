"""`[ifs] batch_mode` on the emulator (IFS takes `$n` references): auto keeps the one-changeset
path; portable posts header and lines first, then the action with the real ETag."""
from __future__ import annotations

from ledger.ports import PostingResult
from tests.ifs.helpers import odata_log, request, run, simple, state_invoices


def _post_three(mode: str):
    async def body(emu, erp):
        results = await erp.post([request(simple(f"INV-{n}")) for n in range(3)])
        assert all(isinstance(r, PostingResult) for r in results), results
        invoices, vouchers = state_invoices(emu), emu.state()["vouchers"]
        assert [i["Objstate"] for i in invoices] == ["Posted"] * 3
        assert [v["Objstate"] for v in vouchers] == ["Approved"] * 3
        assert all(len(i["Lines"]) == 1 for i in invoices)
        return [(e["method"], e["path"].rsplit("/", 1)[-1]) for e in odata_log(emu)], erp
    return run(body, batch_mode=mode)


def test_auto_keeps_the_references_path_on_ifs():
    sent, erp = _post_three("auto")
    assert sent == [("POST", "$batch")] * 2
    assert erp._poster.paths.portable == {}


def test_portable_posts_every_document_and_check_says_why():
    sent, erp = _post_three("portable")
    assert sent[0] == ("POST", "$batch")              # every header (with its lines) at once
    assert set(sent) == {("POST", "$batch")}          # the actions too: no request per document
    assert erp._poster.paths.path_of("ManualSupplierInvoiceHandling")[0] == "portable"


def _post_after_a_412_in_the_changeset(mode: str):
    async def body(emu, erp):
        emu.add_fault("error", 1, path="PostingProposalHead_Post", status=412,
                      code="ODP_PRECONDITION_FAILED", message="The record was modified.")
        results = await erp.post([request(simple(f"INV-{n}")) for n in range(2)])
        assert all(isinstance(r, PostingResult) for r in results), results
        invoices = state_invoices(emu)
        assert sorted(i["ExternalRef"] for i in invoices) == ["led-INV-0", "led-INV-1"]
        assert all(i["Objstate"] == "Posted" and len(i["Lines"]) == 1 for i in invoices)
        return erp
    return run(body, batch_mode=mode)


def test_auto_learns_from_a_412_inside_the_batch_and_reposts_at_once():
    erp = _post_after_a_412_in_the_changeset("auto")
    assert "ManualSupplierInvoiceHandling" in erp._poster.paths.portable
    learned = erp.learned_paths()
    assert [(service.rsplit("/", 2)[-2], path) for service, path, _ in learned][0] == \
        ("ManualSupplierInvoiceHandling.svc", "portable")
    assert "HTTP 412" in learned[0][2] and erp.learned_paths() == []     # drained once


def test_references_mode_retries_after_a_412_without_switching():
    erp = _post_after_a_412_in_the_changeset("references")
    assert erp._poster.paths.portable == {} and erp.learned_paths() == []


def test_a_path_recorded_earlier_is_taken_up_in_auto_mode_only():
    async def body(emu, erp):
        service = next(iter(erp.posting_services()))
        erp.remember_path(service, "portable", "refused before (recorded 2026-12-01)")
        return erp._poster.paths.path_of("ManualSupplierInvoiceHandling")
    assert run(body, batch_mode="auto") == ("portable", "refused before (recorded 2026-12-01)")
    assert run(body, batch_mode="references")[0] == "references"
