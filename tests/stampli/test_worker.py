"""Pass 2 in a worker process (large CSV files): the same items as in this process, the
worker and the spill gone when the reader is closed early, a dead worker an error."""
from __future__ import annotations

import tempfile

import pytest

import adapters.stampli.worker as worker
from adapters.settings import InvoiceFileSettings
from adapters.stampli.configured import read_invoices
from tests.stampli.exports import csv_text, row, write


@pytest.fixture
def in_worker(monkeypatch):
    """Every file is large enough, and there is a core to spare."""
    monkeypatch.setattr(worker, "PARALLEL_ROWS", 0)
    monkeypatch.setattr(worker, "_cores", lambda: 2)


def mixed_rows(invoices: int = 700):
    """Two lines per invoice in the two halves of the file, a rule broken here and there,
    and rows that cannot be attributed."""
    rows = []
    for half in (0, 1):
        for i in range(invoices):
            net = "51.00" if i % 97 == 0 and half else "50.00"
            rows.append(row(InvoiceNumber=f"N{i}", LineNumber=str(half + 1), LineNet=net,
                            LineTax="4.00", CompanyID="C2000" if i % 5 == 0 else "C1042"))
            if i % 301 == 0:
                rows.append(row(InvoiceNumber="", VendorID=f"V{i}"))
    return rows


def read(path):
    return read_invoices(path, InvoiceFileSettings(), default_company="10",
                         companies={"C2000": "20"})


def test_worker_yields_what_this_process_yields(tmp_path, monkeypatch):
    path = write(tmp_path, "invoices_a.csv", csv_text(mixed_rows()))
    here = list(read(path))
    monkeypatch.setattr(worker, "PARALLEL_ROWS", 0)
    monkeypatch.setattr(worker, "_cores", lambda: 2)
    started = []
    real = worker.subprocess.Popen
    monkeypatch.setattr(worker.subprocess, "Popen",
                        lambda *a, **k: started.append(a) or real(*a, **k))
    there = list(read(path))
    assert started, "the worker did not run"
    assert there == here
    assert repr(there) == repr(here)           # decimals keep their exponent, too
    assert {type(i).__name__ for i in here} == {"ParsedInvoice", "RejectedRow"}


def test_early_close_stops_the_worker_and_removes_the_spill(tmp_path, monkeypatch, in_worker):
    folder = tmp_path / "scratch"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    processes = []
    real = worker.subprocess.Popen
    monkeypatch.setattr(worker.subprocess, "Popen",
                        lambda *a, **k: processes.append(real(*a, **k)) or processes[-1])
    iterator = read(write(tmp_path, "invoices_a.csv", csv_text(mixed_rows(3000))))
    next(iterator)
    iterator.close()
    assert processes and processes[0].poll() is not None
    assert list(folder.iterdir()) == []


def test_a_worker_that_dies_before_its_first_batch_means_pass_2_here(tmp_path, monkeypatch,
                                                                    in_worker):
    path = write(tmp_path, "invoices_a.csv", csv_text(mixed_rows(10)))
    monkeypatch.setattr(worker, "PARALLEL_ROWS", 10**9)
    here = list(read(path))
    monkeypatch.setattr(worker, "PARALLEL_ROWS", 0)
    monkeypatch.setattr(worker, "_COMMAND", ("-c", "import sys; sys.exit(3)"))
    assert list(read(path)) == here


# A worker script's start: `job` holds the job it was given (its share among them).
KNOWING_ITS_JOB = (
    "import sys, adapters.stampli.worker as w\n"
    "receive, send, job = w._receive, w._send, {}\n"
    "def spy(fd):\n"
    "    message = receive(fd)\n"
    "    job.update(message or {})\n"
    "    return message\n")


def test_a_worker_that_dies_later_is_an_error(tmp_path, monkeypatch, in_worker):
    """Each worker sends one batch, then stops saying so: the error is the first worker's,
    in its own words (each worker has its own file for them)."""
    one_batch_then_exit = KNOWING_ITS_JOB + (
        "def first_only(out, frame):\n"
        "    send(out, frame); out.flush()\n"
        "    print(f'boom from worker {job[\"share\"][0]}', file=sys.stderr); sys.exit(3)\n"
        "w._receive, w._send = spy, first_only\n"
        "w.main()\n")
    monkeypatch.setattr(worker, "_COMMAND", ("-c", one_batch_then_exit))
    items = read(write(tmp_path, "invoices_a.csv", csv_text(mixed_rows(1200))))
    got = []
    with pytest.raises(RuntimeError, match="exit code 3.*boom from worker 0") as raised:
        for item in items:
            got.append(item)
    assert "worker 1" not in str(raised.value)
    assert len(got) == worker._BATCH * 2       # each of the 2 workers sent one batch


def test_one_worker_of_two_dying_later_is_an_error_after_the_batches_before_it(
        tmp_path, monkeypatch, in_worker):
    """The second worker sends its first batch (the file's second), then stops: the first
    three batches arrive in the file's order, then the error, naming what it said."""
    second_dies_after_one_batch = KNOWING_ITS_JOB + (
        "def send_once(out, frame):\n"
        "    send(out, frame)\n"
        "    if job['share'][0] == 1:\n"
        "        out.flush(); print('second worker fell over', file=sys.stderr); sys.exit(4)\n"
        "w._receive, w._send = spy, send_once\n"
        "w.main()\n")
    path = write(tmp_path, "invoices_a.csv", csv_text(mixed_rows(1200)))
    with monkeypatch.context() as m:
        m.setattr(worker, "PARALLEL_ROWS", 10**9)
        expected = list(read(path))
    monkeypatch.setattr(worker, "_COMMAND", ("-c", second_dies_after_one_batch))
    got = []
    with pytest.raises(RuntimeError, match="exit code 4.*second worker fell over"):
        for item in read(path):
            got.append(item)
    assert got == expected[:3 * worker._BATCH]


def test_no_interpreter_to_start_means_pass_2_here(tmp_path, monkeypatch, in_worker):
    path = write(tmp_path, "invoices_a.csv", csv_text(mixed_rows(50)))
    monkeypatch.setattr(worker, "PARALLEL_ROWS", 10**9)
    here = list(read(path))
    monkeypatch.setattr(worker, "PARALLEL_ROWS", 0)
    monkeypatch.setattr(worker.sys, "executable", str(tmp_path / "no-python"))
    assert list(read(path)) == here
