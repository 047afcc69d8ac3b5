"""The fault matrix: whatever IFS or the SFTP server does, every invoice ends posted exactly
once, and the ledger agrees with IFS."""
from __future__ import annotations

import json

import pytest

from tests.e2e.conftest import SAMPLES
from tests.e2e.test_sync_e2e import assert_each_posted_once

FAULTS = {
    "429 burst with Retry-After": lambda ifs: ifs.rate_limit_burst(5, retry_after=1),
    "429 burst without Retry-After": lambda ifs: ifs.rate_limit_burst(5, retry_after=None),
    "503 MI_MODIFIED_ERROR": lambda ifs: ifs.mi_modified(4),
    "423 locked on writes": lambda ifs: ifs.locked(3, method="POST"),
    "504 on writes": lambda ifs: ifs.gateway_timeout(2, method="POST"),
    "504 on reads": lambda ifs: ifs.gateway_timeout(3, method="GET"),
    "tokens expire early": lambda ifs: ifs.expire_tokens(after=0.3),
    "committed, then connection dropped": lambda ifs: ifs.drop_after_commit(2, method="POST"),
}


@pytest.mark.parametrize("fault", list(FAULTS))
def test_nothing_lost_nothing_doubled(world, fault):
    world.drop(*SAMPLES.glob("*"))
    FAULTS[fault](world.ifs)
    for _ in range(4):                       # transient failures may need another cycle
        report = json.loads(world.cli("sync", "--json", check=False).stdout)
        if report["states"].get("posted") == 4:
            break
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
    failed = [r for r in world.status().values() if r["state"] == "failed"]
    assert failed and all(r["failure_kind"] == "transient" for r in failed)
    assert world.ifs_invoices() == []
    world.ifs.clear_faults()
    replayed = json.loads(world.cli("replay", "--failed", "--json").stdout)
    assert len(replayed) == len(failed)
    world.cli("sync")
    assert_each_posted_once(world)
