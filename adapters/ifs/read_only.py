"""A read-only `Erp` for `sync --dry-run`: validates against IFS's real reference data and
resolves suppliers by reading, but never writes. What a real sync would create (suppliers,
company links, supplier updates) is noted in `planned` instead of sent.

Belt and braces: the OData client's writes are refused outright, so a code path that would
write (now or after a later change) fails loudly rather than touching IFS."""
from __future__ import annotations

from typing import Any

from adapters.ifs.client import IfsErp
from adapters.ifs.reference import replay_hint
from adapters.ifs.suppliers import refuse_missing_supplier, vendor_fields
from ledger.model import CanonicalInvoice, VendorRecord
from ledger.ports import (ErpFailure, PostingRequest, PostingResult, SupplierResolution,
                          ValidationOutcome)


class WriteRefused(RuntimeError):
    """A dry run tried to write to IFS: a bug, never an IFS answer."""


class ReadOnlyErp:
    def __init__(self, inner: IfsErp) -> None:
        self.inner = inner
        self.planned: dict[str, list[dict[str, Any]]] = {
            "suppliers_created": [], "company_links": [], "supplier_updates": []}
        send = inner.odata.send

        async def read_only_send(method: str, url: str, **kwargs: Any) -> Any:
            if kwargs.get("write"):
                raise WriteRefused(f"dry run: refusing {method} {url}")
            return await send(method, url, **kwargs)

        inner.odata.send = read_only_send             # type: ignore[method-assign]

    @property
    def settings(self) -> Any:
        return self.inner.settings

    async def validate(self, invoice: CanonicalInvoice) -> ValidationOutcome:
        return await self.inner.validate(invoice)

    async def resolve_supplier(self, invoice: CanonicalInvoice,
                               vendor: VendorRecord | None) -> SupplierResolution:
        """The decision `Suppliers.resolve` makes, from reads only."""
        sid, cache = invoice.vendor_id, self.inner.reference
        how = "existing"
        exists = await cache.supplier(sid) is not None
        created = any(p["supplier_id"] == sid for p in self.planned["suppliers_created"])
        if not exists and not created:
            refuse_missing_supplier(self.settings, invoice, vendor, sid,
                                    replay_hint(invoice, self.inner._default_company))
            fields = {"SupplierId": sid, **vendor_fields(vendor)}
            fields.setdefault("Name", invoice.vendor_name or sid)
            self.planned["suppliers_created"].append({"supplier_id": sid, "fields": fields})
        if not exists or created:
            how = "created"
        companies = await cache.supplier_companies(sid) if exists else set()
        linked = {(p["supplier_id"], p["company"]) for p in self.planned["company_links"]}
        if invoice.company not in companies and (sid, invoice.company) not in linked:
            currency = vendor.currency if vendor and vendor.currency else invoice.currency
            self.planned["company_links"].append({"supplier_id": sid, "company": invoice.company,
                                                  "currency": currency})
        if invoice.company not in companies and how == "existing":
            how = "linked_to_company"
        return SupplierResolution(supplier_id=sid, how=how)

    async def sync_vendor(self, vendor: VendorRecord) -> dict[str, Any]:
        sid = vendor.vendor_id
        supplier = await self.inner.reference.supplier(sid, fresh=True)
        if supplier is None:
            return {"supplier_id": sid, "action": "absent", "fields": []}
        changes = {k: {"from": supplier.get(k), "to": v}
                   for k, v in vendor_fields(vendor).items() if (supplier.get(k) or "") != v}
        if changes:
            self.planned["supplier_updates"].append({"supplier_id": sid, "changed": changes})
        return {"supplier_id": sid, "action": "unchanged", "fields": []}

    async def find_posted(self, request: PostingRequest) -> PostingResult | None:
        return await self.inner.find_posted(request)

    async def post(self, requests: list[PostingRequest]) -> list[PostingResult | ErpFailure]:
        raise WriteRefused("dry run: nothing is posted")

    async def close(self) -> None:
        await self.inner.close()
