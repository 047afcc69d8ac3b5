"""Reference data (accounts, cost centers, suppliers, purchase orders) and invoice validation.

Loaded per company with paging and kept for `ifs.reference_refresh`; a few requests every
refresh instead of one per invoice line. A cache miss is re-checked with one GET by key before
anything fails, so an account created in IFS a minute ago passes without waiting for the next
refresh, and a parked "reference" failure clears as soon as the data exists.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from adapters.ifs.endpoints import Endpoint, key_predicate, literal
from adapters.ifs.odata import ODataClient
from adapters.settings import PostingSettings
from ledger.model import CanonicalInvoice
from ledger.replay import replay_command
from ledger.ports import ErpFailure

# Only what validation needs: smaller pages, faster loads.
_RANGE_FIELDS = ("Description", "ValidFrom", "ValidUntil")


def replay_hint(invoice: CanonicalInvoice, default_company: str | None) -> str:
    """The REF a person types (operations.md §3): short form for the default company's
    invoices, the full COMPANY/VENDOR/TYPE/NUMBER form otherwise."""
    if invoice.document_type == "Invoice" and default_company in (None, invoice.company):
        ref = invoice.ref
    else:
        ref = f"{invoice.company}/{invoice.vendor_id}/{invoice.document_type}/" \
              f"{invoice.invoice_number}"
    return replay_command(ref)


def _now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class _CompanyData:
    def __init__(self, loaded_at: float) -> None:
        self.loaded_at = loaded_at
        self.loaded_iso = _now_iso()
        self.accounts: dict[str, dict[str, Any]] = {}
        self.cost_centers: dict[str, dict[str, Any]] = {}
        self.orders: dict[str, dict[str, Any]] = {}


class ReferenceCache:
    def __init__(self, odata: ODataClient, endpoints: dict[str, Endpoint],
                 posting: PostingSettings, refresh_seconds: float, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._odata = odata
        self._ep = endpoints
        self._posting = posting
        self.refresh_seconds = refresh_seconds
        self._clock = clock
        self._companies: dict[str, _CompanyData] = {}
        self.suppliers: dict[str, dict[str, Any]] = {}
        self.links: dict[str, set[str]] = {}          # supplier id -> linked companies
        self._suppliers_loaded_at: float | None = None
        self.rechecks = 0                              # GETs by key after a miss

    # ------------------------------------------------------------------ loading

    def _stale(self, loaded_at: float | None) -> bool:
        return loaded_at is None or self._clock() - loaded_at >= self.refresh_seconds

    def invalidate(self) -> None:
        """Forget everything: the next use reloads (a `refresh` command, tests)."""
        self._companies.clear()
        self._suppliers_loaded_at = None

    async def _load(self, role: str, company: str | None, extra: tuple[str, ...]
                    ) -> list[dict[str, Any]]:
        ep = self._ep[role]
        return await self._odata.read_all(
            ep.projection, ep.entity_set, keys=ep.keys,
            filter=f"Company eq {literal(company)}" if company is not None else "",
            select=",".join(dict.fromkeys((*ep.keys, *extra))),
            what=f"loading {role.replace('_', ' ')}s" + (f" of company {company}" if company else ""))

    async def company(self, company: str) -> _CompanyData:
        data = self._companies.get(company)
        if data is not None and not self._stale(data.loaded_at):
            return data
        data = _CompanyData(self._clock())
        code = self._ep["cost_center"].keys[-1]
        for row in await self._load("account", company, _RANGE_FIELDS):
            data.accounts[row["Account"]] = row
        for row in await self._load("cost_center", company, _RANGE_FIELDS):
            data.cost_centers[row[code]] = row
        for row in await self._load("purchase_order", company,
                                    ("Company", "VendorNo", "CurrencyCode", "Objstate")):
            data.orders[row["OrderNo"]] = row
        self._companies[company] = data
        return data

    async def load_suppliers(self) -> None:
        if not self._stale(self._suppliers_loaded_at):
            return
        rows = await self._load("supplier", None, ("Name", "Country", "AssociationNo"))
        self.suppliers = {row["SupplierId"]: row for row in rows}
        self.links = {}                                # re-read lazily, one GET per supplier
        self._suppliers_loaded_at = self._clock()

    async def _by_key(self, role: str, keys: dict[str, object]) -> dict[str, Any] | None:
        ep = self._ep[role]
        self.rechecks += 1
        entity, _ = await self._odata.get_entity(
            ep.projection, ep.entity_set + key_predicate(keys),
            what=f"re-checking {role.replace('_', ' ')} {'/'.join(map(str, keys.values()))}")
        return entity

    # ------------------------------------------------------------------ lookups

    async def account(self, company: str, account: str) -> dict[str, Any] | None:
        return await self._cached(company, "accounts", account, "account",
                                  {"Company": company, "Account": account})

    async def cost_center(self, company: str, value: str) -> dict[str, Any] | None:
        code = self._ep["cost_center"].keys[-1]
        return await self._cached(company, "cost_centers", value, "cost_center",
                                  {"Company": company, code: value})

    async def purchase_order(self, company: str, order_no: str) -> dict[str, Any] | None:
        # POs of another company are not in this company's page: re-check by key.
        return await self._cached(company, "orders", order_no, "purchase_order",
                                  {"OrderNo": order_no})

    async def _cached(self, company: str, table: str, value: str, role: str,
                      keys: dict[str, object]) -> dict[str, Any] | None:
        """The row from the company's loaded data, else re-checked by key (and kept)."""
        rows: dict[str, dict[str, Any]] = getattr(await self.company(company), table)
        if value not in rows:
            row = await self._by_key(role, keys)
            if row is None:
                return None
            rows[value] = row
        return rows[value]

    async def supplier(self, supplier_id: str, *, fresh: bool = False) -> dict[str, Any] | None:
        await self.load_suppliers()
        if fresh or supplier_id not in self.suppliers:
            row = await self._by_key("supplier", {"SupplierId": supplier_id})
            if row is None:
                self.suppliers.pop(supplier_id, None)
                return None
            self.suppliers[supplier_id] = row
        return self.suppliers[supplier_id]

    async def supplier_companies(self, supplier_id: str, *, fresh: bool = False) -> set[str]:
        if fresh or supplier_id not in self.links:
            sup, link = self._ep["supplier"], self._ep["supplier_company"]
            rows = await self._odata.read_all(
                link.projection,
                f"{sup.entity_set}{key_predicate({'SupplierId': supplier_id})}/{link.entity_set}",
                keys=link.keys, what=f"reading the company links of supplier {supplier_id}")
            self.links[supplier_id] = {row["Company"] for row in rows}
        return self.links[supplier_id]

    # ------------------------------------------------------------------ validation

    def snapshot(self, company: str) -> str:
        data = self._companies.get(company)
        if data is None:
            return "none"
        return (f"company {company} reference data loaded {data.loaded_iso} "
                f"({len(data.accounts)} accounts, {len(data.cost_centers)} cost centers, "
                f"{len(data.orders)} purchase orders)")

    async def check(self, invoice: CanonicalInvoice, default_company: str | None
                    ) -> tuple[list[str], str]:
        """(checks that passed, snapshot), or ErpFailure(kind="reference") naming each
        problem, the invoice and its lines, and what to do."""
        found = _Findings()
        await self._check_accounts(invoice, found)
        await self._check_cost_centers(invoice, found)
        if self._posting.post_voucher:
            await self._check_configured_accounts(invoice, found)
        if invoice.po_number:
            await self._check_purchase_order(invoice, found)
        if found.problems:
            raise found.failure(invoice, default_company)
        return found.checks, self.snapshot(invoice.company)

    async def _check_accounts(self, invoice: CanonicalInvoice, found: _Findings) -> None:
        by_account: dict[str, list[int]] = {}
        for ln in invoice.lines:
            by_account.setdefault(ln.gl_account, []).append(ln.line_number)
        for account, lines in by_account.items():
            row = await self.account(invoice.company, account)
            found.coding(row, invoice, f"GL account {account}", f"account {account}", lines)

    async def _check_cost_centers(self, invoice: CanonicalInvoice, found: _Findings) -> None:
        letter = self._posting.cost_center_code_part.upper()
        by_value: dict[str, list[int]] = {}
        for ln in invoice.lines:
            by_value.setdefault(ln.cost_center, []).append(ln.line_number)
        for value, lines in by_value.items():
            row = await self.cost_center(invoice.company, value)
            name = f"cost center {value} (code part {letter})"
            found.coding(row, invoice, name, name, lines)

    async def _check_configured_accounts(self, invoice: CanonicalInvoice,
                                         found: _Findings) -> None:
        """The accounts the voucher posts to: from the configuration, not from Stampli."""
        company, day = invoice.company, invoice.invoice_date
        config = {self._posting.ap_liability_account: "ifs.posting.ap_liability_account"}
        for ln in invoice.lines:
            if ln.tax_code and ln.tax_code in self._posting.tax_accounts:
                config[self._posting.tax_accounts[ln.tax_code]] = \
                    f"ifs.posting.tax_accounts.{ln.tax_code}"
        for account, key in config.items():
            row = await self.account(company, account)
            if row is None or not _valid_on(row, day):
                state = "does not exist" if row is None else f"is valid {_range(row)}"
                found.problem(f"GL account {account} (`{key}`) {state} in IFS company {company}"
                              + ("" if row is None else f", not on {day}"),
                              f"create it in IFS or correct `{key}` in the configuration")
            else:
                found.checks.append(f"account {account} ({key}) in company {company} "
                                    f"valid on {day}")

    async def _check_purchase_order(self, invoice: CanonicalInvoice, found: _Findings) -> None:
        company = invoice.company
        po = await self.purchase_order(company, invoice.po_number)
        if po is None:
            found.problem(f"purchase order {invoice.po_number} does not exist in IFS",
                          "correct the PO number in Stampli or create the order in IFS")
        elif po.get("Company") != company or po.get("VendorNo") != invoice.vendor_id:
            found.problem(f"purchase order {invoice.po_number} belongs to supplier "
                          f"{po.get('VendorNo')} in company {po.get('Company')}, not to "
                          f"{invoice.vendor_id} in company {company}",
                          "correct the PO number or the vendor in Stampli")
        else:
            found.checks.append(f"purchase order {invoice.po_number} of supplier "
                                f"{invoice.vendor_id} in company {company}")


class _Findings:
    """What ReferenceCache.check found: the checks that passed, and each problem (in the
    order found) with the invoice lines it concerns and what fixes it."""

    def __init__(self) -> None:
        self.checks: list[str] = []
        self.problems: dict[str, list[int]] = {}   # problem text -> lines
        self.fixes: dict[str, None] = {}

    def problem(self, text: str, fix: str, lines: list[int] | None = None) -> None:
        self.problems.setdefault(text, []).extend(n for n in lines or () if n)
        self.fixes[fix] = None

    def coding(self, row: dict[str, Any] | None, invoice: CanonicalInvoice, name: str,
               checked: str, lines: list[int]) -> None:
        """One coded value of the invoice's lines (an account, a cost center): it must exist
        in the invoice's company and be valid on the invoice date."""
        company, day = invoice.company, invoice.invoice_date
        if row is None:
            self.problem(f"{name} does not exist in IFS company {company}",
                         "create it in IFS or correct the coding in Stampli", lines)
        elif not _valid_on(row, day):
            self.problem(f"{name} in IFS company {company} is valid {_range(row)}, not on the "
                         f"invoice date {day}",
                         "extend its validity in IFS or correct the coding in Stampli", lines)
        else:
            self.checks.append(f"{checked} in company {company} valid on {day}")

    def failure(self, invoice: CanonicalInvoice, default_company: str | None) -> ErpFailure:
        parts = []
        for text, lines in self.problems.items():
            where = f"invoice {invoice.ref}"
            if lines:
                where += f", line{'s' if len(lines) > 1 else ''} " \
                         f"{', '.join(map(str, sorted(set(lines))))}"
            parts.append(f"{text} ({where})")
        message = "; ".join(parts) + "; " + " / ".join(self.fixes) + ", then " + \
            replay_hint(invoice, default_company)
        return ErpFailure("reference", message, code="REFERENCE")


def _valid_on(row: dict[str, Any], day: str) -> bool:
    # [:10]: some tenants send timestamps ("2026-01-01T00:00:00Z") for Edm.Date-like fields
    start = (row.get("ValidFrom") or "0000-01-01")[:10]
    end = (row.get("ValidUntil") or "9999-12-31")[:10]
    return start <= day <= end


def _range(row: dict[str, Any]) -> str:
    return f"from {row.get('ValidFrom') or 'the start'} until {row.get('ValidUntil') or 'open end'}"
