"""Small hostile HTTP servers on loopback, for the IFS adapter's bad-answer tests.

`Hostile(answer)` answers every request with `answer(request)` (a coroutine returning an
aiohttp response) and records what it received, so a test can assert that a server got
nothing (a redirect not followed) or exactly what. `Hostile.forwarding(target, rules)` is a
proxy in front of the IFS emulator that answers the requests a rule matches itself (an HTML
page, a redirect, a hang, `{}`) and forwards the rest. Both run in a test's event loop
(`async with`) or in a thread of their own (`start_in_thread`) for code that calls
`asyncio.run` itself (Runtime.sync_blocking, the CLI).
"""
from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

Answer = Callable[[web.Request], Awaitable[web.StreamResponse]]

HTML = ("<!DOCTYPE html><html><head><title>Service Unavailable</title></head>"
        "<body><h1>Down for maintenance</h1></body></html>")


# ---------------------------------------------------------------- answers


def html_page(status: int = 200) -> Answer:
    async def answer(request: web.Request) -> web.StreamResponse:
        return web.Response(status=status, text=HTML, content_type="text/html")
    return answer


def json_answer(data: Any, status: int = 200) -> Answer:
    async def answer(request: web.Request) -> web.StreamResponse:
        return web.json_response(data, status=status)
    return answer


def redirect(location: str, status: int = 307) -> Answer:
    """A redirect to `location` (+ the request's path when location ends with '/')."""
    async def answer(request: web.Request) -> web.StreamResponse:
        target = location + request.path_qs.lstrip("/") if location.endswith("/") else location
        return web.Response(status=status, headers={"Location": target})
    return answer


def hang(seconds: float = 3600) -> Answer:
    """Accept the request and never answer (within the test's time)."""
    async def answer(request: web.Request) -> web.StreamResponse:
        await asyncio.sleep(seconds)
        return web.Response(status=204)
    return answer


# ---------------------------------------------------------------- the server


@dataclass
class Rule:
    """Answer requests whose path contains `path` (and, if set, whose method is `method`)
    with `answer`, `count` times (None: until removed)."""
    answer: Answer
    path: str = ""
    method: str = ""
    count: int | None = None
    hits: int = 0

    def take(self, request: web.Request) -> bool:
        if self.count is not None and self.hits >= self.count:
            return False
        if self.path not in request.path_qs or (self.method and request.method != self.method):
            return False
        self.hits += 1
        return True


@dataclass
class Hostile:
    answer: Answer | None = None
    target: str = ""                              # forward unmatched requests here
    rules: list[Rule] = field(default_factory=list)
    received: list[dict[str, Any]] = field(default_factory=list)
    base_url: str = ""

    @classmethod
    def forwarding(cls, target: str, *rules: Rule) -> "Hostile":
        return cls(target=target.rstrip("/"), rules=list(rules))

    def add(self, answer: Answer, path: str = "", method: str = "",
            count: int | None = None) -> Rule:
        rule = Rule(answer, path, method, count)
        self.rules.append(rule)
        return rule

    def clear(self) -> None:
        self.rules.clear()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.received.append({"method": request.method, "path": request.path,
                              "query": request.query_string, "body": body,
                              "headers": dict(request.headers)})
        for rule in self.rules:
            if rule.take(request):
                return await rule.answer(request)
        if self.answer is not None:
            return await self.answer(request)
        return await self._forward(request, body)

    async def _forward(self, request: web.Request, body: bytes) -> web.StreamResponse:
        headers = {k: v for k, v in request.headers.items()
                   if k.lower() not in ("host", "content-length", "transfer-encoding")}
        async with aiohttp.ClientSession() as session:
            async with session.request(request.method, self.target + request.path_qs,
                                       data=body or None, headers=headers,
                                       allow_redirects=False) as resp:
                payload = await resp.read()
                kept = {k: v for k, v in resp.headers.items()
                        if k.lower() not in ("content-length", "transfer-encoding",
                                             "content-encoding", "connection", "date",
                                             "server")}
                return web.Response(status=resp.status, body=payload, headers=kept)

    # ------------------------------------------------------------ in the caller's loop

    async def __aenter__(self) -> "Hostile":
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.2)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]   # type: ignore[union-attr]
        self.base_url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._runner.cleanup()

    # ------------------------------------------------------------ in a thread of its own

    def start_in_thread(self) -> "Hostile":
        ready = threading.Event()
        self._loop = asyncio.new_event_loop()

        def run() -> None:
            asyncio.set_event_loop(self._loop)
            self._loop.run_until_complete(self.__aenter__())
            ready.set()
            self._loop.run_forever()
            self._loop.run_until_complete(self.__aexit__())
            self._loop.close()

        self._thread = threading.Thread(target=run, name="hostile-http", daemon=True)
        self._thread.start()
        ready.wait(10)
        return self

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
