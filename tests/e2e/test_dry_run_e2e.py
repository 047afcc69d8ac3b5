"""`sync --dry-run` through the CLI, the real sshd and the IFS emulator: it prints what a
sync would post and create, IFS receives reads only, and the real ledger, the kept copies and
the SFTP folder are as they were."""
from __future__ import annotations

import json
import sqlite3

from tests.e2e.conftest import SAMPLES
from tests.e2e.test_sync_e2e import EXPECTED


def _events(world) -> int:
    path = world.dir / "data" / "ledger.db"
    if not path.exists():
        return 0
    with sqlite3.connect(path) as db:
        tables = [n for (n,) in db.execute("SELECT name FROM sqlite_master WHERE type='table'"
                                           " AND name LIKE '%events'")]
        return sum(db.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in tables)


def _writes(requests: list[dict]) -> list[str]:
    return [f"{r['method']} {r['path']}" for r in requests
            if r["method"] != "GET" and "token" not in r["path"]]


def test_dry_run_plans_the_sync_and_writes_nothing(world):
    # A ledger with history: one file already synced for real.
    world.drop(SAMPLES / "vendors_C1042_20261106152500.csv")
    world.cli("sync")
    before_events = _events(world)
    assert before_events > 0
    kept = sorted(p.name for p in (world.dir / "data" / "files").rglob("*"))
    world.drop(*SAMPLES.glob("invoices_*"))
    outbound = sorted(p.name for p in world.outbound.iterdir())
    seen = max((r["seq"] for r in world.ifs.requests()), default=0)

    result = world.cli("sync", "--dry-run", "--json")
    plan = json.loads(result.stdout)

    assert plan["dry_run"] is True and plan["errors"] == []
    posted = {tuple(i["ref"].split("/")[-2:]) for i in plan["would_post"]}
    assert posted == {(v, n) for v, n in EXPECTED}
    created = plan["would_create"]
    assert [s["supplier_id"] for s in created["suppliers_created"]] == ["V00877"]
    assert created["suppliers_created"][0]["fields"]["Name"] == "Nordlicht GmbH"
    two_lines = next(i for i in plan["would_post"] if i["ref"].endswith("V00231/INV-2026-0117"))
    assert [(l["Account"], l["CurrAmount"]) for l in two_lines["lines"]] == \
        [("6100", "750.00"), ("6100", "500.00")]
    assert two_lines["voucher_rows"] and two_lines["header"]["InvoiceNo"] == "INV-2026-0117"
    # IFS was read (reference data, suppliers) and never written.
    dry = world.ifs.requests(seen)
    assert any(r["method"] == "GET" for r in dry)
    assert _writes(dry) == []
    assert world.ifs.state()["invoices"] == []
    # The real ledger, the kept copies and the SFTP folder are untouched.
    assert _events(world) == before_events
    assert sorted(p.name for p in (world.dir / "data" / "files").rglob("*")) == kept
    assert sorted(p.name for p in world.outbound.iterdir()) == outbound
    assert world.status().get(("V00231", "INV-2026-0117")) is None

    # The text form says the same, and a real sync then does what the plan said.
    text = world.cli("sync", "--dry-run").stdout
    assert "DRY RUN" in text and "would create supplier V00877" in text
    assert "would post 4 invoice(s)" in text and "voucher row:" in text
    report = json.loads(world.cli("sync", "--json").stdout)
    assert report["moved"]["posted"] == 4

