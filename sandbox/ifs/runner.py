"""Run the emulator on its own event loop in a background thread, for synchronous callers
(the sandbox command, sync tests). Inspection and fault methods are forwarded to the loop's
thread, so they never race with request handling."""
from __future__ import annotations

import asyncio
import threading
from typing import Any

from .app import IfsEmulator

_FORWARDED = {"state", "requests", "clear_requests", "reset", "seed", "add_fault",
              "rate_limit_burst", "mi_modified", "locked", "gateway_timeout",
              "drop_after_commit", "revoke_tokens", "expire_tokens", "clear_faults",
              "faults_listing", "configure", "config", "advance_clock", "odata_url",
              "token_url"}


class EmulatorThread:
    def __init__(self, **options: Any) -> None:
        self.emulator = IfsEmulator(**options)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="ifs-emulator", daemon=True)
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._host, self._port = "127.0.0.1", 0

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self.emulator.start(self._host, self._port))
        except BaseException as err:        # reported to start()'s caller
            self._error = err
            self._ready.set()
            return
        self._ready.set()
        self._loop.run_forever()
        self._loop.run_until_complete(self.emulator.stop())
        self._loop.close()

    def start(self, host: str = "127.0.0.1", port: int = 0) -> "EmulatorThread":
        self._host, self._port = host, port
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            raise self._error
        return self

    @property
    def base_url(self) -> str:
        assert self.emulator.base_url is not None, "not started"
        return self.emulator.base_url

    def call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """Run fn(*args, **kwargs) on the emulator's loop and return its result."""
        async def run() -> Any:
            return fn(*args, **kwargs)
        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(timeout=30)

    def __getattr__(self, name: str) -> Any:
        if name in _FORWARDED:
            method = getattr(self.emulator, name)
            return lambda *a, **kw: self.call(method, *a, **kw)
        raise AttributeError(name)

    def stop(self) -> None:
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)

    def __enter__(self) -> "EmulatorThread":
        return self.start() if not self._thread.is_alive() else self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_in_thread(host: str = "127.0.0.1", port: int = 0, **options: Any) -> EmulatorThread:
    return EmulatorThread(**options).start(host, port)
