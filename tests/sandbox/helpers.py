"""Driving the IFS emulator over real HTTP on loopback from sync pytest tests.

`@tenant_test(**emulator_options)` turns `async def test_x(t: Tenant)` into a plain test that
starts an emulator on a free port, fetches a token, and runs the body with asyncio.run.
A small independent $batch builder/parser lives here so the emulator is not tested with the
connector's own code.
"""
from __future__ import annotations

import asyncio
import json
import re
import uuid
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

import aiohttp
from multidict import CIMultiDict

from sandbox.ifs import IfsEmulator

INVOICE = "ManualSupplierInvoiceHandling"
VOUCHER = "VoucherHandling"
SUPPLIER = "SupplierHandling"
ACCOUNTS = "AccountsHandling"
POST_ACTION = "IfsApp.ManualSupplierInvoiceHandling.PostingProposalHead_Post"
APPROVE_ACTION = "IfsApp.VoucherHandling.Voucher_Approve"
JSON_TYPE = "application/json;IEEE754Compatible=true"
CLIENT = {"grant_type": "client_credentials", "client_id": "ml-connector",
          "client_secret": "sandbox-secret", "scope": "openid microprofile-jwt"}


@dataclass
class Resp:
    status: int
    headers: CIMultiDict[str]
    text: str

    @property
    def body(self) -> Any:
        return json.loads(self.text) if self.text.strip() else None

    @property
    def etag(self) -> str | None:
        return self.headers.get("ETag")

    @property
    def code(self) -> str:
        return (self.body or {}).get("error", {}).get("code", "")


class Tenant:
    """An emulator plus an HTTP session holding a valid token."""

    def __init__(self, emu: IfsEmulator, session: aiohttp.ClientSession) -> None:
        self.emu, self.session, self.token = emu, session, ""

    async def fetch_token(self, **form: str) -> Resp:
        async with self.session.post(self.emu.token_url(), data={**CLIENT, **form}) as r:
            resp = Resp(r.status, CIMultiDict(r.headers), await r.text())
        if resp.status == 200:
            self.token = resp.body["access_token"]
        return resp

    def url(self, projection: str, path: str = "", endpoint: str = "int") -> str:
        return self.emu.odata_url(projection, endpoint) + path

    async def call(self, method: str, projection: str, path: str = "", *, json_body: Any = None,
                   if_match: str | None = None, params: dict[str, str] | None = None,
                   headers: dict[str, str] | None = None, endpoint: str = "int",
                   data: bytes | None = None) -> Resp:
        h = {"Authorization": f"Bearer {self.token}", "Accept": JSON_TYPE}
        if if_match is not None:
            h["If-Match"] = if_match
        if json_body is not None:
            h["Content-Type"] = JSON_TYPE
            data = json.dumps(json_body).encode()
        h.update(headers or {})
        async with self.session.request(method, self.url(projection, path, endpoint),
                                        data=data, params=params, headers=h) as r:
            return Resp(r.status, CIMultiDict(r.headers), await r.text())

    async def get(self, projection: str, path: str = "", **kw: Any) -> Resp:
        return await self.call("GET", projection, path, **kw)

    async def post(self, projection: str, path: str, body: Any = None, **kw: Any) -> Resp:
        return await self.call("POST", projection, path, json_body=body, **kw)

    async def get_url(self, url: str) -> Resp:
        h = {"Authorization": f"Bearer {self.token}", "Accept": JSON_TYPE}
        async with self.session.get(url, headers=h) as r:
            return Resp(r.status, CIMultiDict(r.headers), await r.text())

    # ------------------------------------------------------------------ documents
    async def create_invoice(self, **fields: Any) -> Resp:
        body = {"Company": "10", "Identity": "V00231", "InvoiceNo": "INV-2026-0117",
                "InvoiceType": "INVOICE", "InvoiceDate": "2026-11-04", "DueDate": "2026-12-04",
                "Currency": "USD", "NetCurrAmount": "1250.00", "VatCurrAmount": "100.00",
                "GrossCurrAmount": "1350.00", "PurchaseOrderRef": "PO-55012",
                "ExternalRef": "ledger-1"}
        body.update(fields)
        return await self.post(INVOICE, "PostingProposalHeadSet", body)

    async def add_line(self, invoice: dict[str, Any], etag: str | None, **fields: Any) -> Resp:
        body = {"Account": "6100", "CodeB": "CC210", "CurrAmount": "750.00", "TaxCode": "TX8",
                "TaxCurrAmount": "60.00", "Text": "Hydraulic hoses"}
        body.update(fields)
        return await self.post(INVOICE, invoice_path(invoice) + "/Lines", body, if_match=etag)

    async def full_invoice(self, **fields: Any) -> tuple[dict[str, Any], str]:
        """The sample two-line invoice, created with both lines: (entity, etag)."""
        head = await self.create_invoice(**fields)
        assert head.status == 201, head.text
        inv = head.body
        for line in ({}, {"CodeB": "CC220", "CurrAmount": "500.00", "TaxCurrAmount": "40.00"}):
            r = await self.add_line(inv, head.etag, **line)
            assert r.status == 201, r.text
        return inv, head.etag or ""

    async def create_voucher(self, **fields: Any) -> Resp:
        body = {"Company": "10", "VoucherType": "I", "VoucherDate": "2026-11-04",
                "Currency": "USD", "Text": "INV-2026-0117", "ExternalRef": "ledger-1"}
        body.update(fields)
        return await self.post(VOUCHER, "VoucherSet", body)


def invoice_path(inv: dict[str, Any]) -> str:
    return f"PostingProposalHeadSet(Company='{inv['Company']}',InvoiceId={inv['InvoiceId']})"


def voucher_path(v: dict[str, Any]) -> str:
    return (f"VoucherSet(Company='{v['Company']}',AccountingYear={v['AccountingYear']},"
            f"VoucherType='{v['VoucherType']}',VoucherNo={v['VoucherNo']})")


def tenant_test(**options: Any) -> Callable[[Callable[[Tenant], Awaitable[None]]],
                                            Callable[[], None]]:
    def wrap(fn: Callable[[Tenant], Awaitable[None]]) -> Callable[[], None]:
        def test() -> None:
            async def main() -> None:
                async with IfsEmulator(**options) as emu:
                    async with aiohttp.ClientSession() as session:
                        t = Tenant(emu, session)
                        assert (await t.fetch_token()).status == 200
                        await fn(t)
            asyncio.run(main())
        test.__name__ = fn.__name__
        test.__doc__ = fn.__doc__
        return test
    return wrap


# ---------------------------------------------------------------------- $batch, by hand
def batch_body(items: list[Any], boundary: str = "batch_x") -> bytes:
    """items: a request dict, or a list of request dicts (a changeset). A request dict has
    method, url, optional body, if_match, content_id."""
    def http(req: dict[str, Any]) -> str:
        head = "Content-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n"
        if req.get("content_id"):
            head += f"Content-ID: {req['content_id']}\r\n"
        lines = [f"{req['method']} {req['url']} HTTP/1.1", f"Accept: {JSON_TYPE}"]
        if req.get("if_match"):
            lines.append(f"If-Match: {req['if_match']}")
        payload = ""
        if req.get("body") is not None:
            payload = json.dumps(req["body"])
            lines.append(f"Content-Type: {JSON_TYPE}")
        return head + "\r\n" + "\r\n".join(lines) + "\r\n\r\n" + payload + "\r\n"

    out = []
    for item in items:
        if isinstance(item, list):
            cs = f"changeset_{uuid.uuid4().hex[:8]}"
            inner = "".join(f"--{cs}\r\n" + http(r) for r in item) + f"--{cs}--\r\n"
            out.append(f"--{boundary}\r\nContent-Type: multipart/mixed; boundary={cs}\r\n\r\n"
                       + inner)
        else:
            out.append(f"--{boundary}\r\n" + http(item))
    return ("".join(out) + f"--{boundary}--\r\n").encode()


async def send_batch(t: Tenant, projection: str, items: list[Any], *,
                     continue_on_error: bool = False, body: bytes | None = None) -> Resp:
    headers = {"Content-Type": "multipart/mixed; boundary=batch_x"}
    if continue_on_error:
        headers["Prefer"] = "odata.continue-on-error"
    return await t.call("POST", projection, "$batch", headers=headers,
                        data=body if body is not None else batch_body(items))


def _parts(text: str, boundary: str) -> list[str]:
    chunks = re.split(r"\r?\n?--" + re.escape(boundary) + r"(?:--)?\r?\n?", text)
    return [c for c in chunks[1:] if c.strip()]


def parse_batch(resp: Resp) -> list[Any]:
    """One entry per top-level part: (status, headers, body) for a single response, or a list
    of them for a successful changeset."""
    boundary = resp.headers["Content-Type"].split("boundary=")[1]
    out: list[Any] = []
    for part in _parts(resp.text, boundary):
        head, _, rest = part.partition("\r\n\r\n")
        if "multipart/mixed" in head:
            inner_b = head.split("boundary=")[1].strip()
            out.append([_http(p) for p in _parts(rest, inner_b)])
        else:
            out.append(_http(rest, head))
    return out


def _http(text: str, part_head: str = "") -> tuple[int, dict[str, str], Any]:
    if "Content-Type: application/http" in text.split("\r\n\r\n")[0]:
        part_head, _, text = text.partition("\r\n\r\n")
    status_line, _, rest = text.partition("\r\n")
    head, _, body = rest.partition("\r\n\r\n")
    headers = dict(line.split(": ", 1) for line in head.split("\r\n") if ": " in line)
    for line in part_head.split("\r\n"):
        if line.startswith("Content-ID:"):
            headers["Content-ID"] = line.split(":", 1)[1].strip()
    return int(status_line.split()[1]), headers, json.loads(body) if body.strip() else None
