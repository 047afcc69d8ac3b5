"""Shared builders for the IFS adapter tests: invoices, settings, and an emulator + IfsErp pair
run inside one `asyncio.run` (pytest-asyncio is not used)."""
from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

from adapters.ifs import IfsErp
from adapters.ifs.limiter import no_wait_backoff
from adapters.settings import IfsSettings, PostingSettings
from ledger.model import CanonicalInvoice, InvoiceLine
from ledger.ports import PostingRequest
from sandbox.ifs.app import IfsEmulator

D = Decimal
SECRET = "sandbox-secret"
TAX = {"TX8": "2640", "VAT19": "2641"}


def make_invoice(lines, *, currency="USD", doc_type="Invoice", number="INV-0117",
                 vendor="V00231", po="", date="2026-11-04", company="10") -> CanonicalInvoice:
    """lines: (account, cost center, net, tax code, tax)."""
    net = sum((D(str(ln[2])) for ln in lines), D(0))
    tax = sum((D(str(ln[4])) for ln in lines), D(0))
    return CanonicalInvoice(
        company=company, document_type=doc_type, invoice_number=number, vendor_id=vendor,
        vendor_name="Acme Industrial Supply", invoice_date=date, due_date="",
        currency=currency, net=net, tax=tax, total=net + tax, approval_status="Approved",
        po_number=po,
        lines=tuple(InvoiceLine(line_number=i + 1, description=f"item {i + 1}", gl_account=a,
                                cost_center=cc, net=D(str(n)), tax_code=tc, tax=D(str(t)))
                    for i, (a, cc, n, tc, t) in enumerate(lines)))


def simple(number="INV-0117", *, account="6100", currency="USD", amount="750.00",
           tax="60.00", **kw) -> CanonicalInvoice:
    return make_invoice([(account, "CC210", amount, "TX8", tax)], number=number,
                        currency=currency, **kw)


def request(invoice: CanonicalInvoice, ledger_id: str | None = None) -> PostingRequest:
    return PostingRequest(ledger_id=ledger_id or f"led-{invoice.invoice_number}",
                          invoice=invoice, supplier_id=invoice.vendor_id)


def settings_for(base_url: str, posting: dict[str, Any] | None = None,
                 **overrides: Any) -> IfsSettings:
    return IfsSettings(**{"base_url": base_url, "realm": "acme1", **overrides},
                       posting=PostingSettings(**{"tax_accounts": TAX, **(posting or {})}))


def erp_for(emu: IfsEmulator, *, secret: str = SECRET, posting: dict[str, Any] | None = None,
            erp_options: dict[str, Any] | None = None, **overrides: Any) -> IfsErp:
    options = {"backoff": no_wait_backoff(), "default_company": "10", **(erp_options or {})}
    base_url = overrides.pop("base_url", emu.base_url)
    return IfsErp(settings_for(base_url, posting, **overrides), secret, **options)


def run(test: Callable[[IfsEmulator, IfsErp], Awaitable[Any]], *,
        emulator: dict[str, Any] | None = None, **erp_kwargs: Any) -> Any:
    """Start an emulator on a free loopback port, build an IfsErp for it, run the test."""
    async def main() -> Any:
        async with IfsEmulator(**(emulator or {})) as emu:
            erp = erp_for(emu, **erp_kwargs)
            try:
                return await test(emu, erp)
            finally:
                await erp.close()
    return asyncio.run(main())


def odata_log(emu: IfsEmulator, since: int = 0) -> list[dict[str, Any]]:
    """Requests that reached the OData endpoint (not the token endpoint, not $batch parts)."""
    return [e for e in emu.requests(since) if e.get("kind") == "odata"]


def state_invoices(emu: IfsEmulator) -> list[dict[str, Any]]:
    return emu.state()["invoices"]


def state_vouchers(emu: IfsEmulator) -> list[dict[str, Any]]:
    return emu.state()["vouchers"]


def accounts_seed(n: int, company: str = "10") -> dict[str, Any]:
    return {"accounts": [{"Company": company, "Account": f"9{i:05d}", "Description": "bulk",
                          "ValidFrom": "2000-01-01"} for i in range(n)]}


def vendor_record(vendor_id: str = "V00231"):
    from ledger.model import VendorRecord
    return VendorRecord(vendor_id=vendor_id, name="Acme Industrial Supply")
