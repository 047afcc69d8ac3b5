"""IfsErp: the `Erp` port over IFS Cloud's OData API.

One object per tenant: it owns the token, the rate limiter (shared by every request to the
tenant), the reference cache and the HTTP session (unless one is passed in).
"""
from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp

from adapters.ifs import mapping
from adapters.ifs.auth import TokenProvider
from adapters.ifs.documents import read_invoice
from adapters.ifs.endpoints import Endpoint, effective_map
from adapters.ifs.limiter import Backoff, SlidingWindowLimiter
from adapters.ifs.metadata import Model, compare
from adapters.ifs.odata import ODataClient
from adapters.ifs.posting import Poster
from adapters.ifs.reference import ReferenceCache
from adapters.ifs.suppliers import Suppliers
from adapters.settings import EndpointSettings, IfsSettings, parse_duration
from ledger.model import CanonicalInvoice, VendorRecord
from ledger.ports import (ErpDocument, ErpFailure, PostingRequest, PostingResult,
                          SupplierResolution, ValidationOutcome)

CheckItem = tuple[str, bool, str]


class IfsErp:
    """`Erp` implementation. `clock`/`sleep` drive token renewal, the limiter, the reference
    refresh and backoff waits; tests pass a zero-wait `backoff` and a short `limiter_window`.

    Use one instance within one event loop (its HTTP session and locks belong to the loop that
    first used them); `await close()` when done. `default_company` makes replay hints use the
    short `VENDOR/NUMBER` form for that company's invoices. `batch_max_documents` caps the
    documents per `$batch` (besides IFS's 5000 operations), which bounds what a single 504
    leaves to look up."""

    def __init__(self, settings: IfsSettings, client_secret: str, *,
                 session: aiohttp.ClientSession | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                 backoff: Backoff | None = None, limiter_window: float = 60.0,
                 default_company: str | None = None, batch_max_documents: int = 200) -> None:
        self.settings = settings
        self.endpoints: dict[str, Endpoint] = effective_map(settings)
        self._session = session
        self._owns_session = session is None
        self.tokens = TokenProvider(settings, client_secret, self._get_session, clock=clock)
        self.limiter = SlidingWindowLimiter(settings.requests_per_minute, limiter_window,
                                            clock=clock, sleep=sleep)
        self.odata = ODataClient(settings, self.tokens, self._get_session, self.limiter,
                                 backoff or Backoff(base=parse_duration(settings.backoff_base),
                                                    cap=parse_duration(settings.backoff_cap),
                                                    attempts=settings.retries), sleep=sleep)
        self.reference = ReferenceCache(self.odata, self.endpoints, settings.posting,
                                        parse_duration(settings.reference_refresh), clock=clock)
        self._default_company = default_company
        self._suppliers = Suppliers(self.odata, self.endpoints, self.reference, settings,
                                    default_company)
        self._poster = Poster(self.odata, self.endpoints, settings,
                              batch_max_documents=batch_max_documents,
                              default_company=default_company)

    # ------------------------------------------------------------------ session

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            verify = self.settings.verify_tls
            if isinstance(verify, str):
                ssl_arg: Any = ssl.create_default_context(cafile=verify)
            else:
                ssl_arg = None if verify else False
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=parse_duration(self.settings.timeout)),
                connector=aiohttp.TCPConnector(ssl=ssl_arg, limit=16))
            self._owns_session = True
        return self._session

    async def close(self) -> None:
        if self._owns_session and self._session is not None and not self._session.closed:
            await self._session.close()

    async def __aenter__(self) -> IfsErp:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ------------------------------------------------------------------ the Erp port

    async def validate(self, invoice: CanonicalInvoice) -> ValidationOutcome:
        """Data checks (pure, no request) then reference checks against the cache."""
        probe = PostingRequest(ledger_id="validation", invoice=invoice,
                               supplier_id=invoice.vendor_id)
        doc = mapping.document(probe, self.settings.posting)
        checks = [f"amounts fit {invoice.currency} and add up (net + tax = total, lines = header)"]
        if doc.voucher is not None:
            checks.append(f"GL voucher balances: {len(doc.rows)} rows")
        ref_checks, snapshot = await self.reference.check(invoice, self._default_company)
        return ValidationOutcome(checks=checks + ref_checks, snapshot=snapshot)

    async def resolve_supplier(self, invoice: CanonicalInvoice,
                               vendor: VendorRecord | None) -> SupplierResolution:
        return await self._suppliers.resolve(invoice, vendor)

    async def sync_vendor(self, vendor: VendorRecord) -> dict[str, Any]:
        return await self._suppliers.sync(vendor)

    async def find_posted(self, request: PostingRequest) -> PostingResult | None:
        return await self._poster.find_posted(request)

    async def post(self, requests: list[PostingRequest]) -> list[PostingResult | ErpFailure]:
        return await self._poster.post(requests)

    async def read_invoice(self, company: str, ifs_invoice_id: int) -> ErpDocument | None:
        return await read_invoice(self.odata, self.endpoints["invoice"], company,
                                  ifs_invoice_id)

    def start_cycle(self, timeout: float | None) -> None:
        """A new cycle: IFS is called for at most `timeout` seconds from now, and the circuit
        breaker (`ifs.breaker_after`) closes again."""
        self.odata.guard.start_cycle(timeout)

    # ------------------------------------------------------------------ posting paths

    def posting_services(self) -> dict[str, str]:
        """{service URL: projection} of the projections documents are posted to."""
        return {self.odata.service_url(ep.projection): ep.projection
                for ep in (self.endpoints["invoice"], self.endpoints["voucher"])}

    def remember_path(self, service: str, path: str, why: str) -> None:
        projection = self.posting_services().get(service)
        if projection:
            self._poster.paths.remember(projection, path, why)

    def learned_paths(self) -> list[tuple[str, str, str]]:
        """(service URL, path, why) learned since the last call, for the ledger."""
        learned, self._poster.paths.learned = self._poster.paths.learned, []
        return [(self.odata.service_url(projection), path, why)
                for projection, path, why in learned]

    # ------------------------------------------------------------------ operations

    def effective_endpoints(self) -> dict[str, EndpointSettings]:
        """The endpoint map in use (defaults + `[ifs.endpoints]`), in the config's shape."""
        return {role: EndpointSettings(projection=e.projection, entity_set=e.entity_set,
                                       keys=list(e.keys)) for role, e in self.endpoints.items()}

    @property
    def requests_sent(self) -> int:
        return self.odata.sent

    async def check(self) -> list[CheckItem]:
        """`ml-connector check`: token, one page of each entity set, and the map against each
        projection's `$metadata`. Never raises for an IFS answer; each item says what failed."""
        items: list[CheckItem] = []
        try:
            await self.tokens.get()
            items.append(("IFS token", True, f"client '{self.settings.client_id}' at "
                                             f"{self.tokens.url}"))
        except ErpFailure as exc:
            items.append(("IFS token", False, str(exc)))
            return items
        for role, ep in self.endpoints.items():
            if ep.parent:
                continue
            label = f"read {role}: {ep.projection}/{ep.entity_set}"
            try:
                rows = await self.odata.read_all(ep.projection, ep.entity_set, keys=ep.keys,
                                                 top=1, what=f"reading one {role}")
                items.append((label, True, f"{len(rows)} row(s) read"))
            except ErpFailure as exc:
                items.append((label, False, str(exc)))
        for projection in dict.fromkeys(ep.projection for ep in self.endpoints.values()):
            try:
                model = Model(await self.odata.metadata(projection))
            except ErpFailure as exc:
                items.append((f"$metadata {projection}", False, str(exc)))
                continue
            except Exception as exc:  # noqa: BLE001 - malformed XML from the tenant
                items.append((f"$metadata {projection}", False,
                              f"not readable CSDL XML: {type(exc).__name__}: {exc}"))
                continue
            items.extend(compare(model, self.endpoints, projection))
        for role in ("invoice", "voucher"):
            projection = self.endpoints[role].projection
            await self._poster.paths.consult_metadata(projection)
            path, why = self._poster.paths.path_of(projection)
            items.append((f"posting path {role}: {projection}", True, f"{path}: {why}"))
        return items
