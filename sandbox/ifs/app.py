"""The IFS Cloud emulator server object: Python API for tests, aiohttp app, lifecycle."""
from __future__ import annotations

import itertools
from collections import deque
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from aiohttp import web

from . import seed as seeding
from .admin import admin_routes
from .auth import Auth, Clock
from .faults import Budget, Faults
from .handlers import Handlers
from .odata import OData
from .store import Store

SeedSource = str | Path | dict[str, Any] | None


class IfsEmulator:
    """An emulated IFS Cloud tenant on 127.0.0.1.

    `async with IfsEmulator() as emu:` serves on a free port; `emu.base_url` is the tenant's
    base URL (`{base_url}/int/ifsapplications/projection/v1/...`, token URL under `/auth`).
    Every inspection and fault method is synchronous and must be called on the emulator's
    event loop (use `EmulatorThread` from other threads).
    """

    def __init__(self, seed: SeedSource = seeding.DEFAULT_SEED, *,
                 budget: tuple[int, float] = (1000, 60.0), page_size: int = 5000,
                 next_links: bool = True, token_lifetime: int = 180,
                 log_limit: int = 200_000, deep_insert: bool = False) -> None:
        self.clock = Clock()
        self.store = Store()
        self.auth = Auth(self.clock, token_lifetime)
        self.faults = Faults()
        self.budget = Budget(self.clock, budget[0], float(budget[1]))
        # deep_insert: take a header's children inline in its create (standard OData; off by
        # default, as the contract names no deep insert for IFS: the children are refused).
        self.settings = SimpleNamespace(page_size=page_size, next_links=next_links,
                                        deep_insert=deep_insert)
        self.odata = OData(self.store, self.settings)
        self.log: deque[dict[str, Any]] = deque(maxlen=log_limit)
        self._seq = itertools.count(1)
        self._seed = seeding.load(seed)
        seeding.apply(self.store, self.auth, self._seed)
        self.base_url: str | None = None
        self._runner: web.AppRunner | None = None

    # ------------------------------------------------------------------ lifecycle
    def make_app(self) -> web.Application:
        handlers = Handlers(self)
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/auth/realms/{realm}/protocol/openid-connect/token",
                            handlers.token)
        app.add_routes(admin_routes(self))
        app.router.add_route("*", "/{tail:.*}", handlers.odata)
        return app

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError("the emulator binds to loopback only")
        self._runner = web.AppRunner(self.make_app(), access_log=None,
                                     handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        server = site._server
        assert server is not None and server.sockets
        bound = server.sockets[0].getsockname()[1]
        self.base_url = f"http://{host}:{bound}"
        return self.base_url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> "IfsEmulator":
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ------------------------------------------------------------------ URLs
    def odata_url(self, projection: str, endpoint: str = "int") -> str:
        """The service root of a projection, ending with `/`."""
        return f"{self.base_url}/{endpoint}/ifsapplications/projection/v1/{projection}.svc/"

    def token_url(self, realm: str = "acme1") -> str:
        return f"{self.base_url}/auth/realms/{realm}/protocol/openid-connect/token"

    # ------------------------------------------------------------------ inspection
    def state(self) -> dict[str, Any]:
        """Every document and reference row, rendered as the OData API renders them."""
        return self.store.dump()

    def requests(self, since: int = 0) -> list[dict[str, Any]]:
        """Logged requests with seq > since (each $batch operation is its own entry)."""
        return sorted((e for e in self.log if e["seq"] > since), key=lambda e: e["seq"])

    def clear_requests(self) -> None:
        self.log.clear()

    def reset(self, seed: SeedSource = None) -> None:
        """Back to a freshly seeded tenant (the original seed unless one is given): documents,
        reference data, faults, request log and budget window. Issued tokens stay valid."""
        if seed is not None:
            self._seed = seeding.load(seed)
        tokens = dict(self.auth.tokens)
        self.store.clear()
        self.auth.realms.clear()
        seeding.apply(self.store, self.auth, self._seed)
        self.auth.tokens.update(tokens)
        self.clear_faults()
        self.log.clear()
        self.budget.reset()

    def seed(self, data: SeedSource) -> dict[str, int]:
        """Add or modify reference data at runtime (same shape as the seed file)."""
        return seeding.apply(self.store, self.auth, seeding.load(data))

    # ------------------------------------------------------------------ faults
    def add_fault(self, kind: str, count: int | None = 1, **options: Any) -> dict[str, Any]:
        """kind: rate_limit, mi_modified, locked, timeout, error (needs status), drop.
        options: method, path (substring), status, code, message, retry_after."""
        fault = self.faults.add(kind, count, **options)
        return self.faults.listing()[-1] if fault else {}

    def rate_limit_burst(self, count: int, retry_after: int | None = 1,
                         **match: Any) -> dict[str, Any]:
        return self.add_fault("rate_limit", count, retry_after=retry_after, **match)

    def mi_modified(self, count: int = 1, **match: Any) -> dict[str, Any]:
        return self.add_fault("mi_modified", count, **match)

    def locked(self, count: int = 1, **match: Any) -> dict[str, Any]:
        return self.add_fault("locked", count, **match)

    def gateway_timeout(self, count: int = 1, **match: Any) -> dict[str, Any]:
        return self.add_fault("timeout", count, **match)

    def drop_after_commit(self, count: int = 1, method: str | None = None,
                          path: str | None = None) -> dict[str, Any]:
        """The next `count` matching successful writes commit, then the connection drops."""
        return self.add_fault("drop", count, method=method, path=path)

    def revoke_tokens(self) -> int:
        return self.auth.revoke_all()

    def expire_tokens(self, after: float | None = 0.0, uses: int | None = None) -> None:
        """Tokens (existing and new) die `after` seconds after issue, or after `uses` requests,
        whatever expires_in says (None: no such limit)."""
        self.auth.expire_early(after, uses)

    def clear_faults(self) -> None:
        self.faults.clear()
        self.auth.clear_faults()
        self.budget.send_retry_after = True

    def faults_listing(self) -> list[dict[str, Any]]:
        return self.faults.listing()

    # ------------------------------------------------------------------ settings
    def configure(self, *, budget: tuple[int, float] | None = None,
                  page_size: int | None = None, next_links: bool | None = None,
                  token_lifetime: int | None = None,
                  retry_after: bool | None = None,
                  deep_insert: bool | None = None) -> dict[str, Any]:
        """Change limits at runtime. retry_after=False: budget 429s omit Retry-After;
        deep_insert=True: creates take their children inline."""
        if budget is not None:
            self.budget.limit, self.budget.window = int(budget[0]), float(budget[1])
        if page_size is not None:
            self.settings.page_size = int(page_size)
        if next_links is not None:
            self.settings.next_links = bool(next_links)
        if token_lifetime is not None:
            self.auth.token_lifetime = int(token_lifetime)
        if retry_after is not None:
            self.budget.send_retry_after = bool(retry_after)
        if deep_insert is not None:
            self.settings.deep_insert = bool(deep_insert)
        return self.config()

    def config(self) -> dict[str, Any]:
        return {"budget": [self.budget.limit, self.budget.window],
                "page_size": self.settings.page_size, "next_links": self.settings.next_links,
                "token_lifetime": self.auth.token_lifetime,
                "retry_after": self.budget.send_retry_after,
                "deep_insert": self.settings.deep_insert}

    def advance_clock(self, seconds: float) -> None:
        """Move the emulator's clock (token expiry, rate window) without sleeping."""
        self.clock.advance(seconds)
