"""Client-credentials token from IFS's Keycloak-based IAM, cached and renewed early.

IFS's documented sample lifetime is 180 s and long runs (a backfill, a 5000-row paging) cross
it, so the token is renewed RENEW_EARLY seconds before it expires, and a 401 from OData calls
`invalidate()` and retries once. The secret goes in the form body (`ifs.token_auth = "post"`,
the default) or in an HTTP Basic header (`"basic"`, for an IAM client that only takes
client_secret_basic); it is never logged, recorded in an exchange, or put in a message.
"""
from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Callable
from urllib.parse import quote

import aiohttp
import orjson

from adapters.ifs.errors import RedirectRefused
from adapters.settings import IfsSettings
from ledger.ports import ErpFailure, ErpUnavailable

RENEW_EARLY = 30.0
SCOPE = "openid microprofile-jwt"


def token_url(settings: IfsSettings) -> str:
    if settings.token_url:
        return settings.token_url
    if not settings.realm:
        raise ErpFailure("rejected", "IFS token URL unknown: set `ifs.realm` (the IAM realm, "
                                     "e.g. acme1) or `ifs.token_url` in the configuration",
                         code="CONFIG")
    return f"{settings.base_url.rstrip('/')}/auth/realms/{settings.realm}/protocol/openid-connect/token"


def basic_credentials(client_id: str, secret: str) -> str:
    """RFC 6749 §2.3.1: each part form-encoded before base64 (a ':' or '%' in a secret
    survives). Spaces as %20, which both '+'-aware and plain decoders read as a space."""
    pair = f"{quote(client_id, safe='')}:{quote(secret, safe='')}"
    return "Basic " + base64.b64encode(pair.encode()).decode()


class TokenProvider:
    def __init__(self, settings: IfsSettings, client_secret: str, session_getter,
                 *, clock: Callable[[], float] = time.monotonic) -> None:
        self._settings = settings
        self._secret = client_secret
        self._session_getter = session_getter      # returns the shared aiohttp session
        self._clock = clock
        self._token = ""
        self._expires_at = 0.0
        self._lock = asyncio.Lock()
        self.fetched = 0                            # how many tokens were issued (tests, bench)

    @property
    def url(self) -> str:
        return token_url(self._settings)

    def invalidate(self, token: str | None = None) -> None:
        """Forget the token (after a 401). With `token`, only if it is still the cached one, so
        that several requests failing with the same token fetch one new token, not several."""
        if token is None or token == self._token:
            self._token = ""
            self._expires_at = 0.0

    async def get(self) -> str:
        if self._token and self._clock() < self._expires_at:
            return self._token
        async with self._lock:
            if self._token and self._clock() < self._expires_at:
                return self._token
            await self._fetch()
            return self._token

    async def _fetch(self) -> None:
        client_id = self._settings.client_id
        form = {"grant_type": "client_credentials", "scope": SCOPE}
        headers = {"Accept": "application/json"}
        if self._settings.token_auth == "basic":
            headers["Authorization"] = basic_credentials(client_id, self._secret)
        else:
            form.update(client_id=client_id, client_secret=self._secret)
        url = self.url
        session = self._session_getter()
        try:
            # Never follow a redirect: it would re-send the form (the secret) elsewhere.
            async with session.post(url, data=form, headers=headers,
                                    allow_redirects=False) as resp:
                body = await resp.read()
                status = resp.status
                content_type = resp.headers.get("Content-Type", "")
                location = resp.headers.get("Location", "")
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise ErpUnavailable("transient", f"IFS IAM at {url} could not be reached: "
                                              f"{type(exc).__name__} {exc}".strip(),
                                 code="IAM_UNREACHABLE") from None
        if 300 <= status < 400:
            raise RedirectRefused(url, location, status, what="fetching a token", who="IFS IAM")
        if status != 200:
            raise self._error(status, body, url, content_type)
        try:
            data = orjson.loads(body)
            token = str(data["access_token"])
            lifetime = float(data.get("expires_in") or 60)
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            # A proxy's HTML page or a wrong URL, not a verdict on the client: the cycle stops
            # and tries again next time; no invoice is marked rejected for it.
            raise ErpUnavailable("transient", f"IFS IAM at {url} answered HTTP 200 with "
                                 f"{content_type or 'no content type'} and no access_token "
                                 "(a proxy or maintenance page, or not the token endpoint); "
                                 "check `ifs.token_url` / `ifs.realm`; the connector tries "
                                 "again next cycle", code="IAM_BAD_ANSWER") from None
        # Renew RENEW_EARLY s early, but never use less than half of a short lifetime.
        margin = min(RENEW_EARLY, lifetime / 2)
        self._token = token
        self._expires_at = self._clock() + lifetime - margin
        self.fetched += 1

    def _error(self, status: int, body: bytes, url: str,
               content_type: str = "") -> ErpUnavailable:
        """Every token failure stops the cycle (ErpUnavailable): a refused client is a
        configuration problem, not something to record against each invoice."""
        client = self._settings.client_id
        try:
            data = orjson.loads(body) if body else {}
        except orjson.JSONDecodeError:
            # Not Keycloak speaking (an HTML error page): no verdict on the client.
            return ErpUnavailable("transient", f"IFS IAM at {url} answered HTTP {status} with "
                                  f"{content_type or 'no content type'} instead of a token "
                                  "answer (a proxy or maintenance page?); check "
                                  "`ifs.token_url` / `ifs.realm`; the connector tries again "
                                  "next cycle", code="IAM_BAD_ANSWER", status=status)
        error = str(data.get("error", "")) if isinstance(data, dict) else ""
        description = str(data.get("error_description", "")) if isinstance(data, dict) else ""
        said = f"{error}: {description}" if description else error or f"HTTP {status}"
        if status >= 500 or status == 429:
            return ErpUnavailable("transient", f"IFS IAM at {url} is not answering normally "
                                               f"(HTTP {status}); the connector will retry",
                                  code=error or "IAM_UNAVAILABLE", status=status)
        if error == "invalid_client" or status == 401:
            fix = "check `ml-connector secrets set ifs.client_secret` and `ifs.client_id`"
        elif error == "unauthorized_client":
            fix = (f"enable 'Service accounts' (client credentials) for client '{client}' in "
                   "IFS IAM")
        elif error == "unsupported_grant_type":
            fix = "the IAM refused the client-credentials grant; check `ifs.token_url`"
        elif error == "invalid_scope":
            fix = f"allow the scopes '{SCOPE}' for client '{client}' in IFS IAM"
        elif status == 404:
            return ErpUnavailable("rejected", f"IFS IAM has no realm at {url} (HTTP 404); "
                                              "check `ifs.realm` (or `ifs.token_url`) and "
                                              "`ifs.base_url`",
                                  code=error or "REALM_NOT_FOUND", status=status)
        else:
            fix = "check `ifs.client_id`, `ifs.realm` and the client's settings in IFS IAM"
        return ErpUnavailable("rejected", f"IFS rejected client '{client}' ({said}): {fix}",
                              code=error or "IAM_REJECTED", status=status)
