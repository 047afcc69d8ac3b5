"""Real servers on loopback that notifications are sent to: an SMTP server (aiosmtpd) and a
small JSON webhook receiver (aiohttp), each keeping what it received."""
from __future__ import annotations

import asyncio
import email
import email.policy
import socket
import threading
from typing import Any

from aiohttp import web
from aiosmtpd.controller import Controller


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class SmtpReceiver:
    def __init__(self) -> None:
        self.messages: list[email.message.EmailMessage] = []
        self.port = free_port()
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(email.message_from_bytes(envelope.content,
                                                      policy=email.policy.default))
        return "250 OK"

    def url(self) -> str:
        return (f"mailto://127.0.0.1:{self.port}?from=connector@example.com"
                "&to=ap-lead@example.com&mode=insecure")

    def text(self, index: int) -> str:
        message = self.messages[index]
        part = message.get_body(preferencelist=("plain", "html"))
        return part.get_content() if part is not None else ""

    def __enter__(self) -> SmtpReceiver:
        self._controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._controller.stop()


class JsonReceiver:
    """POST /hook: keeps each JSON body; answers `status` (500 to refuse) while set."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.status = 200
        self.port = free_port()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    async def _hook(self, request: web.Request) -> web.Response:
        if self.status != 200:
            return web.Response(status=self.status, text="refused")
        self.received.append(await request.json())
        return web.json_response({"ok": True})

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        app = web.Application()
        app.router.add_post("/hook", self._hook)
        self._runner = web.AppRunner(app)
        self._loop.run_until_complete(self._runner.setup())
        self._loop.run_until_complete(web.TCPSite(self._runner, "127.0.0.1", self.port).start())
        self._ready.set()
        self._loop.run_forever()
        self._loop.run_until_complete(self._runner.cleanup())

    def url(self) -> str:
        return f"json://127.0.0.1:{self.port}/hook?token=s3cr3t-hook-token"

    def __enter__(self) -> JsonReceiver:
        self._thread.start()
        self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
