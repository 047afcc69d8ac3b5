"""Pass 2 starting while pass 1 still writes the spill (worker.Pass2): the same items as in
this process; a file whose invoices' rows are far apart, or that turns out unreadable at its
end, stops the early worker and loses nothing."""
from __future__ import annotations

import os
import subprocess
import tempfile

import pytest

import adapters.stampli.spill as spill
import adapters.stampli.worker as worker
from adapters.stampli.errors import ExportFileError
from tests.stampli.exports import csv_text, row, write
from tests.stampli.test_worker import mixed_rows, read


@pytest.fixture
def workers(monkeypatch, tmp_path):
    """Every file is large, the spill writes a batch every few rows (so pass 1 flushes while
    it runs); returns the jobs of the workers started, and the processes."""
    monkeypatch.setattr(worker, "PARALLEL_ROWS", 0)
    monkeypatch.setattr(worker, "_cores", lambda: 2)
    monkeypatch.setattr(spill, "_BATCH", 7)
    monkeypatch.setattr(worker, "_BATCH", 37)  # the two workers take turns, many times
    folder = tmp_path / "scratch"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    started: list[tuple[dict, object]] = []
    real = worker._Worker.__init__

    def spy(self, job):
        real(self, job)
        started.append((job, self.process))
    monkeypatch.setattr(worker._Worker, "__init__", spy)
    return started


def in_order_rows(invoices: int = 400):
    """Each invoice's two lines adjacent, a rule broken and an unattributable row here and
    there: the spill stays in group order."""
    rows = []
    for i in range(invoices):
        for line in (1, 2):
            net = "51.00" if i % 97 == 0 and line == 2 else "50.00"
            rows.append(row(InvoiceNumber=f"N{i}", LineNumber=str(line), LineNet=net,
                            LineTax="4.00", CompanyID="C2000" if i % 5 == 0 else "C1042"))
        if i % 101 == 0:
            rows.append(row(InvoiceNumber="", VendorID=f"V{i}"))
    return rows


def here(monkeypatch, path):
    with monkeypatch.context() as m:
        m.setattr(worker, "PARALLEL_ROWS", 10**9)
        return list(read(path))


def test_the_early_worker_yields_what_this_process_yields(tmp_path, monkeypatch, workers):
    path = write(tmp_path, "invoices_a.csv", csv_text(in_order_rows()))
    expected = here(monkeypatch, path)
    got = list(read(path))
    # Started during pass 1, once: two workers, each with every other batch.
    assert [(job["tail"], job["share"]) for job, _ in workers] == [(True, [0, 2]),
                                                                    (True, [1, 2])]
    assert got == expected and repr(got) == repr(expected)
    assert {type(i).__name__ for i in got} == {"ParsedInvoice", "RejectedRow"}


def test_the_workers_yield_the_cores_to_the_recording_process(tmp_path, workers):
    """The recording process is the serial part of an ingest: the workers run at a lower
    priority (worker.WORKER_NICENESS), so that it never waits for a core."""
    path = write(tmp_path, "invoices_a.csv", csv_text(in_order_rows()))
    items = read(path)
    first_two_batches = [next(items) for _ in range(2 * 37 + 1)]  # one from each worker
    ours = os.getpriority(os.PRIO_PROCESS, 0)
    try:
        assert [os.getpriority(os.PRIO_PROCESS, process.pid) for _, process in workers] == [
            min(19, ours + worker.WORKER_NICENESS)] * 2
    finally:
        items.close()
    assert len(first_two_batches) == 75 and os.getpriority(os.PRIO_PROCESS, 0) == ours


def test_the_workers_keep_their_heap_unless_told_otherwise(tmp_path, monkeypatch, workers):
    """glibc's MALLOC_TOP_PAD_ is set in each worker's environment (worker.WORKER_MALLOC), so
    its heap is not handed back and faulted in again between batches; a value the caller's
    environment already holds is kept."""
    path = write(tmp_path, "invoices_a.csv", csv_text(in_order_rows()))
    envs: list[dict] = []
    real = subprocess.Popen

    def popen(*args, **kwargs):
        envs.append(kwargs["env"])
        return real(*args, **kwargs)
    monkeypatch.setattr(subprocess, "Popen", popen)
    expected = list(read(path))
    assert [env["MALLOC_TOP_PAD_"] for env in envs] == ["16777216"] * 2
    monkeypatch.setenv("MALLOC_TOP_PAD_", "0")
    envs.clear()
    assert list(read(path)) == expected
    assert [env["MALLOC_TOP_PAD_"] for env in envs] == ["0"] * 2


def test_rows_far_apart_stop_the_early_worker_and_pass_2_starts_over(tmp_path, monkeypatch,
                                                                      workers):
    path = write(tmp_path, "invoices_a.csv", csv_text(mixed_rows(400)))
    expected = here(monkeypatch, path)
    got = list(read(path))
    assert [job["tail"] for job, _ in workers] == [True, True, False, False]
    assert workers[0][1].poll() is not None and workers[1][1].poll() is not None  # stopped
    assert got == expected and repr(got) == repr(expected)


def test_a_file_unreadable_at_its_end_stops_the_early_worker(tmp_path, workers):
    lines = csv_text(in_order_rows()).split("\r\n")
    lines[-2] = lines[-2].rsplit(",", 1)[0] + ',"2026-11-06T15:25:00Z'   # never closed
    path = write(tmp_path, "invoices_q.csv", "\r\n".join(lines))
    with pytest.raises(ExportFileError, match="never closed"):
        list(read(path))
    assert workers and all(process.poll() is not None for _, process in workers)
    assert list((tmp_path / "scratch").iterdir()) == []


def test_closing_the_reader_early_stops_the_early_worker(tmp_path, workers):
    items = read(write(tmp_path, "invoices_a.csv", csv_text(in_order_rows())))
    next(items)
    items.close()
    assert workers and all(process.poll() is not None for _, process in workers)
    assert list((tmp_path / "scratch").iterdir()) == []


def test_an_early_worker_that_dies_at_once_means_pass_2_here(tmp_path, monkeypatch, workers):
    path = write(tmp_path, "invoices_a.csv", csv_text(in_order_rows(100)))
    expected = here(monkeypatch, path)
    monkeypatch.setattr(worker, "_COMMAND", ("-c", "import sys; sys.exit(3)"))
    assert list(read(path)) == expected
    assert [job["tail"] for job, _ in workers] == [True, True]


def test_a_large_file_starts_its_workers_before_the_first_row_is_spilled(tmp_path, monkeypatch,
                                                                         workers):
    """Its size says it has many rows: the workers need not wait for PARALLEL_ROWS of them,
    nor for the first rows (their start then overlaps pass 1 on the idle core)."""
    path = write(tmp_path, "invoices_a.csv", csv_text(in_order_rows(50)))
    expected = here(monkeypatch, path)
    monkeypatch.setattr(worker, "PARALLEL_ROWS", 10**9)
    assert list(read(path)) == expected and workers == []           # small: here
    spilled_at_start = []
    real = worker._Team.__init__

    def team(self, job):
        spilled_at_start.append(spill.items_path(job["spill"]).stat().st_size)
        real(self, job)
    monkeypatch.setattr(worker._Team, "__init__", team)
    monkeypatch.setattr(worker, "PARALLEL_BYTES", path.stat().st_size)
    assert list(read(path)) == expected
    assert [job["tail"] for job, _ in workers] == [True, True]
    assert spilled_at_start == [0]
