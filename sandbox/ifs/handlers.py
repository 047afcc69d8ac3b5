"""aiohttp handlers: the OData endpoint (budget, faults, auth, dispatch, drops), the token
endpoint, and the request log both feed."""
from __future__ import annotations

import datetime as dt
import json
import re
from decimal import Decimal
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from aiohttp import web

from .batch import BatchRunner, encode_body
from .errors import ODataError, not_found
from .faults import WRITE_METHODS, Fault, fault_body
from .odata import JSON_TYPE, Op, Result, error_result

if TYPE_CHECKING:
    from .app import IfsEmulator

ODATA_PATH = re.compile(
    r"^/(?P<endpoint>int|main)/ifsapplications/projection/v1/(?P<projection>[A-Za-z0-9_]+)"
    r"\.svc(?P<rest>/.*)?$", re.S)
_BODY_TEXT_LIMIT = 100_000


def _redact(headers: Any) -> dict[str, str]:
    out = {}
    for name, value in headers.items():
        if name.lower() == "authorization":
            value = value.split(" ", 1)[0] + " ***"
        out[str(name)] = str(value)
    return out


def _parsed(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw, parse_float=Decimal)
    except (ValueError, UnicodeDecodeError):
        return None


class Handlers:
    def __init__(self, emu: "IfsEmulator") -> None:
        self.emu = emu

    # ------------------------------------------------------------------ request log
    def record(self, method: str, path: str, query: dict[str, str], headers: Any, raw: bytes,
               status: int, **extra: Any) -> dict[str, Any]:
        text = raw.decode("utf-8", "replace")
        entry = {"seq": next(self.emu._seq), "time": dt.datetime.now(dt.timezone.utc).isoformat(),
                 "method": method, "path": path, "query": query, "status": status,
                 "headers": _redact(headers), "body": _parsed(raw),
                 "body_text": text[:_BODY_TEXT_LIMIT], "dropped": False, "fault": None,
                 "batch": None, **extra}
        self.emu.log.append(entry)
        return entry

    # ------------------------------------------------------------------ token endpoint
    async def token(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        form = dict(parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True))
        if "client_secret" in form:
            form["client_secret"] = "***"
        safe = "&".join(f"{k}={v}" for k, v in form.items()).encode()
        fault = self.emu.faults.take(request.method, request.path_qs, odata=False)
        if fault is not None:
            response = self._fault_response(fault)
        else:
            response = await self.emu.auth.token_endpoint(request)
        self.record(request.method, request.path, dict(request.query), request.headers, safe,
                    response.status, kind="token", fault=fault.kind if fault else None)
        return response

    # ------------------------------------------------------------------ OData
    async def odata(self, request: web.Request) -> web.StreamResponse:
        emu = self.emu
        raw = await request.read()
        query = dict(request.query)
        log = {"kind": "odata"}
        m = ODATA_PATH.match(request.path)
        if m is None:
            return self._send(request, error_result(not_found(request.path)), raw, query, log)
        wait = emu.budget.admit()
        if wait is not None:
            headers = {"Retry-After": str(wait)} if emu.budget.send_retry_after else {}
            result = Result(429, {"error": {"code": "ODP_TOO_MANY_REQUESTS", "message":
                                            "The rate limit of the tenant is exceeded."}},
                            headers)
            return self._send(request, result, raw, query, {**log, "fault": "budget"})
        fault = emu.faults.take(request.method, request.path_qs)
        if fault is not None:
            status, body, headers = fault_body(fault)
            return self._send(request, Result(status, body, headers), raw, query,
                              {**log, "fault": fault.kind})
        why = emu.auth.check(request.headers.get("Authorization"))
        if why is not None:
            result = Result(401, {"error": {"code": "ODP_UNAUTHORIZED", "message":
                                            f"Authentication failed: {why}."}},
                            {"WWW-Authenticate": 'Bearer error="invalid_token", '
                                                 f'error_description="{why}"'})
            return self._send(request, result, raw, query, log)
        root = f"{request.scheme}://{request.host}/{m['endpoint']}/ifsapplications/" \
               f"projection/v1/{m['projection']}.svc/"
        op = Op(request.method, m["projection"], (m["rest"] or "").lstrip("/"), query,
                {k.lower(): v for k, v in request.headers.items()}, raw, root)
        if op.path == "$batch":
            return await self._batch(request, op, raw, query, log)
        result = emu.odata.handle(op)
        drop = None
        if request.method in WRITE_METHODS and result.wrote:
            drop = emu.faults.take_drop(request.method, request.path_qs)
        return self._send(request, result, raw, query, log, drop=drop)

    async def _batch(self, request: web.Request, op: Op, raw: bytes, query: dict[str, str],
                     log: dict[str, Any]) -> web.StreamResponse:
        if op.method != "POST":
            return self._send(request, error_result(ODataError(
                405, "ODP_METHOD_NOT_ALLOWED", "$batch needs POST.")), raw, query, log)
        emu = self.emu
        outer_seq = next(emu._seq)     # inner operations point at the batch's entry
        drops: list[Fault] = []
        wrote: list[bool] = []

        def before(inner: Op) -> Result | None:
            # Path-scoped faults may hit one operation; unscoped ones already had their
            # chance at the whole $batch request.
            fault = emu.faults.take(inner.method, inner.service_root + inner.path,
                                    scoped_only=True)
            if fault is None:
                return None
            status, body, headers = fault_body(fault)
            return Result(status, body, headers)

        def after(inner: Op, result: Result, meta: dict[str, Any]) -> None:
            self.record(inner.method, inner.path, inner.query, inner.headers, inner.body,
                        result.status, kind="batch-operation", batch=outer_seq, **meta)

        def committed(ops: list[Op]) -> None:
            wrote.append(True)
            for inner in ops:
                drop = emu.faults.take_drop(inner.method, inner.service_root + inner.path)
                if drop is not None:
                    drops.append(drop)

        try:
            result = BatchRunner(emu.odata, before, after, committed).run(op)
        except ODataError as err:
            result = error_result(err)
        outer_drop = emu.faults.take_drop(op.method, request.path_qs) \
            if wrote and not drops else None
        drop = drops[0] if drops else outer_drop
        summary = f"<multipart/mixed $batch, {len(raw)} bytes>".encode()
        return self._send(request, result, summary, query, {**log, "seq": outer_seq},
                          drop=drop)

    # ------------------------------------------------------------------ responses
    @staticmethod
    def _fault_response(fault: Fault) -> web.Response:
        status, body, headers = fault_body(fault)
        return web.Response(status=status, body=json.dumps(body).encode(),
                            headers={**headers, "Content-Type": "application/json"})

    def _send(self, request: web.Request, result: Result, raw: bytes, query: dict[str, str],
              log: dict[str, Any], drop: Fault | None = None) -> web.StreamResponse:
        seq = log.pop("seq", None)
        entry = self.record(request.method, request.path, query, request.headers, raw,
                            result.status, **log)
        if seq is not None:
            entry["seq"] = seq
        if drop is not None:
            # The write is committed; the client never hears about it.
            entry["dropped"], entry["fault"] = True, "drop"
            transport = request.transport
            if transport is not None:
                transport.abort()
            return web.Response(status=result.status)   # goes nowhere: the socket is gone
        headers = {"OData-Version": "4.0", **result.headers}
        body = encode_body(result)
        if body:
            headers["Content-Type"] = result.content_type if result.body is not None \
                else JSON_TYPE
        return web.Response(status=result.status, body=body or None, headers=headers)
