"""`replay` through the CLI, the real sshd and the IFS emulator: only an approved invoice ever
reaches IFS, whatever event an operator replays it to. `sync` and the first replay run the
installed `ml-connector` command; the many replays of the matrix run cli.main in-process
(click's runner), which is the same code without a process start each."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli import main
from tests.e2e.conftest import SAMPLES, cli_env

# The console script pip installed next to the interpreter running the tests.
ML_CONNECTOR = Path(sys.executable).with_name("ml-connector")


def installed(world, *args: str) -> subprocess.CompletedProcess:
    assert ML_CONNECTOR.exists(), f"{ML_CONNECTOR} missing: pip install -e . in this venv"
    return subprocess.run([str(ML_CONNECTOR), "--config", str(world.config), *args],
                          capture_output=True, text=True, timeout=120, cwd=world.dir,
                          env=cli_env())


@pytest.fixture(autouse=True)
def in_world_dir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)           # the world's config names data/ relative to it
    monkeypatch.delenv("ML_CONNECTOR_MASTER_KEY", raising=False)


WHY = ("--reason", "coding fixed in IFS")


def cli(world, *args: str):
    return CliRunner().invoke(main, ["--config", str(world.config), *args])


def history(world, ref: str) -> list[dict]:
    return json.loads(cli(world, "history", ref, "--json").stdout)


def states(world) -> dict[str, str]:
    return {r["invoice_number"]: r["state"]
            for r in json.loads(cli(world, "status", "--json").stdout)}


def in_ifs(world) -> set[str]:
    return {i["InvoiceNo"] for i in world.ifs_invoices() if i["Identity"] == "V00231"}


def test_a_pending_invoice_replayed_past_its_approval_is_refused_and_never_posted(world):
    world.drop(*SAMPLES.glob("*"))
    assert installed(world, "sync").returncode == 0
    before = history(world, "V00231/7781")
    assert [e["type"] for e in before] == ["Discovered", "Parsed", "AwaitingApproval"]

    result = installed(world, "replay", "V00231/7781", "--from", "2",
                       "--reason", "skip the approval")
    assert result.returncode == 1, result.stdout
    assert "not approved" in result.stderr and "'Pending'" in result.stderr
    assert "--from 3" in result.stderr and "Traceback" not in result.stderr
    assert history(world, "V00231/7781") == before              # nothing recorded

    assert installed(world, "sync").returncode == 0
    assert "7781" not in in_ifs(world)
    assert states(world)["7781"] == "awaiting_approval"


def test_a_replay_an_earlier_connector_recorded_does_not_post_either(world):
    """The ledger of a connector whose replay had no gate: 7781 already put back to parsed.
    The stages judge the approval of the content themselves: nothing reaches IFS."""
    from ledger.app import Ledger

    world.drop(*SAMPLES.glob("*"))
    assert installed(world, "sync").returncode == 0
    ledger = Ledger(f"sqlite:///{world.dir}/data/ledger.db")
    try:
        agg = ledger.invoice(ledger.resolve_ref("V00231/7781", "10"))
        agg.request_replay(2, "parsed", "replay V00231/7781 --from 2, before the fix")
        ledger.record(agg)
    finally:
        ledger.close()
    result = installed(world, "sync", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["moved"] == {"held_for_approval": 1}
    assert "7781" not in in_ifs(world)
    assert states(world)["7781"] == "awaiting_approval"
    assert [e["type"] for e in history(world, "V00231/7781")][-2:] == [
        "ReplayRequested", "AwaitingApproval"]


PENDING_ROW = next(line for line in (SAMPLES / "invoices_C1042_20261106152500.csv")
                   .read_text().splitlines() if ",7781," in line)
HEADER = (SAMPLES / "invoices_C1042_20261106152500.csv").read_text().splitlines()[0]


def export(path: Path, numbers: list[str], approved: bool) -> Path:
    """An invoice export holding a copy of the pending sample 7781 under each number."""
    rows = []
    for k, number in enumerate(numbers):
        row = PENDING_ROW.replace(",7781,", f",{number},").replace("98765460", f"9900{k:04}")
        if approved:
            row = row.replace(",Pending,,,", ",Approved,2026-11-07T09:00:00Z,j.doe,")
        rows.append(row)
    path.write_text("\n".join([HEADER, *rows]) + "\n")
    return path


# Every target of one realistic stream: approved after a wait, then parked at posting.
#   1 Discovered  2 Parsed (Pending)  3 AwaitingApproval  4 Amended (Approved)  5 Validated
#   6 VendorResolved  7 PostingIntended  8 Failed (transient, gave up)
REFUSED = {0: "has events 1..8", 1: "before its content was parsed",
           2: "before event 4 (Amended", 3: "before event 4 (Amended",
           8: "recorded a failure", 9: "has events 1..8"}
RESTORED = {4: "parsed", 5: "validated", 6: "vendor_resolved", 7: "posting"}
NEXT_EVENTS = {4: ["Validated", "VendorResolved", "PostingIntended", "Posted"],
               5: ["VendorResolved", "PostingIntended", "Posted"],
               6: ["PostingIntended", "Posted"], 7: ["PostingIntended", "Posted"]}


def test_every_from_of_a_realistic_stream(make_world, tmp_path):
    world = make_world(connector={"max_attempts": 1})
    numbers = [f"R-{n}" for n in RESTORED] + ["R-X"]
    world.drop(*SAMPLES.glob("vendors_*"), *SAMPLES.glob("purchase_orders_*"),
               export(tmp_path / "invoices_C1042_20261106160000.csv", numbers + ["R-P"], False))
    assert installed(world, "sync").returncode == 0
    world.ifs.mi_modified(None, method="POST")      # IFS refuses every write until cleared
    world.drop(export(tmp_path / "invoices_C1042_20261107090000.csv", numbers, True))
    assert installed(world, "sync").returncode == 0
    world.ifs.clear_faults()
    stream = history(world, "V00231/R-X")
    assert [e["type"] for e in stream] == [
        "Discovered", "Parsed", "AwaitingApproval", "Amended", "Validated", "VendorResolved",
        "PostingIntended", "Failed"]
    assert in_ifs(world) == set()
    sent = len(world.ifs.requests())

    for n, why in REFUSED.items():
        result = cli(world, "replay", "V00231/R-X", "--from", str(n), *WHY)
        assert result.exit_code == 1, (n, result.output)
        assert why in result.stderr and "(allowed: --from 4..7)" in result.stderr, (n, result)
        assert "Traceback" not in result.stderr
    assert history(world, "V00231/R-X") == stream              # nothing recorded
    for n, state in RESTORED.items():
        result = cli(world, "replay", f"V00231/R-{n}", "--from", str(n), *WHY)
        assert result.exit_code == 0, (n, result.output)
        assert result.stdout.strip() == f"V00231/R-{n}: back to {state} (after event {n})"

    pending = history(world, "V00231/R-P")                     # 1 Discovered 2 Parsed 3 Awaiting
    for n, why in {1: "before its content was parsed", 2: "not approved",
                   4: "has events 1..3"}.items():
        result = cli(world, "replay", "V00231/R-P", "--from", str(n), *WHY)
        assert result.exit_code == 1 and why in result.stderr, (n, result.output)
        assert "(allowed: --from 3)" in result.stderr
    assert history(world, "V00231/R-P") == pending
    assert cli(world, "replay", "V00231/R-P", "--from", "3", *WHY).exit_code == 0
    assert len(world.ifs.requests()) == sent                   # a replay never calls IFS

    assert installed(world, "sync").returncode == 0
    posted = [i for i in world.ifs_invoices() if i["Identity"] == "V00231"]
    assert sorted(i["InvoiceNo"] for i in posted) == sorted(f"R-{n}" for n in RESTORED)
    assert all(i["GrossCurrAmount"] == "80.00" and i["Objstate"] == "Posted" for i in posted)
    assert states(world) == {**{f"R-{n}": "posted" for n in RESTORED}, "R-X": "failed",
                      "R-P": "awaiting_approval"}
    for n, expected in NEXT_EVENTS.items():
        events = history(world, f"V00231/R-{n}")
        assert events[8]["type"] == "Retried"
        assert (events[8]["data"]["from_version"], events[8]["data"]["restored_state"]) == \
            (n, RESTORED[n])
        assert [e["type"] for e in events[9:]] == expected
