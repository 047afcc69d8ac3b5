"""`ml-connector ingest FILE...`: a local export is recorded exactly as if it had come from the
SFTP folder: same identity (so the same file arriving later over SFTP is a duplicate), a kept
content-addressed copy, its sha256 on record."""
from __future__ import annotations

import hashlib
import json
import shutil

from tests.e2e.conftest import SAMPLES
from tests.e2e.test_sync_e2e import assert_each_posted_once


def test_ingested_files_are_recorded_as_if_polled_and_dedupe_with_sftp(world, tmp_path):
    mail = tmp_path / "mail"
    mail.mkdir()
    for sample in SAMPLES.glob("*"):
        shutil.copy(sample, mail)
    csv = mail / "invoices_C1042_20261106152500.csv"
    sha = hashlib.sha256(csv.read_bytes()).hexdigest()

    result = world.cli("ingest", *map(str, sorted(mail.iterdir())), "--json")
    report = json.loads(result.stdout)
    assert report["errors"] == [] and len(report["taken"]) == 4
    assert sorted(p.name for p in mail.iterdir()) == sorted(p.name for p in SAMPLES.glob("*"))
    kept = world.dir / "data" / "files" / sha[:2] / sha
    assert kept.read_bytes() == csv.read_bytes()
    status = world.status()
    assert status[("V00231", "INV-2026-0117")]["state"] == "parsed"
    assert status[("V00231", "7781")]["state"] == "awaiting_approval"
    history = json.loads(world.cli("history", "V00231/INV-2026-0117", "--json").stdout)
    assert history[0]["data"]["file_sha256"] == sha

    # the same content again, by hand or over SFTP, is the same export: nothing new
    again = world.cli("ingest", str(csv)).stdout
    assert "already taken" in again and "recorded" not in again
    world.drop(*SAMPLES.glob("*"))
    sync = json.loads(world.cli("sync", "--json").stdout)
    assert sync["poll"]["taken"] == []
    assert {s["reason"] for s in sync["poll"]["skipped"]} == {"same content already taken"}
    assert sync["moved"]["posted"] == 4
    assert_each_posted_once(world)


def test_a_file_the_config_does_not_read_is_refused_naming_the_patterns(world, tmp_path):
    stray = tmp_path / "scan.pdf"
    stray.write_bytes(b"%PDF")
    result = world.cli("ingest", str(stray), check=False)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "scan.pdf: not a Stampli export name this config reads" in result.stderr
    missing = world.cli("ingest", str(tmp_path / "invoices_C1042_1.csv"), check=False)
    assert missing.returncode == 1 and "no such file" in missing.stderr
