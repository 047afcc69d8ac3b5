"""A few lines of aiohttp in front of CAP: the IAM token endpoint CAP does not have, a request
log, `@odata.nextLink` rewritten to the absolute or root-relative form (CAP writes relative
ones), and "commit, then drop the reply" for chosen requests."""
from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from urllib.parse import urljoin, urlsplit

import aiohttp
import orjson
from aiohttp import web

TOKEN = "cap-interop-token"
_HOP = {"host", "content-length", "transfer-encoding", "connection", "keep-alive"}


class Front:
    def __init__(self, upstream: str, client_secret: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.secret = client_secret
        self.requests: list[dict] = []
        self.next_link = "relative"           # "relative" (as CAP sends) | "absolute" | "root"
        self.drop: Callable[[str, str, bytes], bool] | None = None   # (method, path, body)
        self.dropped = 0
        # Someone else changes the entity just before the connector's request reaches CAP:
        # (method, path) -> the change to apply first, as (method, path, json body), or None.
        self.interfere: Callable[[str, str], tuple[str, str, dict] | None] | None = None
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="cap-front")
        self.url = ""

    # ------------------------------------------------------------------ handlers

    async def _token(self, request: web.Request) -> web.Response:
        form = await request.post()
        if form.get("grant_type") != "client_credentials" or form.get("client_secret") != self.secret:
            return web.json_response({"error": "invalid_client",
                                      "error_description": "Invalid client credentials"}, status=401)
        return web.json_response({"access_token": TOKEN, "expires_in": 180,
                                  "token_type": "Bearer", "scope": "openid"})

    async def _proxy(self, request: web.Request) -> web.StreamResponse:
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            return web.json_response({"error": {"code": "401", "message": "Unauthorized"}},
                                     status=401)
        body = await request.read()
        change = self.interfere(request.method, request.path) if self.interfere else None
        if change is not None:
            self.interfere = None
            method, path, data = change
            async with self._session.get(self.upstream + path) as current:
                etag = current.headers.get("ETag", "")
            async with self._session.request(method, self.upstream + path, json=data,
                                             headers={"If-Match": etag}) as up:
                assert up.status < 300, await up.text()
        headers = {k: v for k, v in request.headers.items()
                   if k.lower() not in _HOP and k.lower() != "authorization"}
        async with self._session.request(request.method, self.upstream + request.path_qs,
                                         data=body or None, headers=headers,
                                         allow_redirects=False) as up:
            payload = await up.read()
            status, out_headers = up.status, {k: v for k, v in up.headers.items()
                                              if k.lower() not in _HOP}
        self.requests.append({"method": request.method, "path": request.path_qs,
                              "status": status, "if_match": request.headers.get("If-Match", ""),
                              "body": body.decode("utf-8", "replace")})
        if self.drop is not None and self.drop(request.method, request.path, body):
            self.drop = None
            self.dropped += 1
            request.transport.close()         # committed upstream; the client never hears
            return web.Response(status=204)
        if self.next_link != "relative" and b"@odata.nextLink" in payload:
            payload = self._rewrite(str(request.url), payload)
        return web.Response(status=status, body=payload, headers=out_headers)

    def _rewrite(self, request_url: str, payload: bytes) -> bytes:
        data = orjson.loads(payload)
        absolute = urljoin(request_url, data["@odata.nextLink"])
        if self.next_link == "root":
            parts = urlsplit(absolute)
            absolute = parts.path + (f"?{parts.query}" if parts.query else "")
        data["@odata.nextLink"] = absolute
        return orjson.dumps(data)

    # ------------------------------------------------------------------ lifecycle

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._start())
        self._ready.set()
        self._loop.run_forever()
        self._loop.run_until_complete(self._runner.cleanup())
        self._loop.run_until_complete(self._session.close())

    async def _start(self) -> None:
        self._session = aiohttp.ClientSession()
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/auth/token", self._token)
        app.router.add_route("*", "/{tail:.*}", self._proxy)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"

    def start(self) -> Front:
        self._thread.start()
        self._ready.wait(30)
        return self

    def stop(self) -> None:
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
