"""Issue 17, items 3, 5 and 6 through the pipeline: a sync against an IFS that is down, hung,
answering HTML or refusing the secret reports it as an error (sync exits 1 on it), blames no
invoice for it, stays within its deadline, and the next cycle carries on once IFS is back.

The real IfsErp (built by Runtime from the settings) talks over HTTP to the emulator, with a
hostile proxy in between; the Stampli side is a local folder."""
from __future__ import annotations

import shutil
import socket
import time
from pathlib import Path

import pytest

from adapters.secrets import SecretStore, create_master_key
from adapters.settings import settings_from_dict
from runtime import Runtime
from sandbox.ifs.runner import start_in_thread
from tests.fakes import FolderSource

from .helpers import SECRET, TAX
from .hostile import Hostile, hang, html_page, json_answer

SAMPLES = Path(__file__).resolve().parents[2] / "sandbox" / "data"
APPROVED = 4                         # approved invoices in the samples (one more is Pending)


@pytest.fixture
def emulator():
    ifs = start_in_thread()
    yield ifs
    ifs.stop()


@pytest.fixture
def proxy(emulator):
    server = Hostile.forwarding(emulator.base_url).start_in_thread()
    yield server
    server.stop()


@pytest.fixture
def outbound(tmp_path):
    folder = tmp_path / "outbound"
    folder.mkdir()
    for sample in SAMPLES.glob("*_C1042_*"):
        shutil.copy(sample, folder)
    create_master_key(tmp_path / "data")
    SecretStore(tmp_path / "data").set("ifs.client_secret", SECRET)
    return folder


def sync(tmp_path, outbound, base_url, *, ifs=None, **connector):
    settings = settings_from_dict({
        "connector": {"company": "10", "ledger": f"sqlite:///{tmp_path}/ledger.db",
                      "data_dir": str(tmp_path / "data"), "retry_base": "0s",
                      "max_attempts": 5, **connector},
        "stampli": {"host": "sftp.invalid", "username": "u", "min_file_age": "0s",
                    "stable_wait": "0s", "companies": {"C1042": "10"}},
        "ifs": {"base_url": base_url, "realm": "acme1", "backoff_base": "0s",
                "backoff_cap": "0s", "retries": 2, "posting": {"tax_accounts": TAX},
                **(ifs or {})}})
    rt = Runtime(settings, source=FolderSource(outbound))
    lines: list[str] = []
    try:
        report = rt.sync_blocking(progress=lines.append)
        return report, rt.state_counts(), rt.status_rows(), lines
    finally:
        rt.close()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_unreachable_ifs_is_an_error_of_the_cycle_not_of_each_invoice(tmp_path, outbound,
                                                                       emulator):
    report, states, rows, lines = sync(tmp_path, outbound, f"http://127.0.0.1:{closed_port()}")
    assert report.errors and report.errors[0].startswith("IFS: ")
    assert "could not be reached" in report.errors[0] and "127.0.0.1" in report.errors[0]
    assert report.failed == [] and "failed" not in states     # no invoice charged with it
    assert any(line.startswith("IFS: stopped calling IFS") for line in lines)
    report, states, rows, _ = sync(tmp_path, outbound, emulator.base_url)
    assert report.errors == [] and states.get("posted") == APPROVED


def test_a_wrong_secret_rejects_no_invoice(tmp_path, outbound, emulator):
    SecretStore(tmp_path / "data").set("ifs.client_secret", "not-the-secret")
    report, states, rows, _ = sync(tmp_path, outbound, emulator.base_url)
    assert report.errors and "invalid_client" in report.errors[0]
    assert "not-the-secret" not in report.errors[0]
    assert report.failed == [] and "failed" not in states
    SecretStore(tmp_path / "data").set("ifs.client_secret", SECRET)
    report, states, _, _ = sync(tmp_path, outbound, emulator.base_url)
    assert report.errors == [] and states.get("posted") == APPROVED


def test_an_iam_answering_html_rejects_no_invoice(tmp_path, outbound, emulator, proxy):
    proxy.add(html_page(200), path="/auth/")
    report, states, _, _ = sync(tmp_path, outbound, proxy.base_url)
    assert report.errors and "text/html" in report.errors[0]
    assert report.failed == [] and "failed" not in states
    proxy.clear()
    report, states, _, _ = sync(tmp_path, outbound, proxy.base_url)
    assert report.errors == [] and states.get("posted") == APPROVED


def test_a_maintenance_page_on_every_odata_call_then_recovery(tmp_path, outbound, emulator,
                                                              proxy):
    proxy.add(html_page(200), path="/int/")
    report, states, rows, lines = sync(tmp_path, outbound, proxy.base_url)
    assert report.errors and "text/html" in " ".join(report.errors + [
        f["message"] for f in report.failed])
    assert all(f["kind"] == "transient" for f in report.failed)
    assert "posted" not in states and emulator.state()["invoices"] == []
    proxy.clear()                                              # the proxy recovers
    report, states, _, _ = sync(tmp_path, outbound, proxy.base_url)
    assert report.errors == [] and states.get("posted") == APPROVED


def test_the_breaker_stops_calling_a_failing_ifs_for_the_rest_of_the_cycle(tmp_path, outbound,
                                                                          emulator, proxy):
    proxy.add(json_answer({"error": {"code": "", "message": "Bad gateway"}}, 502),
              path="/int/")
    report, states, _, lines = sync(tmp_path, outbound, proxy.base_url,
                                    ifs={"breaker_after": 4})
    odata = [r for r in proxy.received if r["path"].startswith("/int/")]
    assert len(odata) <= 4 + 2            # the breaker, plus what one request's retries add
    assert any("failed" in e and "in a row" in e for e in report.errors), report.errors
    assert "IFS_BREAKER_OPEN" not in " ".join(report.errors)   # words, not codes
    assert any("stopped calling IFS" in line for line in lines)
    proxy.clear()
    report, states, _, _ = sync(tmp_path, outbound, proxy.base_url)
    assert report.errors == [] and states.get("posted") == APPROVED


def test_a_hung_ifs_is_bounded_by_the_cycle_timeout(tmp_path, outbound, emulator, proxy):
    proxy.add(hang(30), path="/int/")
    started = time.monotonic()
    report, states, _, lines = sync(tmp_path, outbound, proxy.base_url,
                                    cycle_timeout="1s", ifs={"timeout": "60s"})
    took = time.monotonic() - started
    assert took < 6, took
    assert any("cycle_timeout" in e for e in report.errors), report.errors
    assert lines[0].startswith("poll: ") and lines[1].startswith("vendors: ")
    assert lines[-1].startswith("IFS: stopped calling IFS for this cycle")
    assert "posted" not in states


def test_a_maintenance_page_under_two_batches_in_flight_posts_each_invoice_once(
        tmp_path, outbound, emulator, proxy):
    """One invoice per batch, so two posting `$batch` requests are out at once; IFS answers
    the first two with its maintenance page. Each of those invoices is charged with a
    transient failure, looked up before it is sent again, and every approved invoice ends
    posted exactly once."""
    proxy.add(html_page(200), path="$batch", method="POST", count=2)
    report, states, _, _ = sync(tmp_path, outbound, proxy.base_url, post_batch=1)
    assert len(report.failed) == 2
    assert all(f["kind"] == "transient" and "text/html" in f["message"]
               for f in report.failed)
    assert report.errors == [] and states.get("posted") == APPROVED
    refs = [i["ExternalRef"] for i in emulator.state()["invoices"]]
    assert len(refs) == len(set(refs)) == APPROVED
