"""Sessions and CSRF: a signed (HMAC, itsdangerous), expiring, HttpOnly, SameSite=Strict
cookie holding the user, the role and a CSRF token. The signing key lives in the secrets
store as `web.session_key`, made on first use; changing it logs everyone out."""
from __future__ import annotations

import hmac
import secrets
from typing import Any

from aiohttp import web
from itsdangerous import BadSignature, URLSafeTimedSerializer

COOKIE = "mlc_session"
LOGIN_COOKIE = "mlc_login"      # before login: the login form's CSRF token
KEY_NAME = "web.session_key"


def session_key(secret_store: Any) -> str:
    key = secret_store.get(KEY_NAME)
    if not key:
        key = secrets.token_urlsafe(48)
        secret_store.set(KEY_NAME, key)
    return key


class Sessions:
    def __init__(self, key: str, lifetime: float) -> None:
        self.lifetime = lifetime
        self._signer = URLSafeTimedSerializer(key, salt="ml-connector.session")
        self._login = URLSafeTimedSerializer(key, salt="ml-connector.login")

    def read(self, request: web.Request) -> dict[str, Any] | None:
        raw = request.cookies.get(COOKIE)
        if not raw:
            return None
        try:
            data = self._signer.loads(raw, max_age=self.lifetime)
        except BadSignature:         # forged, damaged or expired (SignatureExpired)
            return None
        return data if isinstance(data, dict) and data.get("user") else None

    def start(self, response: web.StreamResponse, request: web.Request, user: str,
              role: str) -> None:
        data = {"user": user, "role": role, "csrf": secrets.token_urlsafe(24)}
        self._set(response, request, COOKIE, self._signer.dumps(data), self.lifetime)
        response.del_cookie(LOGIN_COOKIE, path="/")

    def end(self, response: web.StreamResponse) -> None:
        response.del_cookie(COOKIE, path="/")

    # The login form has no session yet: its CSRF token is a signed random value in a
    # short-lived cookie, echoed by the form.
    def new_login_token(self, request: web.Request) -> tuple[str, str]:
        """(the token for the form, the signed value for the cookie). A valid token already
        held is kept: another tab's (or the favicon's) login page must not void this one."""
        held = request.cookies.get(LOGIN_COOKIE, "")
        try:
            token = self._login.loads(held, max_age=1800)
        except BadSignature:
            token = None
        if not isinstance(token, str):
            token = secrets.token_urlsafe(24)
        return token, self._login.dumps(token)

    def set_login_cookie(self, response: web.StreamResponse, request: web.Request,
                         signed: str) -> None:
        self._set(response, request, LOGIN_COOKIE, signed, 3600)

    def login_token_ok(self, request: web.Request, posted: str) -> bool:
        raw = request.cookies.get(LOGIN_COOKIE, "")
        try:
            expected = self._login.loads(raw, max_age=3600)
        except BadSignature:
            return False
        return isinstance(expected, str) and bool(posted) and \
            hmac.compare_digest(expected, posted)

    @staticmethod
    def csrf_ok(session: dict[str, Any], posted: str) -> bool:
        return bool(posted) and hmac.compare_digest(str(session.get("csrf", "")), posted)

    @staticmethod
    def _set(response: web.StreamResponse, request: web.Request, name: str, value: str,
             max_age: float) -> None:
        # Secure when the browser reached us over TLS (directly or through the proxy).
        secure = request.secure or request.headers.get("X-Forwarded-Proto") == "https"
        response.set_cookie(name, value, max_age=int(max_age), path="/", httponly=True,
                            samesite="Strict", secure=secure)
