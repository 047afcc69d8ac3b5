"""The fault matrix: whatever IFS or the SFTP server does, every invoice ends posted exactly
once, and the ledger agrees with IFS."""
from __future__ import annotations

import json
from collections import Counter

import pytest

from tests.e2e.conftest import SAMPLES
from tests.e2e.test_sync_e2e import assert_each_posted_once

# fault -> (inject it, what the emulator's request log must show it did: how many answers
# each fault kind gave, "401" for requests refused with an expired token)
FAULTS = {
    "429 burst with Retry-After": (lambda ifs: ifs.rate_limit_burst(5, retry_after=1),
                                   {"rate_limit": 5}),
    "429 burst without Retry-After": (lambda ifs: ifs.rate_limit_burst(5, retry_after=None),
                                      {"rate_limit": 5}),
    "503 MI_MODIFIED_ERROR": (lambda ifs: ifs.mi_modified(4), {"mi_modified": 4}),
    "423 locked on writes": (lambda ifs: ifs.locked(3, method="POST"), {"locked": 3}),
    "504 on writes": (lambda ifs: ifs.gateway_timeout(2, method="POST"), {"timeout": 2}),
    "504 on reads": (lambda ifs: ifs.gateway_timeout(3, method="GET"), {"timeout": 3}),
    # By use count, not time: a sync fast enough to finish within any lifetime saw no 401.
    "tokens expire early": (lambda ifs: ifs.expire_tokens(after=None, uses=2), {"401": 1}),
    "committed, then connection dropped": (lambda ifs: ifs.drop_after_commit(2, method="POST"),
                                           {"drop": 2}),
}


def fired(world) -> Counter:
    """What the faults did, from the emulator's request log."""
    seen: Counter = Counter()
    for entry in world.ifs.requests():
        if entry["fault"]:
            seen[entry["fault"]] += 1
        elif entry["status"] == 401 and entry.get("kind") != "token":
            seen["401"] += 1
    return seen


@pytest.mark.parametrize("fault", list(FAULTS))
def test_nothing_lost_nothing_doubled(world, fault):
    inject, expected = FAULTS[fault]
    world.drop(*SAMPLES.glob("*"))
    inject(world.ifs)
    for _ in range(4):                       # transient failures may need another cycle
        report = json.loads(world.cli("sync", "--json", check=False).stdout)
        if report["states"].get("posted") == 4:
            break
    seen = fired(world)
    for kind, least in expected.items():     # the fault really happened, all of it
        assert seen[kind] >= least, f"{fault}: expected {expected}, the log shows {dict(seen)}"
    assert all(f["count"] == 0 for f in world.ifs.faults_listing()), "a fault never fired"
    assert_each_posted_once(world)
    world.ifs.clear_faults()


def test_sftp_server_down_then_back(world):
    world.drop(*SAMPLES.glob("*"))
    world.sshd.stop()
    try:
        result = world.cli("sync", check=False)
        assert result.returncode == 1
        assert "Stampli SFTP" in result.stderr and "127.0.0.1" in result.stderr
        assert world.ifs_invoices() == []
    finally:
        world.sshd.start()
    world.cli("sync")
    assert_each_posted_once(world)


def test_replay_of_a_parked_transient_failure(make_world):
    world = make_world(connector={"max_attempts": 2})
    world.drop(*SAMPLES.glob("*"))
    world.ifs.mi_modified(None, method="POST")   # IFS refreshing its metadata until cleared
    for _ in range(2):                           # the breaker ends each cycle: 2 attempts
        result = world.cli("sync", check=False)
        assert result.returncode == 1 and "error: IFS: " in result.stderr
    assert fired(world)["mi_modified"] >= 2      # every attempt met the fault
    failed = [r for r in world.status().values() if r["state"] == "failed"]
    assert failed and all(r["failure_kind"] == "transient" for r in failed)
    assert world.ifs_invoices() == []
    world.ifs.clear_faults()
    replayed = json.loads(world.cli("replay", "--failed", "--json",
                                    "--reason", "IFS is back").stdout)
    assert len(replayed) == len(failed)
    world.cli("sync")
    assert_each_posted_once(world)
