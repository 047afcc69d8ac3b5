"""An initialised install driven through the real CLI, and what an attacker with database
access does to it (shared by the CLI tests of tests/audit)."""
from __future__ import annotations

import json
import uuid

from click.testing import CliRunner

from adapters.settings import ledger_url, load_settings
from cli import main
from ledger.intake import record_invoice_file
from runtime import Runtime
from tests.audit.tamper import Tamper
from tests.builders import export_file, invoice, parsed


def run(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def write_invoices(config, approved: str = "P-1", pending: str = "P-2") -> None:
    """As the connector records them (through the runtime, so with its audit key)."""
    rt = Runtime(load_settings(config))
    try:
        ledger = rt.ledger
        record_invoice_file(ledger, export_file(f"invoices_C1042_{approved}.csv",
                                                content=approved),
                            [parsed(invoice(approved)), parsed(invoice(pending,
                                                                       approval="Pending"))],
                            ["Approved"])
        agg = ledger.invoice(invoice(approved).id)
        agg.validate(["accounts"], "ref-1")
        agg.resolve_vendor("S-100", "by id")
        agg.intend_posting("worker-1", approved_statuses=["Approved"])
        agg.post("IFS-77", {"voucher_no": "V-1"}, {}, [])
        ledger.record(agg)
    finally:
        rt.close()


def url_of(config) -> str:
    return ledger_url(load_settings(config))


def states() -> dict[str, str]:
    result = run("status", "--json")
    assert result.exit_code == 0, result.output
    return {r["invoice_number"]: r["state"] for r in json.loads(result.stdout)}


def forge_posted(config) -> tuple[int, str]:
    """P-1's Posted event, copied byte for byte to the next version of P-2's stream."""
    tamper = Tamper(url_of(config))
    try:
        posted = tamper.find(".Posted")[0]
        awaiting = tamper.find(".AwaitingApproval")[0]           # P-2, version 3
        position = tamper.append(awaiting[0], 4, posted[3], posted[4])
        return position, str(uuid.UUID(str(awaiting[1])))
    finally:
        tamper.close()
