"""What IFS holds now, for `reconcile`: the supplier invoices and GL vouchers of a period,
read-only, page by page through the same client (token, limiter, backoff) as posting, so a
reconciliation stays within the request budget. Documents whose date was moved out of the
period in IFS are looked up by ExternalRef, a few dozen per request."""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from adapters.ifs.client import IfsErp
from adapters.ifs.endpoints import literal

INVOICE_FIELDS = ("Company", "InvoiceId", "Identity", "InvoiceNo", "InvoiceType",
                  "InvoiceDate", "Currency", "NetCurrAmount", "VatCurrAmount",
                  "GrossCurrAmount", "ExternalRef", "Objstate")
VOUCHER_FIELDS = ("Company", "AccountingYear", "VoucherType", "VoucherNo", "VoucherDate",
                  "Currency", "ExternalRef", "Objstate")
REFS_PER_REQUEST = 25          # `ExternalRef eq '…' or …`: ~1.6 kB of URL


class IfsPeriodReader:
    def __init__(self, erp: IfsErp) -> None:
        self.erp = erp
        self._inv = erp.endpoints["invoice"]
        self._vou = erp.endpoints["voucher"]

    @property
    def requests(self) -> int:
        return self.erp.requests_sent

    async def invoices(self, company: str, first: str, last: str) -> list[dict[str, Any]]:
        """Supplier invoices of `company` dated first..last (ISO dates, inclusive)."""
        return await self._scan(self._inv, INVOICE_FIELDS, company, "InvoiceDate", first, last,
                                "reading the period's supplier invoices")

    async def vouchers(self, company: str, first: str, last: str) -> list[dict[str, Any]]:
        return await self._scan(self._vou, VOUCHER_FIELDS, company, "VoucherDate", first, last,
                                "reading the period's GL vouchers")

    async def invoices_by_ref(self, company: str, refs: Iterable[str]) -> list[dict[str, Any]]:
        return await self._by_refs(self._inv, INVOICE_FIELDS, company, refs,
                                   "looking up supplier invoices by ExternalRef")

    async def vouchers_by_ref(self, company: str, refs: Iterable[str]) -> list[dict[str, Any]]:
        return await self._by_refs(self._vou, VOUCHER_FIELDS, company, refs,
                                   "looking up GL vouchers by ExternalRef")

    async def _scan(self, ep: Any, fields: tuple[str, ...], company: str, date_field: str,
                    first: str, last: str, what: str) -> list[dict[str, Any]]:
        query = (f"Company eq {literal(company)} and {date_field} ge {first}"
                 f" and {date_field} le {last}")
        return await self.erp.odata.read_all(ep.projection, ep.entity_set, keys=ep.keys,
                                             filter=query, select=",".join(fields), what=what)

    async def _by_refs(self, ep: Any, fields: tuple[str, ...], company: str,
                       refs: Iterable[str], what: str) -> list[dict[str, Any]]:
        refs = sorted(set(refs))
        found: list[dict[str, Any]] = []
        for start in range(0, len(refs), REFS_PER_REQUEST):
            part = refs[start:start + REFS_PER_REQUEST]
            wanted = " or ".join(f"ExternalRef eq {literal(r)}" for r in part)
            found.extend(await self.erp.odata.read_all(
                ep.projection, ep.entity_set, keys=ep.keys, what=what,
                filter=f"Company eq {literal(company)} and ({wanted})", select=",".join(fields)))
        return found
