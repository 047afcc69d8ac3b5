"""Keycloak-shaped token endpoint and bearer checks on the OData endpoint."""
from __future__ import annotations

import base64

from .helpers import ACCOUNTS, CLIENT, Tenant, tenant_test


async def _token(t: Tenant, realm: str = "acme1", **kw: object):
    async with t.session.post(t.emu.token_url(realm), **kw) as r:
        return r.status, dict(r.headers), await r.json()


@tenant_test()
async def test_token_form_encoded_and_use(t: Tenant) -> None:
    status, headers, body = await _token(t, data=CLIENT)
    assert status == 200
    assert body["token_type"] == "Bearer" and body["expires_in"] == 180
    assert body["scope"] == "openid microprofile-jwt"
    assert headers["Cache-Control"] == "no-store"
    t.token = body["access_token"]
    assert (await t.get(ACCOUNTS, "AccountSet")).status == 200


@tenant_test()
async def test_token_with_http_basic_secret(t: Tenant) -> None:
    basic = base64.b64encode(b"ml-connector:sandbox-secret").decode()
    status, _, body = await _token(t, data={"grant_type": "client_credentials"},
                                   headers={"Authorization": f"Basic {basic}"})
    assert status == 200 and body["access_token"]


@tenant_test()
async def test_token_errors_have_keycloak_shape(t: Tenant) -> None:
    cases = [
        ({**CLIENT, "client_secret": "wrong"}, 401, "invalid_client"),
        ({**CLIENT, "client_id": "nobody"}, 401, "invalid_client"),
        ({**CLIENT, "grant_type": "password"}, 400, "unsupported_grant_type"),
        ({**CLIENT, "client_id": "no-service-account"}, 400, "unauthorized_client"),
    ]
    for form, want_status, want_error in cases:
        status, _, body = await _token(t, data=form)
        assert (status, body["error"]) == (want_status, want_error), form
        assert body["error_description"]
    status, _, body = await _token(t, realm="acme2", data=CLIENT)
    assert status == 404 and body["error"] == "Realm does not exist"


@tenant_test()
async def test_odata_needs_a_valid_bearer_token(t: Tenant) -> None:
    good = t.token
    t.token = ""
    r = await t.get(ACCOUNTS, "AccountSet")
    assert r.status == 401 and "Bearer" in r.headers["WWW-Authenticate"]
    t.token = "not-a-token"
    assert (await t.get(ACCOUNTS, "AccountSet")).status == 401
    t.token = good
    assert (await t.get(ACCOUNTS, "AccountSet")).status == 200


@tenant_test()
async def test_token_expires_after_its_lifetime(t: Tenant) -> None:
    t.emu.advance_clock(170)
    assert (await t.get(ACCOUNTS, "AccountSet")).status == 200
    t.emu.advance_clock(11)
    assert (await t.get(ACCOUNTS, "AccountSet")).status == 401
    assert (await t.fetch_token()).status == 200
    assert (await t.get(ACCOUNTS, "AccountSet")).status == 200


@tenant_test(token_lifetime=30)
async def test_configurable_lifetime_is_reported(t: Tenant) -> None:
    r = await t.fetch_token()
    assert r.body["expires_in"] == 30
    t.emu.advance_clock(31)
    assert (await t.get(ACCOUNTS, "AccountSet")).status == 401


@tenant_test()
async def test_tokens_expiring_early_and_revoked(t: Tenant) -> None:
    t.emu.expire_tokens(after=5)
    r = await t.fetch_token()
    assert r.body["expires_in"] == 180          # the promise the token does not keep
    t.emu.advance_clock(6)
    assert (await t.get(ACCOUNTS, "AccountSet")).status == 401
    t.emu.clear_faults()
    await t.fetch_token()
    t.emu.advance_clock(6)
    assert (await t.get(ACCOUNTS, "AccountSet")).status == 200
    assert t.emu.revoke_tokens() >= 1
    assert (await t.get(ACCOUNTS, "AccountSet")).status == 401


@tenant_test()
async def test_tokens_expiring_after_a_number_of_uses(t: Tenant) -> None:
    t.emu.expire_tokens(after=None, uses=2)
    await t.fetch_token()
    assert (await t.get(ACCOUNTS, "AccountSet")).status == 200
    assert (await t.get(ACCOUNTS, "AccountSet")).status == 200
    assert (await t.get(ACCOUNTS, "AccountSet")).status == 401   # the third use
    await t.fetch_token()                                         # a new one lives again
    assert (await t.get(ACCOUNTS, "AccountSet")).status == 200
    t.emu.clear_faults()
    await t.fetch_token()
    for _ in range(3):
        assert (await t.get(ACCOUNTS, "AccountSet")).status == 200


@tenant_test(budget=(2, 60.0))
async def test_token_requests_do_not_use_the_budget(t: Tenant) -> None:
    for _ in range(5):
        assert (await t.fetch_token()).status == 200
    assert (await t.get(ACCOUNTS, "AccountSet")).status == 200
    assert (await t.get(ACCOUNTS, "AccountSet")).status == 200
    assert (await t.get(ACCOUNTS, "AccountSet")).status == 429
