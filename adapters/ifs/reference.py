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
        data = await self.company(company)
        if account not in data.accounts:
            row = await self._by_key("account", {"Company": company, "Account": account})
            if row is None:
                return None
            data.accounts[account] = row
        return data.accounts[account]

    async def cost_center(self, company: str, value: str) -> dict[str, Any] | None:
        data = await self.company(company)
        if value not in data.cost_centers:
            code = self._ep["cost_center"].keys[-1]
            row = await self._by_key("cost_center", {"Company": company, code: value})
            if row is None:
                return None
            data.cost_centers[value] = row
        return data.cost_centers[value]

    async def purchase_order(self, company: str, order_no: str) -> dict[str, Any] | None:
        data = await self.company(company)
        if order_no not in data.orders:
            # POs of another company are not in this company's page: re-check by key.
            row = await self._by_key("purchase_order", {"OrderNo": order_no})
            if row is None:
                return None
            data.orders[order_no] = row
        return data.orders[order_no]

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
        company, day, letter = invoice.company, invoice.invoice_date, \
            self._posting.cost_center_code_part.upper()
        checks: list[str] = []
        problems: dict[str, list[int]] = {}        # problem text -> lines
        fixes: dict[str, None] = {}

        def problem(text: str, fix: str, line: int = 0) -> None:
            problems.setdefault(text, [])
            if line:
                problems[text].append(line)
            fixes[fix] = None

        accounts: dict[str, list[int]] = {}
        centers: dict[str, list[int]] = {}
        for ln in invoice.lines:
            accounts.setdefault(ln.gl_account, []).append(ln.line_number)
            centers.setdefault(ln.cost_center, []).append(ln.line_number)
        coding = "create it in IFS or correct the coding in Stampli"
        for account, lines in accounts.items():
            row = await self.account(company, account)
            if row is None:
                for n in lines:
                    problem(f"GL account {account} does not exist in IFS company {company}",
                            coding, n)
            elif not _valid_on(row, day):
                for n in lines:
                    problem(f"GL account {account} in IFS company {company} is valid "
                            f"{_range(row)}, not on the invoice date {day}",
                            "extend its validity in IFS or correct the coding in Stampli", n)
            else:
                checks.append(f"account {account} in company {company} valid on {day}")
        for value, lines in centers.items():
            row = await self.cost_center(company, value)
            if row is None:
                for n in lines:
                    problem(f"cost center {value} (code part {letter}) does not exist in IFS "
                            f"company {company}", coding, n)
            elif not _valid_on(row, day):
                for n in lines:
                    problem(f"cost center {value} (code part {letter}) in IFS company {company}"
                            f" is valid {_range(row)}, not on the invoice date {day}",
                            "extend its validity in IFS or correct the coding in Stampli", n)
            else:
                checks.append(f"cost center {value} (code part {letter}) in company {company} "
                              f"valid on {day}")
        if self._posting.post_voucher:
            config = {self._posting.ap_liability_account: "ifs.posting.ap_liability_account"}
            for ln in invoice.lines:
                if ln.tax_code and ln.tax_code in self._posting.tax_accounts:
                    config[self._posting.tax_accounts[ln.tax_code]] = \
                        f"ifs.posting.tax_accounts.{ln.tax_code}"
            for account, key in config.items():
                row = await self.account(company, account)
                if row is None or not _valid_on(row, day):
                    state = "does not exist" if row is None else f"is valid {_range(row)}"
                    problem(f"GL account {account} (`{key}`) {state} in IFS company {company}"
                            + ("" if row is None else f", not on {day}"),
                            f"create it in IFS or correct `{key}` in the configuration")
                else:
                    checks.append(f"account {account} ({key}) in company {company} "
                                  f"valid on {day}")
        if invoice.po_number:
            po = await self.purchase_order(company, invoice.po_number)
            if po is None:
                problem(f"purchase order {invoice.po_number} does not exist in IFS",
                        "correct the PO number in Stampli or create the order in IFS")
            elif po.get("Company") != company or po.get("VendorNo") != invoice.vendor_id:
                problem(f"purchase order {invoice.po_number} belongs to supplier "
                        f"{po.get('VendorNo')} in company {po.get('Company')}, not to "
                        f"{invoice.vendor_id} in company {company}",
                        "correct the PO number or the vendor in Stampli")
            else:
                checks.append(f"purchase order {invoice.po_number} of supplier "
                              f"{invoice.vendor_id} in company {company}")
        if problems:
            parts = []
            for text, lines in problems.items():
                where = f"invoice {invoice.ref}"
                if lines:
                    where += f", line{'s' if len(lines) > 1 else ''} " \
                             f"{', '.join(map(str, sorted(set(lines))))}"
                parts.append(f"{text} ({where})")
            message = "; ".join(parts) + "; " + " / ".join(fixes) + ", then " + \
                replay_hint(invoice, default_company)
            raise ErpFailure("reference", message, code="REFERENCE")
        return checks, self.snapshot(company)


def _valid_on(row: dict[str, Any], day: str) -> bool:
    # [:10]: some tenants send timestamps ("2026-01-01T00:00:00Z") for Edm.Date-like fields
    start = (row.get("ValidFrom") or "0000-01-01")[:10]
    end = (row.get("ValidUntil") or "9999-12-31")[:10]
    return start <= day <= end


def _range(row: dict[str, Any]) -> str:
    return f"from {row.get('ValidFrom') or 'the start'} until {row.get('ValidUntil') or 'open end'}"
