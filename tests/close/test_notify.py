"""Notifications through apprise to real loopback servers (SMTP and a JSON webhook): what
each received, and what the ledger recorded (never a destination's URL)."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from adapters.secrets import SecretStore
from adapters.settings import load_settings
from projections.export import iter_events
from runtime import Runtime
from tests.close.conftest import write_config
from tests.close.receivers import JsonReceiver, SmtpReceiver
from tests.fakes import FolderSource


@pytest.fixture
def receivers():
    with SmtpReceiver() as smtp, JsonReceiver() as hook:
        yield smtp, hook


def _configure(world, smtp, hook, **notify) -> None:
    lines = "\n".join(f"{k} = {v!r}".replace("'", '"') if isinstance(v, str)
                      else f"{k} = {str(v).lower() if isinstance(v, bool) else v}"
                      for k, v in notify.items())
    write_config(world.dir, world.ifs.base_url, extra=f"\n[notify]\n{lines}\n")
    SecretStore(world.dir / "data").set("notify.urls", f"{smtp.url()}\n{hook.url()}\n")


def _notice_events(world) -> list[dict]:
    rt = Runtime(load_settings(world.config))
    try:
        return [e for e in iter_events(rt.ledger) if e["stream"] == "notice"]
    finally:
        rt.close()


def test_notify_test_reaches_every_destination_and_is_recorded(close_world, receivers):
    smtp, hook = receivers
    _configure(close_world, smtp, hook)
    result = close_world.cli("notify", "test")
    assert result.exit_code == 0, result.output
    assert "ok    #1 mailto  delivered" in result.output
    assert "ok    #2 json  delivered" in result.output
    assert smtp.messages[0]["Subject"] == "ml-connector: test"
    assert smtp.messages[0]["To"] == "ap-lead@example.com"
    assert hook.received[0]["title"] == "ml-connector: test"
    assert "notify test" in hook.received[0]["message"]
    events = _notice_events(close_world)
    assert [e["type"] for e in events] == ["Composed", "Sent"]
    assert events[1]["data"]["destinations"] == ["#1 mailto", "#2 json"]
    dump = str(events)
    assert "s3cr3t-hook-token" not in dump and str(hook.port) not in dump


def test_a_failing_destination_is_reported_and_exit_1(close_world, receivers):
    smtp, hook = receivers
    _configure(close_world, smtp, hook)
    hook.status = 500
    result = close_world.cli("notify", "test")
    assert result.exit_code == 1
    assert "FAIL  #2 json" in result.output and "s3cr3t-hook-token" not in result.output
    assert len(smtp.messages) == 1
    failed = [e for e in _notice_events(close_world) if e["type"] == "SendFailed"]
    assert failed[0]["data"]["failed"][0]["destination"] == "#2 json"
    assert failed[0]["data"]["sent"] == ["#1 mailto"]
    hook.status = 200
    close_world.sync()                                # a test message is not retried
    assert hook.received == []


def test_no_destinations_is_a_configuration_error(close_world):
    result = close_world.cli("notify", "test")
    assert result.exit_code == 2 and "notify.urls" in result.output


def test_new_exceptions_one_message_per_cycle_at_most_n_listed(close_world, receivers):
    smtp, hook = receivers
    _configure(close_world, smtp, hook, max_listed=1)
    # account 6540 expired in IFS: two invoices fail at validation in the same cycle
    close_world.ifs.seed({"accounts": [{"Company": "10", "Account": "6540",
                                        "ValidUntil": "2000-01-02"}]})
    report = close_world.sync()
    assert len(report.failed) == 2
    assert len(hook.received) == 1 and len(smtp.messages) == 1
    message = hook.received[0]
    assert message["title"] == "ml-connector: 2 new invoice exceptions"
    body = message["message"]
    assert "reference at validate" in body and "GL account 6540" in body
    assert body.count("\n- ") + body.startswith("- ") == 1
    assert "and 1 more" in body
    assert any(ref in body for ref in ("V00231/A-5531 (USD 335.34)",
                                       "V00877/INV-2026-0117 (EUR 1190.00)"))
    # nothing new: no message
    close_world.sync()
    assert len(hook.received) == 1


def _runtime(world) -> Runtime:
    return Runtime(load_settings(world.config), source=FolderSource(world.outbound))


def test_failed_send_never_fails_the_cycle_and_is_retried_next_cycle(close_world, receivers):
    smtp, hook = receivers
    _configure(close_world, smtp, hook)
    close_world.ifs.seed({"accounts": [{"Company": "10", "Account": "6540",
                                        "ValidUntil": "2000-01-02"}]})
    hook.status = 500
    rt = _runtime(close_world)
    try:
        report = rt.sync_blocking()
        assert len(report.failed) == 2 and len(smtp.messages) == 1 and hook.received == []
        hook.status = 200
        rt.sync_blocking()                          # nothing new, but the retry goes out
        assert len(hook.received) == 1 and len(smtp.messages) == 1   # only where it failed
        assert hook.received[0]["title"] == "ml-connector: 2 new invoice exceptions"
    finally:
        rt.close()
    kinds = [e["type"] for e in _notice_events(close_world)]
    assert kinds == ["Composed", "SendFailed", "Sent"]


class _Report:
    def __init__(self, errors=(), failed=()):
        self.errors, self.failed, self.poll = list(errors), list(failed), {}


def test_trouble_after_k_cycles_then_recovery_then_stalled_and_digest(close_world, receivers):
    smtp, hook = receivers
    _configure(close_world, smtp, hook, trouble_cycles=2, stalled_after="1h",
               digest_at="07:30", workspace_url="https://ap.example.com/workspace")
    close_world.sync()                               # four invoices posted today
    rt = _runtime(close_world)
    now = [datetime(2026, 12, 2, 6, 0, tzinfo=timezone.utc)]
    try:
        notices = rt.notifications()
        notices.clock = lambda: now[0]
        notices.watch.last_success = now[0]
        rt.notify_after_cycle(notices, None, "Stampli SFTP: connection refused")
        assert hook.received == []                   # one troubled cycle: not yet
        rt.notify_after_cycle(notices, _Report(errors=["IFS: 503 from the token endpoint"]))
        assert hook.received[-1]["title"] == "ml-connector: system trouble for 2 cycles in a row"
        assert "IFS: 503" in hook.received[-1]["message"]
        rt.notify_after_cycle(notices, _Report(errors=["IFS: 503"]))
        assert len(hook.received) == 1               # told once, not every cycle
        rt.notify_after_cycle(notices, _Report())
        assert hook.received[-1]["title"] == "ml-connector: recovered"
        now[0] += timedelta(minutes=61)
        rt.notify_tick(notices)
        assert hook.received[-1]["title"] == "ml-connector: stalled"
        count = len(hook.received)
        rt.notify_tick(notices)
        assert len(hook.received) == count           # a stall is told once
        # the digest: due at 07:30 local (UTC here), once a day
        now[0] = datetime.now(timezone.utc).replace(hour=7, minute=31) + timedelta(days=1)
        rt.notify_tick(notices)
        digest = hook.received[-1]
        assert digest["title"].startswith("ml-connector digest") and \
            "4 posted yesterday" in digest["title"]
        assert "Workspace: https://ap.example.com/workspace" in digest["message"]
        count = len(hook.received)
        rt.notify_tick(notices)
        assert len(hook.received) == count
    finally:
        rt.close()


def test_the_daemon_tells_of_trouble_then_recovery(close_world, receivers):
    """The daemon's loop (run_daemon, stopped by a real SIGTERM): IFS unreachable cycle after
    cycle, one trouble message after two; IFS back on its port, one recovery message."""
    import asyncio
    import os
    import signal
    import threading
    import time

    from sandbox.ifs.runner import start_in_thread
    from tests.close.receivers import free_port

    smtp, hook = receivers
    _configure(close_world, smtp, hook, trouble_cycles=2, digest=False)
    port = free_port()                                   # IFS will come up here, later
    config = close_world.config.read_text()
    close_world.config.write_text(
        config.replace(close_world.ifs.base_url, f"http://127.0.0.1:{port}")
        .replace('retry_base = "0s"', 'schedule = "1s"\nretry_base = "1s"\nretry_max = "1s"')
        .replace("max_attempts = 3", "max_attempts = 50"))
    started = []

    def operator() -> None:
        deadline = time.time() + 40
        while time.time() < deadline and not hook.received:
            time.sleep(0.1)
        time.sleep(1.5)                                  # more troubled cycles: told once
        started.append((len(hook.received), start_in_thread(port=port)))
        while time.time() < deadline and len(hook.received) < 2:
            time.sleep(0.1)
        os.kill(os.getpid(), signal.SIGTERM)

    rt = _runtime(close_world)
    cycles = []
    thread = threading.Thread(target=operator, daemon=True)
    thread.start()
    try:
        asyncio.run(rt.run_daemon(cycles.append, lambda exc: cycles.append(exc)))
    finally:
        rt.close()
        thread.join(5)
        for _, ifs in started:
            ifs.stop()
    assert started and started[0][0] == 1
    titles = [m["title"] for m in hook.received]
    assert titles == ["ml-connector: system trouble for 2 cycles in a row",
                      "ml-connector: recovered"]
    assert "could not be reached" in hook.received[0]["message"]
    assert len(cycles) >= 4


def test_a_failed_send_is_retried_by_the_next_process_too(close_world, receivers):
    """`sync` run from cron: the process that failed to send is gone; the next one sends."""
    smtp, hook = receivers
    _configure(close_world, smtp, hook)
    close_world.ifs.seed({"accounts": [{"Company": "10", "Account": "6540",
                                        "ValidUntil": "2000-01-02"}]})
    hook.status = 500
    assert len(close_world.sync().failed) == 2
    assert hook.received == [] and len(smtp.messages) == 1
    hook.status = 200
    close_world.sync()                               # a new Runtime, as a new process
    assert [m["title"] for m in hook.received] == ["ml-connector: 2 new invoice exceptions"]
    assert len(smtp.messages) == 1
    close_world.sync()
    assert len(hook.received) == 1                   # sent once, then no longer pending


def test_the_digest_is_due_at_its_local_time_in_connector_timezone(tmp_path):
    """digest_at 07:30 in Europe/Berlin is 06:30 UTC in winter and 05:30 UTC in summer."""
    from datetime import time as clock_time
    from zoneinfo import ZoneInfo

    from adapters.notify import AppriseSender
    from ledger.app import Ledger
    from ledger.notices import Notifications, Policy

    ledger = Ledger(f"sqlite:///{tmp_path}/ledger.db")
    now = [datetime(2026, 1, 15, 6, 29, tzinfo=timezone.utc)]
    try:
        with JsonReceiver() as hook:
            notices = Notifications(ledger, AppriseSender([hook.url()]), Policy(
                digest_at=clock_time(7, 30), tz=ZoneInfo("Europe/Berlin"), stalled=False),
                lambda: now[0])
            assert notices.digest_key() is None                         # 07:29 in Berlin
            assert notices.next_check() == datetime(2026, 1, 15, 6, 30, tzinfo=timezone.utc)
            now[0] = datetime(2026, 1, 15, 6, 31, tzinfo=timezone.utc)
            assert notices.digest_key() == "digest:2026-01-15"
            notices.send_digest("digest:2026-01-15", "digest", "body")
            assert notices.digest_key() is None and len(hook.received) == 1   # once a day
            now[0] = datetime(2026, 7, 15, 5, 29, tzinfo=timezone.utc)          # summer time
            assert notices.digest_key() is None
            assert notices.next_check() == datetime(2026, 7, 15, 5, 30, tzinfo=timezone.utc)
            now[0] = datetime(2026, 7, 15, 5, 30, tzinfo=timezone.utc)
            assert notices.digest_key() == "digest:2026-07-15"
    finally:
        ledger.close()
