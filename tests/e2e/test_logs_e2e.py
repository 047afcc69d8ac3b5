"""Every log line a full sandbox sync emits, as JSON lines: `ts` in UTC RFC 3339 with
milliseconds, `level`, `logger`, a stable `event`, and the facts as their own keys."""
from __future__ import annotations

import json
import re

from tests.e2e.conftest import SAMPLES

TS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
EVENT = re.compile(r"^[a-z][a-z0-9_]*$")


def test_every_line_of_a_sync_is_a_structured_json_object(world, tmp_path):
    broken = tmp_path / "invoices_C1042_20261106160000.csv"
    broken.write_text("not,a,template\n1,2,3\n")
    world.drop(*SAMPLES.glob("*"), broken)
    result = world.cli("sync", log_json=True)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines
    records = []
    for line in lines:
        record = json.loads(line)                 # every line, not just most
        assert TS.match(record["ts"]), record
        assert record["level"] in ("debug", "info", "warning", "error", "critical"), record
        assert record["logger"] and EVENT.match(record["event"]), record
        assert "{'" not in record["message"], record        # no dict repr in a message
        records.append(record)
    by_event = {}
    for record in records:
        by_event.setdefault(record["event"], []).append(record)
    recorded = by_event["file_recorded"]
    assert {r["file"] for r in recorded} >= {"invoices_C1042_20261106152500.csv"}
    assert all(isinstance(r["counts"], dict) for r in recorded)
    posted = by_event["invoice_posted"]
    assert len(posted) == 4 and all(r["invoice"] and r["ifs_invoice_id"] for r in posted)
    rejected = by_event["file_rejected"]
    assert rejected[0]["file"] == "invoices_C1042_20261106160000.csv"
    assert rejected[0]["level"] == "error"
    done = by_event["cycle_done"]
    assert done[-1]["counts"]["posted"] == 4 and isinstance(done[-1]["duration_ms"], int)


def test_quiet_shows_errors_only_and_text_logs_carry_the_facts(world, tmp_path):
    world.drop(*SAMPLES.glob("*"))
    quiet = world.cli("-q", "sync")
    assert quiet.stderr == ""
    verbose = world.cli("-v", "sync")
    assert "cycle done" in verbose.stderr and "duration_ms=" in verbose.stderr
