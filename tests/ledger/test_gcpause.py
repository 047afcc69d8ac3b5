"""Bulk work pauses the cyclic garbage collector; a long-running daemon must get it back,
also when the bulk work fails part-way."""
from __future__ import annotations

import gc

import pytest

from ledger.app import Ledger
from ledger.gcpause import gc_paused
from ledger.intake import record_invoice_file
from projections.runner import Projector
from tests.builders import export_file, invoice, parsed


def test_paused_inside_and_restored_after_an_error():
    assert gc.isenabled()
    with pytest.raises(RuntimeError), gc_paused():
        assert not gc.isenabled()
        raise RuntimeError("bulk work failed")
    assert gc.isenabled()


def test_a_caller_that_paused_it_keeps_it_paused():
    gc.disable()
    try:
        with gc_paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_intake_and_projection_catch_up_leave_it_enabled(tmp_path):
    ledger = Ledger(f"sqlite:///{tmp_path}/l.db")
    projector = Projector(ledger)
    try:
        during: list[bool] = []

        def failing_items():
            during.append(gc.isenabled())
            yield parsed(invoice("A"))
            raise OSError("the export went away")

        with pytest.raises(OSError):
            record_invoice_file(ledger, export_file("a.csv"), failing_items(), ["Approved"])
        assert during == [False]        # paused while the export was read and recorded
        assert gc.isenabled()
        record_invoice_file(ledger, export_file("b.csv"), [parsed(invoice("B"))], ["Approved"])
        assert projector.catch_up() > 0
        assert projector.rebuild() > 0
        assert gc.isenabled()
    finally:
        projector.store.close()
        ledger.close()
