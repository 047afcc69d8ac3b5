"""The `/_emulator/...` HTTP API: inspection, seeding, faults, settings. Same operations as the
Python methods of IfsEmulator, for tests and scripts outside the process."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Awaitable, Callable

import orjson
from aiohttp import web

if TYPE_CHECKING:
    from .app import IfsEmulator

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _json(data: Any, status: int = 200) -> web.Response:
    # Decimals (in logged request bodies) are written as strings.
    return web.Response(status=status, body=orjson.dumps(data, default=str),
                        content_type="application/json")


async def _body(request: web.Request) -> Any:
    raw = await request.read()
    return orjson.loads(raw) if raw.strip() else None


def _guard(fn: Callable[[web.Request], Awaitable[Any]]) -> Handler:
    async def run(request: web.Request) -> web.StreamResponse:
        try:
            result = await fn(request)
        except (ValueError, TypeError, KeyError, orjson.JSONDecodeError) as err:
            return _json({"error": f"{type(err).__name__}: {err}"}, 400)
        return result if isinstance(result, web.StreamResponse) else _json(result)
    return run


def _fault(emu: "IfsEmulator", spec: dict[str, Any]) -> dict[str, Any]:
    spec = dict(spec)
    kind = spec.pop("kind")
    if kind == "revoke_tokens":
        return {"kind": kind, "revoked": emu.revoke_tokens()}
    if kind == "expire_tokens":
        after = None if spec.get("after", 0) is None else float(spec.get("after", 0))
        uses = None if spec.get("uses") is None else int(spec["uses"])
        emu.expire_tokens(after, uses=uses)
        return {"kind": kind, "after": after, "uses": uses}
    if kind == "budget_without_retry_after":
        emu.configure(retry_after=False)
        return {"kind": kind}
    count = spec.pop("count", 1)
    return emu.add_fault(kind, count, **spec)


def _tamper(emu: "IfsEmulator", spec: dict[str, Any]) -> dict[str, Any]:
    """What a person does by hand in IFS, behind the connector's back (for reconciliation
    tests): {"entity": "invoice", "key": {...}, "delete": true} removes a document with its
    children; {"entity": ..., "key": ..., "set": {field: value}} edits fields in place."""
    from .checks import coerce
    from .schema import ENTITIES

    edef = ENTITIES[spec["entity"]]
    key = tuple(coerce(edef, spec["key"])[k] for k in edef.keys)
    row = emu.store.get(edef.name, key)
    if row is None:
        raise KeyError(f"no {edef.name} {spec['key']}")
    if spec.get("delete"):
        emu.store.delete(edef.name, key)
        return {"deleted": spec["key"]}
    changes = coerce(edef, spec.get("set") or {})
    emu.store.put(edef.name, {**row, **changes})
    return {"updated": spec["key"], "fields": sorted(changes)}


def admin_routes(emu: "IfsEmulator") -> list[web.RouteDef]:
    @_guard
    async def state(request: web.Request) -> Any:
        return emu.state()

    @_guard
    async def requests(request: web.Request) -> Any:
        return emu.requests(int(request.query.get("since", "0")))

    @_guard
    async def clear_requests(request: web.Request) -> Any:
        emu.clear_requests()
        return {"cleared": True}

    @_guard
    async def reset(request: web.Request) -> Any:
        body = await _body(request)
        emu.reset(body.get("seed") if isinstance(body, dict) else None)
        return {"reset": True}

    @_guard
    async def seed(request: web.Request) -> Any:
        body = await _body(request)
        if not isinstance(body, dict):
            raise ValueError("the seed must be a JSON object shaped like ifs_seed.toml")
        return {"applied": emu.seed(body)}

    @_guard
    async def faults(request: web.Request) -> Any:
        return emu.faults_listing()

    @_guard
    async def add_faults(request: web.Request) -> Any:
        body = await _body(request)
        specs = body if isinstance(body, list) else [body]
        return [_fault(emu, s) for s in specs]

    @_guard
    async def clear_faults(request: web.Request) -> Any:
        emu.clear_faults()
        return {"cleared": True}

    @_guard
    async def config(request: web.Request) -> Any:
        if request.method == "GET":
            return emu.config()
        body = await _body(request) or {}
        if "budget" in body:
            body["budget"] = tuple(body["budget"])
        return emu.configure(**body)

    @_guard
    async def clock(request: web.Request) -> Any:
        body = await _body(request) or {}
        emu.advance_clock(float(body.get("advance", 0)))
        return {"advanced": float(body.get("advance", 0))}

    @_guard
    async def tamper(request: web.Request) -> Any:
        body = await _body(request)
        return _tamper(emu, body if isinstance(body, dict) else {})

    return [
        web.post("/_emulator/tamper", tamper),
        web.get("/_emulator/state", state),
        web.get("/_emulator/requests", requests),
        web.delete("/_emulator/requests", clear_requests),
        web.post("/_emulator/reset", reset),
        web.post("/_emulator/seed", seed),
        web.get("/_emulator/faults", faults),
        web.post("/_emulator/faults", add_faults),
        web.delete("/_emulator/faults", clear_faults),
        web.get("/_emulator/config", config),
        web.post("/_emulator/config", config),
        web.post("/_emulator/clock", clock),
    ]
