"""Keycloak-shaped client-credentials token endpoint and bearer-token checks.

Errors use Keycloak's `{"error", "error_description"}` shape and statuses (contract §1).
"""
from __future__ import annotations

import base64
import binascii
import secrets
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

import orjson
from aiohttp import web


class Clock:
    """Monotonic time that tests can move forward instead of sleeping."""

    def __init__(self) -> None:
        self.offset = 0.0

    def now(self) -> float:
        return time.monotonic() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


@dataclass
class Client:
    realm: str
    client_id: str
    secret: str
    service_account: bool = True


@dataclass
class Token:
    client_id: str
    realm: str
    expires_at: float
    uses_left: int | None = None        # fault: dies after this many requests


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _keycloak_error(status: int, error: str, description: str) -> web.Response:
    return web.json_response({"error": error, "error_description": description}, status=status,
                             headers={"Cache-Control": "no-store"})


class Auth:
    def __init__(self, clock: Clock, token_lifetime: int = 180) -> None:
        self.clock = clock
        self.token_lifetime = token_lifetime
        self.realms: dict[str, dict[str, Client]] = {}
        self.tokens: dict[str, Token] = {}
        # Fault: tokens live only this long although expires_in promises token_lifetime.
        self.real_lifetime: float | None = None
        # Fault: tokens die after this many requests (a deterministic early expiry).
        self.real_uses: int | None = None

    def add_client(self, realm: str, client_id: str, secret: str,
                   service_account: bool = True) -> None:
        self.realms.setdefault(realm, {})[client_id] = Client(realm, client_id, secret,
                                                              service_account)

    def add_realm(self, realm: str) -> None:
        self.realms.setdefault(realm, {})

    # ------------------------------------------------------------------ faults
    def revoke_all(self) -> int:
        count = len(self.tokens)
        self.tokens.clear()
        return count

    def expire_early(self, seconds: float | None, uses: int | None = None) -> None:
        """Existing and future tokens die `seconds` from their issue (or now, if sooner), or
        after `uses` requests, whichever comes first; None leaves that limit alone."""
        now = self.clock.now()
        self.real_uses = uses
        if seconds is not None:
            self.real_lifetime = seconds
        for token in self.tokens.values():
            if seconds is not None:
                token.expires_at = min(token.expires_at, now + seconds)
            token.uses_left = uses

    def clear_faults(self) -> None:
        self.real_lifetime = self.real_uses = None

    # ------------------------------------------------------------------ tokens
    def issue(self, client: Client, scope: str, issuer: str) -> dict[str, Any]:
        now = self.clock.now()
        life = self.token_lifetime if self.real_lifetime is None else self.real_lifetime
        wall = int(time.time())
        claims = {"exp": wall + self.token_lifetime, "iat": wall, "jti": secrets.token_hex(8),
                  "iss": issuer, "azp": client.client_id, "typ": "Bearer", "scope": scope,
                  "preferred_username": f"service-account-{client.client_id}"}
        token = ".".join([_b64(b'{"alg":"none","typ":"JWT"}'), _b64(orjson.dumps(claims)),
                          _b64(secrets.token_bytes(24))])
        self.tokens[token] = Token(client.client_id, client.realm, now + life, self.real_uses)
        return {"access_token": token, "expires_in": self.token_lifetime,
                "refresh_expires_in": 0, "token_type": "Bearer", "not-before-policy": 0,
                "scope": scope}

    def check(self, authorization: str | None) -> str | None:
        """None when the bearer token is valid, else why not."""
        if not authorization or not authorization.lower().startswith("bearer "):
            return "missing bearer token"
        token = self.tokens.get(authorization[7:].strip())
        if token is None:
            return "unknown or revoked token"
        if self.clock.now() >= token.expires_at or token.uses_left == 0:
            del self.tokens[authorization[7:].strip()]
            return "token expired"
        if token.uses_left is not None:
            token.uses_left -= 1
        return None

    async def token_endpoint(self, request: web.Request) -> web.Response:
        realm = request.match_info["realm"]
        if realm not in self.realms:
            return _keycloak_error(404, "Realm does not exist", f"Realm {realm} does not exist")
        form: dict[str, str] = {}
        if request.content_type == "application/x-www-form-urlencoded":
            form = {k: str(v) for k, v in (await request.post()).items()}
        grant = form.get("grant_type")
        if not grant:
            return _keycloak_error(400, "invalid_request", "Missing form parameter: grant_type")
        if grant != "client_credentials":
            return _keycloak_error(400, "unsupported_grant_type", "Unsupported grant_type")
        client_id, secret = form.get("client_id"), form.get("client_secret")
        basic = request.headers.get("Authorization", "")
        if basic.lower().startswith("basic "):
            try:
                raw = base64.b64decode(basic[6:].strip(), validate=True).decode()
            except (binascii.Error, UnicodeDecodeError):
                return _keycloak_error(401, "invalid_client", "Invalid client credentials")
            user, _, password = raw.partition(":")
            client_id, secret = unquote(user), unquote(password)   # RFC 6749 §2.3.1
        client = self.realms[realm].get(client_id or "")
        if client is None or not secret or not secrets.compare_digest(
                secret.encode(), client.secret.encode()):
            return _keycloak_error(401, "invalid_client",
                                   "Invalid client or Invalid client credentials")
        if not client.service_account:
            return _keycloak_error(400, "unauthorized_client",
                                   "Client not enabled to retrieve service account")
        issuer = f"{request.scheme}://{request.host}/auth/realms/{realm}"
        scope = form.get("scope") or "openid microprofile-jwt"
        return web.json_response(self.issue(client, scope, issuer),
                                 headers={"Cache-Control": "no-store", "Pragma": "no-cache"})
