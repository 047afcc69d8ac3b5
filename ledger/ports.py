"""The small interfaces the pipeline needs from the edges. Adapters implement them; tests
run one contract suite against a fake and against the real adapter."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import msgspec

from ledger.errors import ConnectorError
from ledger.model import CanonicalInvoice, VendorRecord

# ---------------------------------------------------------------- Stampli side (blocking)


class RemoteFile(msgspec.Struct, frozen=True):
    name: str                          # plain file name inside the outbound folder
    size: int
    mtime: float                       # seconds since the epoch, as the server reports it
    # Why the file cannot be taken (a name that is not UTF-8, ...), else "". `name` is then
    # a printable rendering of the real name; the poller records the skip and goes on.
    problem: str = ""


class DownloadedFile(msgspec.Struct, frozen=True):
    name: str
    path: Path                         # the content-addressed local copy
    sha256: str
    size: int


class SourceError(ConnectorError):
    """The export source could not be reached or read. `transient` says whether a later poll
    may succeed (network, timeout) or a person must act (host key, credentials, permissions)."""

    def __init__(self, message: str, *, transient: bool = True) -> None:
        super().__init__(message)
        self.transient = transient


class ExportSource(Protocol):
    """Stampli's outbound folder. Blocking: the pipeline calls it through asyncio.to_thread."""

    def list_files(self, patterns: list[str]) -> list[RemoteFile]: ...

    def download(self, name: str, dest_dir: Path) -> DownloadedFile: ...

    def archive(self, name: str, archive_dir: str) -> None: ...

    def close(self) -> None: ...


# ---------------------------------------------------------------- IFS side (async)

FAILURE_KINDS = ("data", "reference", "transient", "rejected", "conflict")


class ErpFailure(ConnectorError):
    """IFS refused or could not be reached. kind is one of FAILURE_KINDS (ledger.md §3)."""

    def __init__(self, kind: str, message: str, *, code: str = "", status: int = 0,
                 exchanges: list[dict[str, Any]] | None = None) -> None:
        assert kind in FAILURE_KINDS, kind
        super().__init__(message)
        self.kind = kind
        self.code = code
        self.status = status
        self.exchanges = exchanges or []

    @property
    def message(self) -> str:
        return str(self)


class ValidationOutcome(msgspec.Struct, frozen=True):
    checks: list[str]                  # e.g. "account 6100 in company 10 valid on 2026-11-04"
    snapshot: str                      # which reference snapshot (loaded-at time / version)


class SupplierResolution(msgspec.Struct, frozen=True):
    supplier_id: str
    how: str                           # "existing", "linked_to_company", "created"
    exchanges: list[dict[str, Any]] = []


class PostingRequest(msgspec.Struct, frozen=True):
    ledger_id: str                     # the invoice's ledger id: sent as ExternalRef
    invoice: CanonicalInvoice
    supplier_id: str


class PostingResult(msgspec.Struct, frozen=True):
    ifs_invoice_id: str
    voucher: dict[str, Any]            # Company, AccountingYear, VoucherType, VoucherNo ({} if none)
    etags: dict[str, str]
    exchanges: list[dict[str, Any]]    # every request sent and response received, in order
    found_existing: bool = False       # True when recovered by lookup after a crash


class ErpDocument(msgspec.Struct, frozen=True):
    """A supplier invoice header as IFS holds it: what a manual resolution is checked against.
    Amounts are the text IFS answered (compared as Decimal, stored as read)."""
    ifs_invoice_id: str
    company: str
    supplier_id: str
    invoice_number: str
    invoice_type: str
    currency: str
    net: str
    tax: str
    gross: str
    state: str
    external_ref: str = ""


class Erp(Protocol):
    async def validate(self, invoice: CanonicalInvoice) -> ValidationOutcome:
        """Raises ErpFailure(kind="reference"|"data", ...) naming the line and the value."""

    async def resolve_supplier(self, invoice: CanonicalInvoice,
                               vendor: VendorRecord | None) -> SupplierResolution: ...

    async def sync_vendor(self, vendor: VendorRecord) -> dict[str, Any]:
        """Apply vendor-file changes to an existing IFS supplier; returns what changed."""

    async def find_posted(self, request: PostingRequest) -> PostingResult | None:
        """Look the document up in IFS (ExternalRef, else company + supplier + number)."""

    async def post(self, requests: list[PostingRequest]) -> list[PostingResult | ErpFailure]:
        """Create and post each document; one result per request, in order."""

    async def read_invoice(self, company: str, ifs_invoice_id: int) -> ErpDocument | None:
        """The supplier invoice with this InvoiceId in this company, None when IFS has none.
        Raises ErpFailure when IFS cannot be asked."""

    async def close(self) -> None: ...


# ---------------------------------------------------------------- reading exports, finding work


class UnreadableFile(Exception):
    """A whole export file cannot be read (encoding, structure, missing column); it is
    rejected and nothing from it is recorded."""

    def __init__(self, message: str, *, line: int = 0, field: str = "") -> None:
        super().__init__(message)
        self.line, self.field = line, field


class ExportReaders(Protocol):
    """Parsers bound to the configured templates. `kind_of` maps a file name to "invoices",
    "vendors", "purchase_orders" or None; the readers raise UnreadableFile."""

    def kind_of(self, name: str) -> str | None: ...

    def patterns(self) -> list[str]: ...

    def fingerprint(self, kind: str) -> str:
        """Changes whenever the settings that read files of this kind change (a rejected
        file is read again once they do)."""
        ...

    def invoices(self, path: Path, name: str, prepare_for: Any = None) -> Any:
        """ParsedInvoice and RejectedRow items; with `prepare_for` (an ExportFileRef, the
        file intake records them into) some may come as PreparedInvoice."""
        ...

    def vendors(self, path: Path, name: str) -> Any: ...

    def purchase_orders(self, path: Path, name: str) -> Any: ...


class WorkQueue(Protocol):
    """What waits where, read from the projections (never from memory), so a restart resumes
    exactly where the connector stopped."""

    def ready(self, stage: str, now: str, limit: int) -> list[dict[str, Any]]: ...

    def parked(self, kind: str, limit: int,
               after: tuple[str, str] | None = None) -> list[dict[str, Any]]: ...

    def taken_files(self, files: list[tuple[str, int, float]]) -> set[str]: ...

    def rejected_files(self) -> list[str]: ...

    def vendors_to_sync(self) -> list[str]: ...


class ErpUnavailable(ErpFailure):
    """IFS as a whole cannot be used in this cycle: unreachable, refusing the connector's
    credentials, redirecting elsewhere, or the cycle's deadline or circuit breaker stopped
    calling it. The pipeline stops calling IFS for the cycle and reports it as an error (sync
    exits 1); invoices are not charged with it unless they were already being posted."""
