"""The workspace's reads without a browser: which invoices the exceptions list holds, in what
order, filtered and paged; /healthz's verdict from the last cycle on record."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from adapters.cycle_record import next_run, note_next_run, read_cycle, write_cycle
from adapters.schedule import Schedule
from adapters.settings import settings_from_dict
from ledger.status import COLUMNS, empty_row
from projections.status import TABLE
from projections.workspace import ExceptionFilter, exceptions, overview
from runtime import Runtime
from web.health import health

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=timezone.utc)


@pytest.fixture
def rt(tmp_path):
    settings = settings_from_dict({"connector": {"company": "10", "schedule": "1m",
                                                 "ledger": f"sqlite:///{tmp_path}/l.db",
                                                 "data_dir": str(tmp_path / "data")}})
    runtime = Runtime(settings)
    runtime.projector.catch_up()
    yield runtime
    runtime.close()


def _add(rt, n: int, state: str, kind: str = "", vendor: str = "V1", minutes_ago: int = 0,
         number: str = "") -> None:
    row = empty_row(f"00000000-0000-0000-0000-{n:012d}")
    row.update(state=state, failure_kind=kind, vendor_id=vendor, company="10",
               invoice_number=number or f"INV-{n}",
               updated_at=(NOW - timedelta(minutes=minutes_ago)).isoformat())
    with rt.projector.store.transaction() as cur:
        cur.execute(f"INSERT INTO {TABLE} ({', '.join(COLUMNS)}) VALUES"
                    f" ({', '.join('?' * len(COLUMNS))})", [row[c] for c in COLUMNS])


def test_exceptions_are_the_stuck_ones_oldest_first_filtered_and_paged(rt):
    _add(rt, 1, "failed", "reference", minutes_ago=10)
    _add(rt, 2, "failed", "data", vendor="V2", minutes_ago=30, number="A-5531")
    _add(rt, 3, "retry_scheduled", "transient", minutes_ago=20)
    _add(rt, 4, "needs_attention", "conflict", minutes_ago=5)
    _add(rt, 5, "awaiting_approval", minutes_ago=60 * 24 * 5)     # waiting 5 days
    _add(rt, 6, "awaiting_approval", minutes_ago=60)               # waiting an hour
    _add(rt, 7, "posted", minutes_ago=1)
    before = (NOW - timedelta(days=3)).isoformat()
    with rt.projector.store.transaction() as cur:
        rows, total = exceptions(cur, ExceptionFilter(), before)
        assert total == 5
        assert [r["invoice_number"] for r in rows] == ["INV-5", "A-5531", "INV-3", "INV-1",
                                                       "INV-4"]
        assert exceptions(cur, ExceptionFilter(kind="approval"), before)[1] == 1
        assert exceptions(cur, ExceptionFilter(kind="data"), before)[0][0]["vendor_id"] == "V2"
        assert exceptions(cur, ExceptionFilter(vendor="V2"), before)[1] == 1
        assert [r["invoice_number"] for r in exceptions(
            cur, ExceptionFilter(search="a-55"), before)[0]] == ["A-5531"]
        assert exceptions(cur, ExceptionFilter(search="50%_"), before)[1] == 0
        page2, total = exceptions(cur, ExceptionFilter(page=2, page_size=2), before)
        assert total == 5 and [r["invoice_number"] for r in page2] == ["INV-3", "INV-1"]
        older = (NOW - timedelta(minutes=15)).isoformat()
        assert exceptions(cur, ExceptionFilter(older_than=older), before)[1] == 3
        seen = overview(cur, NOW.replace(hour=0).isoformat(), NOW.isoformat(), before)
    assert seen["states"]["failed"] == 2 and seen["posted_today"] == 1
    assert seen["oldest"]["invoice_number"] == "INV-5"


def _cycle(rt, finished: datetime, errors: list[str]) -> None:
    write_cycle(rt.settings.data_dir, {
        "started_at": finished.isoformat(), "finished_at": finished.isoformat(),
        "duration_seconds": 1.0, "moved": {}, "failed": 0, "errors": errors,
        "poll_errors": 0, "sftp_ok": True, "ifs_ok": not errors, "ok": not errors})


def test_the_next_run_is_what_the_daemon_planned_else_the_tick_after_the_last_cycle(rt):
    rt.settings.data_dir.mkdir(parents=True, exist_ok=True)
    hourly = Schedule("1h").next_after
    assert next_run(read_cycle(rt.settings.data_dir), hourly, NOW) is None
    _cycle(rt, NOW - timedelta(minutes=10), [])                  # a `sync`
    assert next_run(read_cycle(rt.settings.data_dir), hourly, NOW) == NOW + timedelta(minutes=50)
    early = NOW + timedelta(seconds=7)                           # a file too young: early
    note_next_run(rt.settings.data_dir, early)
    assert next_run(read_cycle(rt.settings.data_dir), hourly, NOW) == early
    assert next_run(read_cycle(rt.settings.data_dir), hourly, early + timedelta(seconds=3)) \
        == early + timedelta(seconds=3)                          # never in the past
    _cycle(rt, NOW, [])                                          # then a `sync`: its own tick
    assert next_run(read_cycle(rt.settings.data_dir), hourly, NOW) == NOW + timedelta(hours=1)


def test_healthz_names_what_is_wrong(rt):
    rt.settings.data_dir.mkdir(parents=True, exist_ok=True)
    ok, text = health(rt, NOW)
    assert not ok and "no cycle has run yet" in text
    _cycle(rt, NOW - timedelta(seconds=30), ["IFS: token refused"])
    ok, text = health(rt, NOW)
    assert not ok and "no cycle has succeeded yet" in text and "token refused" in text
    _cycle(rt, NOW - timedelta(seconds=90), [])
    assert health(rt, NOW) == (True, f"ok: last successful cycle at"
                                     f" {(NOW - timedelta(seconds=90)).isoformat()}")
    _cycle(rt, NOW - timedelta(seconds=20), ["IFS: 503"])      # one failure, a success 90s ago
    later = NOW + timedelta(minutes=2)                         # 210s > twice the 1m schedule
    ok, text = health(rt, later)
    assert not ok and "more than twice the schedule interval (60s)" in text and "IFS: 503" in text


def test_only_health_and_metrics_answer_without_login(rt):
    import asyncio

    asyncio.run(_only_health_and_metrics(rt))


async def _only_health_and_metrics(rt):
    from aiohttp.test_utils import TestClient, TestServer

    from web.app import build_app

    _add(rt, 1, "failed", "reference")
    _add(rt, 2, "posted")
    async with TestClient(TestServer(build_app(rt))) as client:
        health_answer = await client.get("/healthz")
        assert health_answer.status == 503 and "no cycle" in await health_answer.text()
        metrics_answer = await client.get("/metrics")
        body = await metrics_answer.text()
        assert metrics_answer.status == 200
        assert 'mlc_invoices{state="failed"} 1.0' in body and "mlc_invoices_posted 1.0" in body
        assert 'mlc_failures{kind="reference"} 1.0' in body
        for path in ("/", "/exceptions", "/files", f"/invoice/{'0' * 8}-0000-0000-0000-{1:012d}"):
            answer = await client.get(path, allow_redirects=False)
            assert answer.status == 302 and answer.headers["Location"].startswith("/login")
        assert "frame-ancestors 'none'" in answer.headers["Content-Security-Policy"]
        forged = await client.post(f"/invoice/{'0' * 8}-0000-0000-0000-{1:012d}/retry",
                                   data={"reason": "x"}, allow_redirects=False)
        assert forged.status == 403


def test_a_forged_tampered_or_expired_session_is_no_session(rt):
    from itsdangerous import URLSafeTimedSerializer

    from web.session import Sessions

    class Request:
        def __init__(self, cookie: str) -> None:
            self.cookies = {"mlc_session": cookie}

    sessions = Sessions("the-key", lifetime=60)
    good = sessions._signer.dumps({"user": "ann", "role": "operator", "csrf": "t"})
    assert sessions.read(Request(good))["user"] == "ann"
    forged = URLSafeTimedSerializer("another-key", salt="ml-connector.session").dumps(
        {"user": "ann", "role": "admin", "csrf": "t"})
    assert sessions.read(Request(forged)) is None
    import base64
    payload, stamp, mac = good.split(".")
    admin = base64.urlsafe_b64encode(b'{"user":"ann","role":"admin","csrf":"t"}').rstrip(b"=")
    assert sessions.read(Request(f"{admin.decode()}.{stamp}.{mac}")) is None   # tampered
    assert sessions.read(Request(good[:-2] + "xx")) is None

    old = URLSafeTimedSerializer("the-key", salt="ml-connector.session")
    import time
    signer = old.make_signer()              # signed two minutes ago, for a 60 s session
    signer.get_timestamp = lambda: int(time.time()) - 120
    expired = signer.sign(old.dump_payload({"user": "ann", "role": "operator",
                                            "csrf": "t"})).decode()
    assert sessions.read(Request(expired)) is None
    assert Sessions.csrf_ok({"csrf": "t"}, "t") and not Sessions.csrf_ok({"csrf": "t"}, "")


def test_serve_answers_and_stops_on_sigterm(tmp_path):
    import signal
    import socket
    import subprocess
    import urllib.error
    import urllib.request

    from adapters.secrets import create_master_key
    from tests.installed_cli import CLI, cli_env

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    (tmp_path / "ml-connector.toml").write_text(
        f'[connector]\ncompany = "10"\n\n[web]\nport = {port}\n')
    create_master_key(tmp_path / "data")
    server = subprocess.Popen([*CLI, "serve"], cwd=tmp_path, env=cli_env(),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1)
            except urllib.error.HTTPError as exc:
                assert exc.code == 503 and b"no cycle has run yet" in exc.read()
                break
            except OSError:
                import time
                time.sleep(0.1)
        else:
            raise AssertionError("serve did not answer")
    finally:
        server.send_signal(signal.SIGTERM)
        out, err = server.communicate(timeout=20)
    assert server.returncode == 0, err
    assert f"workspace on http://127.0.0.1:{port}/" in err and "Traceback" not in err
