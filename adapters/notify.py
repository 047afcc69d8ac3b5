"""Destinations for notifications: apprise URLs (mailto://, slack://, msteams://, json://,
...), one per line in the secret `notify.urls`. Each is named "#N scheme" wherever it is
shown or recorded; the URL itself holds tokens and is never logged or stored elsewhere."""
from __future__ import annotations

import logging
import re
from typing import Any

from adapters.settings import ConfigError, NotifySettings, parse_duration


class NotifyConfigError(ConfigError):
    """A destination URL that apprise does not take; says which line, not what it holds."""


def parse_urls(text: str) -> list[str]:
    return [line.strip() for line in (text or "").splitlines()
            if line.strip() and not line.strip().startswith("#")]


def _secret_parts(url: str) -> list[str]:
    """Pieces of a URL that may be tokens (userinfo, path, query values), longest first."""
    rest = url.split("://", 1)[-1]
    parts = [p for p in re.split(r"[/:@?&=,]", rest) if len(p) >= 4]
    return sorted(set(parts), key=len, reverse=True)


class AppriseSender:
    def __init__(self, urls: list[str], settings: NotifySettings | None = None) -> None:
        import apprise

        self._apprise = apprise
        timeout = parse_duration(settings.timeout) if settings else 20.0
        self._targets: dict[str, str] = {}            # label -> URL
        self._secrets: list[str] = []
        for number, url in enumerate(urls, 1):
            scheme = url.split("://", 1)[0].lower() if "://" in url else "?"
            label = f"#{number} {scheme}"
            full = url + ("&" if "?" in url else "?") + f"cto={timeout:g}&rto={timeout:g}"
            if not self._new().add(full):
                raise NotifyConfigError(
                    f"notify.urls line {number} ({scheme}://...) is not a destination apprise"
                    " knows; see https://github.com/caronc/apprise/wiki and store the list"
                    " again with `ml-connector secrets set notify.urls`")
            self._targets[label] = full
            self._secrets.extend(_secret_parts(url))

    def _new(self) -> Any:
        return self._apprise.Apprise(asset=self._apprise.AppriseAsset(async_mode=False))

    def destinations(self) -> list[str]:
        return list(self._targets)

    def send(self, subject: str, body: str, only: list[str] | None = None
             ) -> dict[str, str | None]:
        results: dict[str, str | None] = {}
        for label, url in self._targets.items():
            if only is not None and label not in only:
                continue
            # A fresh apprise object per message: a kept one would make the next message to
            # the same destination wait out apprise's per-plugin throttle (5 s for e-mail).
            target = self._new()
            target.add(url)
            with self._apprise.LogCapture(level=logging.WARNING) as captured:
                ok = target.notify(title=subject, body=body)
            results[label] = None if ok else self._why(captured.getvalue())
        return results

    def _why(self, log_text: str) -> str:
        lines = [line.split(" - ", 2)[-1] for line in log_text.splitlines() if line.strip()]
        text = " ".join(" ".join(lines).split())[-300:] or "not delivered"
        for part in self._secrets:
            text = text.replace(part, "***")
        return text
