"""Stampli vendor -> IFS supplier: resolve (existing / link to the company / create) and sync.

Creating a supplier or a company link is keyed by natural keys (SupplierId, Company), so an
unknown outcome is settled by reading the key back, never by sending again blindly. Updates use
GET -> PATCH with If-Match; on 412 the supplier is re-read and the change re-checked, because
someone in IFS may have made the same (or a conflicting) change meanwhile.
"""
from __future__ import annotations

from typing import Any

from adapters.ifs.endpoints import Endpoint, key_predicate
from adapters.ifs.errors import BadAnswer, OutcomeUnknown, PreconditionFailed
from adapters.ifs.odata import ODataClient
from adapters.ifs.reference import ReferenceCache, replay_hint
from adapters.settings import IfsSettings
from ledger.model import CanonicalInvoice, VendorRecord
from ledger.ports import ErpFailure, SupplierResolution

MAX_PRECONDITION_RETRIES = 4


def vendor_fields(vendor: VendorRecord) -> dict[str, str]:
    """The supplier fields a vendor record sets. Empty values never clear IFS data."""
    fields = {"Name": vendor.name.strip(), "AssociationNo": vendor.tax_id.strip(),
              "Country": vendor.country.strip().upper()}
    return {k: v for k, v in fields.items() if v}


class Suppliers:
    def __init__(self, odata: ODataClient, endpoints: dict[str, Endpoint],
                 cache: ReferenceCache, settings: IfsSettings,
                 default_company: str | None) -> None:
        self._odata = odata
        self._sup = endpoints["supplier"]
        self._link = endpoints["supplier_company"]
        self._cache = cache
        self._settings = settings
        self._default_company = default_company

    def _path(self, supplier_id: str) -> str:
        return self._sup.entity_set + key_predicate({"SupplierId": supplier_id})

    async def resolve(self, invoice: CanonicalInvoice,
                      vendor: VendorRecord | None) -> SupplierResolution:
        sid = invoice.vendor_id
        exchanges: list[dict[str, Any]] = []
        how = "existing"
        supplier = await self._cache.supplier(sid)
        if supplier is None:
            refuse_missing_supplier(self._settings, invoice, vendor, sid,
                                    replay_hint(invoice, self._default_company))
            supplier = await self._create(vendor, invoice, exchanges)
            how = "created"
        companies = await self._cache.supplier_companies(sid)
        if invoice.company not in companies:
            currency = (vendor.currency if vendor and vendor.currency else invoice.currency)
            await self._connect(sid, invoice.company, currency, supplier, exchanges)
            if how == "existing":
                how = "linked_to_company"
        return SupplierResolution(supplier_id=sid, how=how, exchanges=exchanges)

    async def _create(self, vendor: VendorRecord, invoice: CanonicalInvoice,
                      exchanges: list[dict[str, Any]]) -> dict[str, Any]:
        sid = vendor.vendor_id
        body = {"SupplierId": sid, **vendor_fields(vendor)}
        body.setdefault("Name", invoice.vendor_name or sid)
        try:
            entity, etag = await self._odata.write(
                "POST", self._sup.projection, self._sup.entity_set, body,
                what=f"creating supplier {sid}", record=exchanges)
        except OutcomeUnknown:
            entity = None                     # settled below by reading the key back
        except ErpFailure as exc:
            if exc.code != "FND_RECORD_EXIST":
                raise
            entity = None                     # created meanwhile (by a person or another run)
        else:
            entity = {**(entity or body), "@odata.etag": etag}
        if entity is None:
            entity = await self._cache.supplier(sid, fresh=True)
            if entity is None:
                raise OutcomeUnknown(f"creating supplier {sid} in IFS had no clear answer and "
                                     "it is not there; the connector tries again later",
                                     exchanges=exchanges)
        self._cache.suppliers[sid] = entity
        self._cache.links.setdefault(sid, set())
        return entity

    async def _connect(self, sid: str, company: str, currency: str, supplier: dict[str, Any],
                       exchanges: list[dict[str, Any]]) -> None:
        """Child POST SupplierInvoiceCompanies with If-Match = the supplier's current ETag."""
        body = {"Company": company, "Currency": currency}
        etag = supplier.get("@odata.etag", "")
        for _ in range(MAX_PRECONDITION_RETRIES):
            if not etag:
                fresh = await self._cache.supplier(sid, fresh=True)
                etag = (fresh or {}).get("@odata.etag", "")
            try:
                await self._odata.write("POST", self._link.projection,
                                        f"{self._path(sid)}/{self._link.entity_set}", body,
                                        if_match=etag, record=exchanges,
                                        what=f"connecting supplier {sid} to company {company}")
            except PreconditionFailed:
                etag = ""                     # the supplier changed: re-read, then retry
                continue
            except ErpFailure as exc:
                # Unknown outcome, or "already connected": the link's key settles it.
                if not isinstance(exc, OutcomeUnknown) and exc.code != "FND_RECORD_EXIST":
                    raise
                if company not in await self._cache.supplier_companies(sid, fresh=True):
                    raise
            self._cache.links.setdefault(sid, set()).add(company)
            return
        raise ErpFailure("conflict", f"supplier {sid} kept changing in IFS while the connector "
                         f"tried to connect it to company {company}; it retries later",
                         code="ODP_PRECONDITION_FAILED", exchanges=exchanges)

    async def sync(self, vendor: VendorRecord) -> dict[str, Any]:
        """GET -> compare -> PATCH with If-Match; on 412 re-read and re-check (bounded).

        -> {"supplier_id", "action": "updated" | "unchanged" | "absent", "fields": [changed
        field names], "changed": {field: {"from", "to"}}, "not_synced": [vendor fields the
        endpoint map has no place for], "attempts", "exchanges"}."""
        sid = vendor.vendor_id
        wanted = vendor_fields(vendor)
        exchanges: list[dict[str, Any]] = []
        # `action` and `fields` are what the vendor stream records (ledger.vendor.synced).
        result: dict[str, Any] = {"supplier_id": sid, "fields": [], "changed": {},
                                  "exchanges": exchanges,
                                  "not_synced": [f for f in ("address_line1", "city",
                                                             "postal_code")
                                                 if getattr(vendor, f)]}
        for attempt in range(MAX_PRECONDITION_RETRIES):
            entity, etag = await self._odata.get_entity(
                self._sup.projection, self._path(sid), what=f"reading supplier {sid}",
                record=exchanges)
            if entity is None:
                return {**result, "action": "absent"}
            changes = {k: v for k, v in wanted.items() if (entity.get(k) or "") != v}
            if not changes:
                self._cache.suppliers[sid] = entity
                return {**result, "action": "unchanged", "attempts": attempt + 1}
            try:
                updated, new_etag = await self._odata.write(
                    "PATCH", self._sup.projection, self._path(sid), changes, if_match=etag,
                    what=f"updating supplier {sid}", record=exchanges)
            except PreconditionFailed:
                continue                      # changed meanwhile: re-read, re-check
            except OutcomeUnknown as exc:
                if isinstance(exc, BadAnswer) and attempt + 1 == MAX_PRECONDITION_RETRIES:
                    raise                     # every answer unreadable: say so, not "changing"
                continue                      # a PATCH is safe to re-check and re-apply
            merged = {**entity, **(updated or changes), "@odata.etag": new_etag}
            self._cache.suppliers[sid] = merged
            return {**result, "action": "updated", "attempts": attempt + 1,
                    "fields": sorted(changes),
                    "changed": {k: {"from": entity.get(k), "to": v} for k, v in changes.items()}}
        raise ErpFailure("conflict", f"supplier {sid} kept changing in IFS while the connector "
                         f"applied the vendor file ({MAX_PRECONDITION_RETRIES} tries); it "
                         "retries with the next vendor export", code="ODP_PRECONDITION_FAILED",
                         exchanges=exchanges)


def refuse_missing_supplier(settings: IfsSettings, invoice: CanonicalInvoice,
                            vendor: VendorRecord | None, sid: str, hint: str) -> None:
    """Raise the `reference` failure for a supplier IFS lacks when the connector may not, or
    cannot, create it (no vendor record from Stampli); return when it may create it."""
    if not settings.create_missing_suppliers:
        raise ErpFailure("reference", f"supplier {sid} does not exist in IFS (invoice "
                         f"{invoice.ref}); create it in IFS (or set "
                         f"`ifs.create_missing_suppliers = true`), then {hint}",
                         code="SUPPLIER_NOT_FOUND")
    if vendor is None:
        raise ErpFailure("reference", f"supplier {sid} does not exist in IFS and Stampli "
                         f"has exported no vendor record to create it from (invoice "
                         f"{invoice.ref}); export the vendor from Stampli or create the "
                         f"supplier in IFS, then {hint}", code="SUPPLIER_NOT_FOUND")
