"""`run` comes back for a file it skipped only because it was younger than min_file_age as
soon as the file is old enough, not a whole schedule later; and a file that will be "young"
for a long time (an mtime in the future: the SFTP server's clock ahead of ours) leaves the
daemon on its schedule instead of cycling again and again. Real `run` process, real sshd,
the IFS emulator; the schedule is an hour, so only an early cycle can explain a posting."""
from __future__ import annotations

import os
import signal
import subprocess
import time
from datetime import datetime, timedelta

from adapters.cycle_record import read_cycle
from adapters.schedule import EARLY_GAP
from adapters.settings import load_settings
from runtime import Runtime
from tests.e2e.conftest import CLI, SAMPLES, cli_env, write_config

INVOICES = "invoices_C1042_20261106152500.csv"
APPROVED = {("V00231", "INV-2026-0117"), ("V00231", "CN-2026-0009"),
            ("V00877", "INV-2026-0117")}           # the file's fourth awaits approval
OLD_ENOUGH = ("vendors_C1042_20261106152500.csv", "purchase_orders_C1042_20261106150000.csv")


def _configure(world, min_file_age: str) -> None:
    write_config(world.dir, world.sshd, world.ifs.base_url, connector={"schedule": "1h"},
                 stampli={"min_file_age": min_file_age})
    world.drop(*(SAMPLES / name for name in OLD_ENOUGH))


def _start(world) -> subprocess.Popen:
    return subprocess.Popen([*CLI, "--config", str(world.config), "run"], cwd=world.dir,
                            env=cli_env(), stdout=subprocess.DEVNULL,
                            stderr=open(world.dir / "run.log", "w"), text=True)


def _stop(daemon: subprocess.Popen, world) -> str:
    daemon.send_signal(signal.SIGTERM)
    assert daemon.wait(timeout=60) == 0
    log = (world.dir / "run.log").read_text()
    assert "Traceback" not in log
    return log


def _first_cycle_done(world) -> bool:
    return (world.dir / "data" / "last_cycle.json").exists()


def _wait(condition, what: str, daemon: subprocess.Popen, timeout: float = 90) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if condition():
            return
        assert daemon.poll() is None, "run exited"
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _poll_runs(world) -> list:
    """The daemon's PollRun Finished events, oldest first, as the ledger has them."""
    ledger = Runtime(load_settings(world.config)).ledger
    try:
        return [ledger.mapper.to_domain_event(n)
                for n in ledger.recorder.select_notifications(1, 100_000)
                if n.topic == "ml_connector.poll.Finished"]
    finally:
        ledger.close()


def test_a_file_skipped_as_too_young_is_posted_by_an_early_cycle(make_world):
    world = make_world()
    _configure(world, min_file_age="3s")
    daemon = _start(world)
    try:
        # Stampli still writes the file until the first cycle has looked at it: too young
        # then, however long the daemon takes to start.
        while not _first_cycle_done(world):
            world.drop(SAMPLES / INVOICES, age=0)
            assert daemon.poll() is None, "run exited"
            time.sleep(0.2)
        _wait(lambda: len(world.ifs_invoices()) == len(APPROVED),
              "the young file's invoices in IFS", daemon)
    finally:
        log = _stop(daemon, world)
    assert f"early cycle for {INVOICES}" in log and "old enough now" in log
    assert log.count("cycle done") == 2         # the first tick and the early cycle; no other
    first, early = _poll_runs(world)
    (skip,) = [s for s in first.skipped if s["name"] == INVOICES]
    assert skip["reason"] == "younger than min_file_age"
    assert datetime.fromisoformat(skip["ready_at"]) < datetime.fromisoformat(early.ended_at)
    assert INVOICES not in first.taken and INVOICES in early.taken
    # The overview's next run is the hourly tick after the first cycle, which the early
    # cycle did not move (it would be an hour after the early cycle otherwise).
    planned = read_cycle(world.dir / "data")["next_run_at"]
    assert datetime.fromisoformat(planned) <= datetime.fromisoformat(early.ended_at) \
        + timedelta(hours=1) - EARLY_GAP
    assert {(i["Identity"], i["InvoiceNo"]) for i in world.ifs_invoices()} == APPROVED
    posted = {key for key, row in world.status().items() if row["state"] == "posted"}
    assert posted == APPROVED


def test_a_file_from_the_future_does_not_make_the_daemon_cycle_again_and_again(make_world):
    world = make_world()
    _configure(world, min_file_age="2s")
    world.drop(SAMPLES / INVOICES, age=-86400)     # modified "tomorrow" by our clock
    daemon = _start(world)
    try:
        _wait(lambda: _first_cycle_done(world), "the first cycle", daemon)
        time.sleep(12)      # more than two early-cycle gaps: a hot loop would show by now
    finally:
        log = _stop(daemon, world)
    assert log.count("cycle done") == 1, log
    assert "early cycle" not in log
    assert f"{INVOICES} was modified" in log and "in the future" in log
    (only,) = _poll_runs(world)
    (skip,) = [s for s in only.skipped if s["name"] == INVOICES]
    assert skip["reason"] == "younger than min_file_age"
    assert world.ifs_invoices() == []
