"""In-memory stand-ins for the ports, for fast pipeline tests. Each behaves as the contract
says the real adapter does (the real ones are tested against sshd and the IFS emulator)."""
from __future__ import annotations

import fnmatch
import hashlib
import os
import shutil
from pathlib import Path

from ledger.model import CanonicalInvoice, VendorRecord
from ledger.ports import (DownloadedFile, ErpFailure, PostingRequest, PostingResult,
                          RemoteFile, SupplierResolution, ValidationOutcome)


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


class FakeErp:
    def __init__(self, accounts=("6100", "6540"), cost_centers=("CC210", "CC220", "CC300"),
                 suppliers=("V00231",)) -> None:
        self.accounts, self.cost_centers = set(accounts), set(cost_centers)
        self.suppliers = set(suppliers)
        self.documents: dict[str, dict] = {}     # ledger id -> what IFS holds
        self.post_calls = 0
        self.fail_posts: dict[str, list[ErpFailure]] = {}   # invoice number -> next results
        self.commit_then_drop = 0                # next N posts: stored, but the answer lost
        self.synced: list[str] = []

    async def validate(self, invoice: CanonicalInvoice) -> ValidationOutcome:
        for line in invoice.lines:
            if line.gl_account not in self.accounts:
                raise ErpFailure("reference", f"GL account {line.gl_account} does not exist in"
                                 f" IFS company {invoice.company} (invoice {invoice.ref},"
                                 f" line {line.line_number})", code="ACCOUNT_NOT_FOUND")
            if line.cost_center not in self.cost_centers:
                raise ErpFailure("reference", f"cost center {line.cost_center} unknown",
                                 code="CODE_PART_NOT_FOUND")
        return ValidationOutcome([f"account {l.gl_account}" for l in invoice.lines], "fake")

    async def resolve_supplier(self, invoice, vendor: VendorRecord | None):
        if invoice.vendor_id in self.suppliers:
            return SupplierResolution(invoice.vendor_id, "existing")
        self.suppliers.add(invoice.vendor_id)
        return SupplierResolution(invoice.vendor_id, "created")

    async def sync_vendor(self, vendor: VendorRecord) -> dict:
        self.synced.append(vendor.vendor_id)
        return {"supplier_id": vendor.vendor_id, "action": "unchanged", "fields": []}

    async def find_posted(self, request: PostingRequest) -> PostingResult | None:
        doc = self.documents.get(request.ledger_id)
        if doc is None:
            return None
        return PostingResult(doc["id"], {"VoucherNo": doc["voucher"]}, {}, [], found_existing=True)

    async def post(self, requests: list[PostingRequest]):
        results = []
        for request in requests:
            self.post_calls += 1
            planned = self.fail_posts.get(request.invoice.invoice_number)
            if planned:
                results.append(planned.pop(0))
                continue
            if request.ledger_id in self.documents:
                results.append(ErpFailure("rejected", "FND_RECORD_EXIST: already exists",
                                          code="FND_RECORD_EXIST"))
                continue
            number = len(self.documents) + 1
            self.documents[request.ledger_id] = {"id": str(1000 + number), "voucher": number,
                                                 "invoice_number": request.invoice.invoice_number}
            if self.commit_then_drop:
                self.commit_then_drop -= 1
                results.append(ErpFailure("transient", "connection reset after sending"))
                continue
            results.append(PostingResult(str(1000 + number), {"VoucherNo": number},
                                         {"invoice": 'W/"1"'}, [{"method": "POST"}]))
        return results

    async def close(self) -> None:
        pass
