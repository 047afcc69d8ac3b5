"""The poller against the real OpenSSH sshd and the real ledger: stability between two looks,
no partial record when a download breaks, archive only after the invoices are recorded,
every poll attempt on record."""
from __future__ import annotations

import asyncio
import os
import shutil
import time
from datetime import datetime, timezone

import pytest

from adapters.settings import settings_from_dict
from adapters.stampli.configured import ConfiguredReaders
from adapters.stampli.sftp import SftpSource
from ledger.app import Ledger
from ledger.poller import Poller, PollSettings
from ledger.ports import SourceError
from projections.queue import ProjectionQueue
from projections.runner import Projector
from tests.e2e.conftest import SAMPLES

INVOICES = "invoices_C1042_20261106152500.csv"


@pytest.fixture
def parts(sshd, tmp_path):
    settings = settings_from_dict({"connector": {"company": "10"}, "stampli": {
        "host": "127.0.0.1", "port": sshd.port, "username": sshd.login_user,
        "companies": {"C1042": "10"}}})
    source = SftpSource("127.0.0.1", sshd.port, sshd.login_user, known_hosts=sshd.known_hosts,
                        private_key=sshd.client_key, outbound_dir=str(sshd.outbound))
    ledger = Ledger(f"sqlite:///{tmp_path}/ledger.db")
    projector = Projector(ledger)
    readers = ConfiguredReaders(settings.stampli, "10")
    yield sshd, source, ledger, projector, readers, tmp_path
    source.close()
    projector.store.close()
    ledger.close()


def make_poller(parts, sleep=None, archive_dir="", source=None, min_file_age=1.0):
    sshd, default_source, ledger, projector, readers, tmp = parts

    async def no_wait(_seconds):
        return None
    return Poller(ledger, source or default_source, readers, ProjectionQueue(projector),
                  PollSettings(source_name="test", min_file_age=min_file_age, stable_wait=0.0,
                               download_dir=tmp / "files", archive_dir=archive_dir,
                               approved_statuses=["Approved"]), sleep=sleep or no_wait)


def put(sshd, name, age=60.0):
    shutil.copy(SAMPLES / name, sshd.outbound / name)
    then = time.time() - age
    os.utime(sshd.outbound / name, (then, then))


def poll_runs(ledger):
    return [n for n in ledger.recorder.select_notifications(1, 10_000)
            if n.topic == "ml_connector.poll.Finished"]


def test_file_still_being_written_is_not_taken_until_stable(parts):
    sshd = parts[0]
    put(sshd, INVOICES)

    async def writer_appends(_seconds):             # Stampli still writing between two looks
        with open(sshd.outbound / INVOICES, "a") as handle:
            handle.write("C1042,1,Invoice,LATE-1")
        os.utime(sshd.outbound / INVOICES, (time.time() - 60, time.time() - 60))
    first = asyncio.run(make_poller(parts, sleep=writer_appends).poll())
    assert first.taken == []
    assert {"name": INVOICES, "reason": "still changing"} in first.skipped
    put(sshd, INVOICES)                              # finished: same bytes on both looks
    second = asyncio.run(make_poller(parts).poll())
    assert [t["file"] for t in second.taken] == [INVOICES]
    assert second.taken[0]["invoices_new"] == 4
    young = asyncio.run(make_poller(parts).poll())   # and a restart does not take it again
    assert young.taken == [] and young.skipped[0]["reason"] == "already taken"
    assert len(poll_runs(parts[2])) == 3


def test_too_young_file_waits(parts):
    sshd = parts[0]
    put(sshd, INVOICES, age=0)
    result = asyncio.run(make_poller(parts, min_file_age=30.0).poll())
    assert result.taken == [] and result.skipped[0]["reason"] == "younger than min_file_age"


def test_dropped_download_leaves_no_partial_record(parts):
    sshd, source, ledger = parts[0], parts[1], parts[2]
    put(sshd, INVOICES)

    class DroppingSource:
        def __getattr__(self, name):
            return getattr(source, name)

        def download(self, name, dest_dir):
            sshd.kill_sessions()                     # the connection dies mid-transfer
            raise SourceError(f"connection lost while downloading {name}")
    result = asyncio.run(make_poller(parts, source=DroppingSource()).poll())
    assert result.taken == [] and "connection lost" in result.errors[0]
    topics = {n.topic for n in ledger.recorder.select_notifications(1, 1000)}
    assert topics == {"ml_connector.poll.Started", "ml_connector.poll.Finished"}
    retry = asyncio.run(make_poller(parts).poll())   # the next poll takes it whole
    assert retry.taken[0]["invoices_new"] == 4


def test_archive_only_after_the_invoices_are_recorded(parts):
    sshd, ledger = parts[0], parts[2]
    put(sshd, INVOICES)
    archive = sshd.outbound / "archive"
    result = asyncio.run(make_poller(parts, archive_dir=str(archive)).poll())
    assert result.taken[0]["invoices_new"] == 4
    assert not (sshd.outbound / INVOICES).exists() and (archive / INVOICES).exists()
    types = [n.topic.rsplit(".", 1)[-1] for n in ledger.recorder.select_notifications(1, 1000)
             if n.topic.startswith("ml_connector.file.")]
    assert types == ["Downloaded", "Parsed", "Archived"]


def test_a_file_name_that_is_not_utf8_is_skipped_on_record_and_the_others_are_taken(parts):
    sshd, ledger = parts[0], parts[2]
    bad = os.fsencode(sshd.outbound) + b"/invoices_\xff\xfe.csv"
    shutil.copy(SAMPLES / INVOICES, bad)
    os.utime(bad, (0, 0))
    put(sshd, INVOICES)
    result = asyncio.run(make_poller(parts).poll())
    assert [t["file"] for t in result.taken] == [INVOICES] and result.errors == []
    (finished,) = poll_runs(ledger)
    skipped = ledger.mapper.to_domain_event(finished).skipped
    (skip,) = [s for s in skipped if s.get("problem")]
    assert skip["name"] == "invoices_\\xff\\xfe.csv" and "not UTF-8" in skip["reason"]


def test_a_too_young_file_says_when_it_is_old_enough(parts):
    sshd, ledger = parts[0], parts[2]
    put(sshd, INVOICES, age=10)
    mtime = int((sshd.outbound / INVOICES).stat().st_mtime)     # SFTP gives whole seconds
    result = asyncio.run(make_poller(parts, min_file_age=30.0).poll())
    assert result.ready_at == datetime.fromtimestamp(mtime + 30, timezone.utc)
    (finished,) = poll_runs(ledger)                              # and the ledger keeps it
    (skip,) = ledger.mapper.to_domain_event(finished).skipped
    assert datetime.fromisoformat(skip["ready_at"]) == result.ready_at
