"""Hostile exports through the real CLI, the real sshd and the IFS emulator (issue 17): what
`sync` printed, what IFS received and what the ledger holds."""
from __future__ import annotations

import json
import os

from tests.stampli.exports import csv_text, row

GOOD = {"CompanyID": "C1042", "VendorID": "V00231", "VendorName": "Acme Industrial Supply",
        "CostCenter": "CC210"}


def _export(world, name: str, text: str) -> None:
    path = world.dir / name
    path.write_text(text)
    world.drop(path)


def test_an_unclosed_quote_rejects_the_file_and_nothing_from_it_is_posted(world):
    rows = [row(**GOOD, InvoiceNumber=f"Q-{i}") for i in range(1, 4)]
    lines = csv_text(rows).split("\r\n")
    lines[1] = lines[1].rsplit(",", 1)[0] + ',"2026-11-06T15:25:00Z'   # opened, never closed
    _export(world, "invoices_C1042_20261107000000.csv", "\r\n".join(lines))
    result = world.cli("sync")
    assert "rejected invoices_C1042_20261107000000.csv" in result.stdout
    assert "line 2, column ExportedAt" in result.stdout and "never closed" in result.stdout
    assert "problems: 1" in result.stdout
    assert world.ifs_invoices() == []
    assert not any(key[1].startswith("Q-") for key in world.status())


def test_rows_that_cannot_be_attributed_are_named_in_plain_sync_output(world):
    rows = [row(**GOOD, InvoiceNumber="OK-1"), row(**{**GOOD, "VendorID": ""}, InvoiceNumber="X"),
            row(**GOOD, InvoiceNumber="")]
    _export(world, "invoices_C1042_20261107000100.csv", csv_text(rows))
    result = world.cli("sync")
    out = result.stdout
    assert "invoices_C1042_20261107000100.csv: 2 row(s) not recorded" in out
    assert "invoices_C1042_20261107000100.csv line 3: VendorID is empty" in out
    assert "invoices_C1042_20261107000100.csv line 4: InvoiceNumber is empty" in out
    assert "problems: 2" in out
    assert [i["InvoiceNo"] for i in world.ifs_invoices()] == ["OK-1"]


def test_a_file_name_that_is_not_utf8_is_skipped_with_a_reason_and_the_rest_goes_on(world):
    bad = os.fsencode(world.outbound) + b"/invoices_caf\xe9.csv"
    with open(bad, "wb") as out:
        out.write(csv_text([row(**GOOD, InvoiceNumber="HIDDEN")]).encode())
    os.utime(bad, (0, 0))
    _export(world, "invoices_C1042_20261107000200.csv",
            csv_text([row(**GOOD, InvoiceNumber="VISIBLE")]))
    result = world.cli("sync")
    assert "skipped invoices_caf\\xe9.csv: the file name is not UTF-8" in result.stdout
    assert "problems: 1" in result.stdout and result.returncode == 0
    assert [i["InvoiceNo"] for i in world.ifs_invoices()] == ["VISIBLE"]
    data = json.loads(world.cli("sync", "--json").stdout)
    assert {"name": "invoices_caf\\xe9.csv", "problem": True} .items() <= \
        next(s for s in data["poll"]["skipped"] if s.get("problem")).items()


def test_control_characters_are_not_posted_nor_printed_raw(world):
    rows = [row(**GOOD, InvoiceNumber="ESC\x1b[2J"),
            row(**{**GOOD, "VendorName": "Acme\x07\x00"}, InvoiceNumber="BEL")]
    _export(world, "invoices_C1042_20261107000300.csv", csv_text(rows))
    result = world.cli("sync")
    assert "\x1b" not in result.stdout and "\x07" not in result.stdout
    assert world.ifs_invoices() == []
    status = world.cli("status").stdout
    assert "\x1b" not in status and "ESC\\x1b[2J" in status
    rows = world.status()
    assert {rows[("V00231", n)]["state"] for n in ("ESC\x1b[2J", "BEL")} == {"failed"}
