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
    assert erp._poster.portable == {}


def test_portable_posts_every_document_and_check_says_why():
    sent, erp = _post_three("portable")
    assert sent[0] == ("POST", "$batch")              # every header (with its lines) at once
    assert any(path.endswith("PostingProposalHead_Post") for _, path in sent)
    assert erp._poster.path_of("ManualSupplierInvoiceHandling")[0] == "portable"
