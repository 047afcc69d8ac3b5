"""Issue 17, items 3 and 6 through the command line: `sync` exits 1 when IFS cannot be
reached (and names it), and the `run` daemon outlives a maintenance page in front of IFS,
posting once IFS answers again."""
from __future__ import annotations

import json
import signal
import socket
import subprocess
import time

from tests.e2e.conftest import CLI, SAMPLES, cli_env, write_config
from tests.e2e.test_sync_e2e import assert_each_posted_once
from tests.ifs.hostile import Hostile, html_page


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_sync_exits_1_when_ifs_is_unreachable_and_blames_no_invoice(make_world):
    world = make_world()
    world.drop(*SAMPLES.glob("*"))
    dead = f"http://127.0.0.1:{_closed_port()}"
    write_config(world.dir, world.sshd, dead)
    result = world.cli("sync", check=False)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "error: IFS: " in result.stderr and dead in result.stderr
    assert "Traceback" not in result.stderr
    assert "poll: " in result.stderr                     # progress, a line per stage
    assert not [r for r in world.status().values() if r["state"] == "failed"]
    write_config(world.dir, world.sshd, world.ifs.base_url)
    world.cli("sync")
    assert_each_posted_once(world)


def test_run_survives_a_maintenance_page_and_posts_once_ifs_is_back(make_world):
    world = make_world()
    world.drop(*SAMPLES.glob("*"))
    proxy = Hostile.forwarding(world.ifs.base_url).start_in_thread()
    page = proxy.add(html_page(200), path="/int/")
    write_config(world.dir, world.sshd, proxy.base_url)
    daemon = subprocess.Popen([*CLI, "--config", str(world.config), "run"], cwd=world.dir,
                              env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True)
    try:
        _wait(lambda: page.hits >= 3 and daemon.poll() is None, "the maintenance page served")
        time.sleep(1.5)                                  # at least one more cycle on it
        assert daemon.poll() is None, "run exited on a bad answer"
        proxy.clear()                                    # IFS answers again
        _wait(lambda: len(world.ifs_invoices()) >= 4, "the invoices posted")
    finally:
        daemon.send_signal(signal.SIGTERM)
        out, err = daemon.communicate(timeout=30)
        proxy.stop()
    assert daemon.returncode == 0, err
    assert "Traceback" not in err
    assert "text/html" in err and "cycle done" in err      # named, and the daemon went on
    write_config(world.dir, world.sshd, world.ifs.base_url)
    assert_each_posted_once(world)
    assert json.loads(world.cli("sync", "--json").stdout)["errors"] == []


def _wait(condition, what: str, timeout: float = 60) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")

