"""In-memory stand-ins for the ports, for fast pipeline tests. Each behaves as the contract
says the real adapter does (the real ones are tested against sshd and the IFS emulator)."""
from __future__ import annotations

import fnmatch
import hashlib
import os
import shutil
from decimal import Decimal
from pathlib import Path

from adapters.ifs import mapping
from adapters.ifs.reference import replay_hint
from adapters.ifs.suppliers import vendor_fields
from adapters.settings import PostingSettings
from ledger.model import CanonicalInvoice, VendorRecord
from ledger.ports import (DownloadedFile, ErpDocument, ErpFailure, PostingRequest,
                          PostingResult, RemoteFile, SupplierResolution, ValidationOutcome)


class FolderSource:
    """An outbound folder on the local disk."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.archived: list[str] = []

    def list_files(self, patterns: list[str]) -> list[RemoteFile]:
        out = []
        for path in sorted(self.folder.iterdir()):
            if path.is_file() and any(fnmatch.fnmatchcase(path.name, p) for p in patterns):
                st = path.stat()
                out.append(RemoteFile(path.name, st.st_size, st.st_mtime))
        return out

    def download(self, name: str, dest_dir: Path) -> DownloadedFile:
        data = (self.folder / name).read_bytes()
        sha = hashlib.sha256(data).hexdigest()
        target = Path(dest_dir) / sha[:2] / sha
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        return DownloadedFile(name, target, sha, len(data))

    def archive(self, name: str, archive_dir: str) -> None:
        os.makedirs(archive_dir, exist_ok=True)
        shutil.move(str(self.folder / name), os.path.join(archive_dir, name))
        self.archived.append(name)

    def close(self) -> None:
        pass


# What the IFS sandbox seed holds for the supplier the samples use (sandbox/ifs_seed.toml).
SEEDED_SUPPLIERS = {"V00231": {"Name": "Acme Industrial Supply", "Country": "US",
                               "AssociationNo": "US-84-1234567"}}
TAX_ACCOUNTS = {"TX8": "2640", "VAT19": "2641"}     # as the sandbox's [ifs.posting]


class FakeErp:
    """IFS in memory, answering as IfsErp does against the emulator: tests/ifs/
    test_erp_contract.py runs one suite against both, so the two cannot drift. The pure parts
    of the real adapter (payload mapping and its data checks, the supplier fields a vendor
    record sets, the replay hint) are reused, not written again."""

    def __init__(self, accounts=("6100", "6540"), cost_centers=("CC210", "CC220", "CC300"),
                 suppliers=("V00231",), company="10") -> None:
        self.accounts, self.cost_centers = set(accounts), set(cost_centers)
        # supplier id -> its IFS fields; supplier id -> companies it is linked to
        self.suppliers = {sid: dict(SEEDED_SUPPLIERS.get(sid, {"Name": sid}))
                          for sid in suppliers}
        self.links = {sid: {company} for sid in suppliers}
        self.posting = PostingSettings(tax_accounts=TAX_ACCOUNTS)
        self.documents: dict[str, dict] = {}     # ledger id -> what IFS holds
        self.post_calls = 0
        self.fail_posts: dict[str, list[ErpFailure]] = {}   # invoice number -> next results
        self.commit_then_drop = 0                # next N posts: stored, but the answer lost
        self.synced: list[str] = []

    # ------------------------------------------------------------------ validate

    async def validate(self, invoice: CanonicalInvoice) -> ValidationOutcome:
        mapping.document(PostingRequest("validation", invoice, invoice.vendor_id),
                         self.posting)                     # the data checks: kind "data"
        problems: dict[str, list[int]] = {}
        for line in invoice.lines:
            if line.gl_account not in self.accounts:
                problems.setdefault(f"GL account {line.gl_account} does not exist in IFS"
                                    f" company {invoice.company}", []).append(line.line_number)
            if line.cost_center not in self.cost_centers:
                problems.setdefault(f"cost center {line.cost_center} (code part B) does not"
                                    f" exist in IFS company {invoice.company}",
                                    []).append(line.line_number)
        if problems:
            parts = [f"{text} (invoice {invoice.ref}, line{'s' if len(lines) > 1 else ''}"
                     f" {', '.join(map(str, lines))})" for text, lines in problems.items()]
            raise ErpFailure("reference", "; ".join(parts) + "; create it in IFS or correct"
                             f" the coding in Stampli, then {replay_hint(invoice, None)}",
                             code="REFERENCE")
        return ValidationOutcome([f"account {l.gl_account}" for l in invoice.lines], "fake")

    # ------------------------------------------------------------------ suppliers

    async def resolve_supplier(self, invoice: CanonicalInvoice,
                               vendor: VendorRecord | None) -> SupplierResolution:
        sid, how = invoice.vendor_id, "existing"
        if sid not in self.suppliers:
            if vendor is None:
                raise ErpFailure("reference", f"supplier {sid} does not exist in IFS and"
                                 " Stampli has exported no vendor record to create it from"
                                 f" (invoice {invoice.ref}); export the vendor from Stampli or"
                                 f" create the supplier in IFS, then"
                                 f" {replay_hint(invoice, None)}", code="SUPPLIER_NOT_FOUND")
            record = vendor_fields(vendor)
            record.setdefault("Name", invoice.vendor_name or sid)
            self.suppliers[sid], self.links[sid] = record, set()
            how = "created"
        if invoice.company not in self.links[sid]:
            self.links[sid].add(invoice.company)
            how = "linked_to_company" if how == "existing" else how
        return SupplierResolution(sid, how)

    async def sync_vendor(self, vendor: VendorRecord) -> dict:
        sid = vendor.vendor_id
        self.synced.append(sid)
        held = self.suppliers.get(sid)
        if held is None:
            return {"supplier_id": sid, "action": "absent", "fields": []}
        changes = {k: v for k, v in vendor_fields(vendor).items() if held.get(k, "") != v}
        held.update(changes)
        return {"supplier_id": sid, "action": "updated" if changes else "unchanged",
                "fields": sorted(changes)}

    # ------------------------------------------------------------------ posting

    def _held_by_number(self, request: PostingRequest) -> tuple[str, dict] | None:
        inv = request.invoice
        for ledger_id, doc in self.documents.items():
            if (doc["company"], doc["supplier_id"], doc["invoice_number"]) == (
                    inv.company, request.supplier_id, inv.invoice_number):
                return ledger_id, doc
        return None

    async def find_posted(self, request: PostingRequest) -> PostingResult | None:
        inv = request.invoice
        doc = self.documents.get(request.ledger_id)
        if doc is None:
            other = self._held_by_number(request)
            if other is None:
                return None
            raise ErpFailure(
                "conflict", f"IFS already holds invoice {inv.invoice_number} of supplier"
                f" {request.supplier_id} in company {inv.company} (InvoiceId {other[1]['id']}),"
                f" created for another ledger invoice (ExternalRef {other[0]}); if it is this"
                f" invoice, set its ExternalRef to {request.ledger_id} in IFS; if not, correct"
                " the invoice number in Stampli", code="FND_RECORD_EXIST")
        differ = [f"{field} {doc[field]} (the invoice now says {now})"
                  for field, now in _amounts(inv).items() if doc[field] != now]
        if differ:
            raise ErpFailure(
                "conflict", f"IFS already holds supplier invoice {inv.ref} (ExternalRef"
                f" {request.ledger_id}, InvoiceId {doc['id']}, Posted) with {', '.join(differ)}:"
                " it was amended after an earlier attempt reached IFS; correct the document in"
                f" IFS, then `ml-connector replay {inv.ref} --reason \"...\"`",
                code="CONTENT_DIFFERS")
        return PostingResult(doc["id"], {"VoucherNo": doc["voucher"]}, {}, [], found_existing=True)

    def _refused(self, request: PostingRequest) -> ErpFailure | None:
        """What IFS refuses at posting, as the emulator does."""
        inv = request.invoice
        hint = f"fix it in IFS (or Stampli), then {replay_hint(inv, None)}"
        if request.supplier_id not in self.suppliers:
            return ErpFailure("reference", f"IFS refused posting supplier invoice {inv.ref}:"
                              f" SUPPLIER_NOT_FOUND: Supplier {request.supplier_id} does not"
                              f" exist.; {hint}", code="SUPPLIER_NOT_FOUND")
        for line in inv.lines:
            if line.gl_account not in self.accounts:
                return ErpFailure("reference", f"IFS refused posting supplier invoice"
                                  f" {inv.ref}: ACCOUNT_NOT_FOUND: Account {line.gl_account}"
                                  f" does not exist in company {inv.company}.; {hint}",
                                  code="ACCOUNT_NOT_FOUND")
        return None

    async def _post_one(self, request: PostingRequest) -> PostingResult | ErpFailure:
        self.post_calls += 1
        planned = self.fail_posts.get(request.invoice.invoice_number)
        if planned:
            return planned.pop(0)
        try:
            mapping.document(request, self.posting)
            if request.ledger_id in self.documents or self._held_by_number(request):
                # IFS refuses the second header; the adapter then looks the first one up
                return await self.find_posted(request)
        except ErpFailure as failure:
            return failure
        refused = self._refused(request)
        if refused is not None:
            return refused
        number = len(self.documents) + 1
        self.documents[request.ledger_id] = {
            "id": str(1000 + number), "voucher": number, "company": request.invoice.company,
            "supplier_id": request.supplier_id,
            "invoice_number": request.invoice.invoice_number, **_amounts(request.invoice),
            "currency": request.invoice.currency,
            "invoice_type": mapping.invoice_type(request.invoice)}
        if self.commit_then_drop:
            self.commit_then_drop -= 1
            return ErpFailure("transient", "connection reset after sending")
        return PostingResult(str(1000 + number), {"VoucherNo": number},
                             {"invoice": 'W/"1"'}, [{"method": "POST"}])

    async def post(self, requests: list[PostingRequest]) -> list[PostingResult | ErpFailure]:
        return [await self._post_one(request) for request in requests]

    def enter_by_hand(self, company: str, supplier_id: str, invoice_number: str,
                      currency: str, net: str, tax: str, gross: str) -> str:
        """A supplier invoice a person typed into IFS (no ExternalRef). Returns its InvoiceId."""
        ifs_id = str(1000 + len(self.documents) + 1)
        self.documents[f"by-hand-{ifs_id}"] = {
            "id": ifs_id, "voucher": 0, "company": company, "supplier_id": supplier_id,
            "invoice_number": invoice_number, "currency": currency, "invoice_type": "INVOICE",
            "NetCurrAmount": Decimal(net), "VatCurrAmount": Decimal(tax),
            "GrossCurrAmount": Decimal(gross), "external_ref": ""}
        return ifs_id

    async def read_invoice(self, company: str, ifs_invoice_id: int) -> ErpDocument | None:
        for ledger_id, doc in self.documents.items():
            if doc["id"] == str(ifs_invoice_id) and doc["company"] == company:
                return ErpDocument(
                    ifs_invoice_id=doc["id"], company=company, supplier_id=doc["supplier_id"],
                    invoice_number=doc["invoice_number"], invoice_type=doc["invoice_type"],
                    currency=doc["currency"], net=str(doc["NetCurrAmount"]),
                    tax=str(doc["VatCurrAmount"]), gross=str(doc["GrossCurrAmount"]),
                    state="Posted" if doc["voucher"] else "Preliminary",
                    external_ref=doc.get("external_ref", ledger_id))
        return None

    async def close(self) -> None:
        pass


def _amounts(invoice: CanonicalInvoice) -> dict[str, Decimal]:
    """The header amounts IFS holds, compared as numbers as the adapter compares them."""
    return {"NetCurrAmount": invoice.net, "VatCurrAmount": invoice.tax,
            "GrossCurrAmount": invoice.total}
