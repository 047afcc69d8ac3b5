"""Ledger.save_all does what eventsourcing's Application.save does, with its private steps
(_record done by hand: the mapper, then the recorder). If a release renames, reorders or
re-signs them, or gives _record or _notify more to do, these tests fail, naming what
changed, before a save silently skips a step (why pyproject pins eventsourcing below 9.6)."""
from __future__ import annotations

import ast
import inspect
import textwrap

from eventsourcing.application import Application, ProcessingEvent

from ledger.app import Ledger
from tests.builders import export_file


def _calls_on_self(function) -> list[str]:
    tree = ast.parse(textwrap.dedent(inspect.getsource(function)))
    return [node.func.attr for node in ast.walk(tree)
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
            and isinstance(node.func.value, ast.Name) and node.func.value.id == "self"]


def test_application_save_still_runs_the_steps_save_all_copies():
    assert _calls_on_self(Application.save) == ["_record", "_take_snapshots", "_notify",
                                                "notify"], \
        "eventsourcing's Application.save changed: update Ledger.save_all to match"


def test_the_steps_save_all_does_by_hand_still_do_only_that():
    record = textwrap.dedent(inspect.getsource(Application._record))
    assert "self.events.put(" in record and record.count("self.") == 4, \
        "eventsourcing's Application._record changed: update Ledger.save_all to match"
    notify = ast.parse(textwrap.dedent(inspect.getsource(Application._notify))).body[0]
    assert [type(node) for node in notify.body] == [ast.Expr], \
        "eventsourcing's Application._notify now does something: call it from save_all"


def test_the_private_steps_keep_their_signatures():
    for name, parameter in (("_record", "processing_event"),
                            ("_take_snapshots", "processing_event"), ("_notify", "recordings")):
        step = getattr(Application, name, None)
        assert step is not None, f"eventsourcing's Application lost {name}"
        assert list(inspect.signature(step).parameters) == ["self", parameter], \
            f"eventsourcing's Application.{name} changed its signature"
    processing = ProcessingEvent()
    assert processing.events == [] and processing.aggregates == {}
    assert callable(processing.collect_events)


def test_save_all_records_and_the_events_read_back(sqlite_url):
    ledger = Ledger(sqlite_url)
    files = [export_file(name=f"inv-{n}.csv") for n in range(2)]
    ledger.save_all(files)
    assert ledger.recorded(f.id for f in files) == {f.id for f in files}
    assert [ledger.export_file(f.id).version for f in files] == [f.version for f in files]
