"""Token, paging, retries and the rate budget over real HTTP against the IFS emulator."""
from __future__ import annotations

import asyncio

import pytest

from adapters.ifs import IfsErp
from adapters.ifs.limiter import Backoff
from adapters.ifs import OutcomeUnknown
from ledger.ports import ErpFailure
from sandbox.ifs.app import IfsEmulator

from .helpers import SECRET, accounts_seed, erp_for, make_invoice, odata_log, run


async def read_supplier(erp):
    """One GET by key (no cache in the way), so request counts are exact."""
    ep = erp.endpoints["supplier"]
    entity, _ = await erp.odata.get_entity(ep.projection, f"{ep.entity_set}(SupplierId='V00231')",
                                           what="reading supplier V00231")
    return entity


def token_requests(emu):
    return [e for e in emu.requests() if e.get("kind") == "token"]


def test_token_is_cached_and_renewed_before_expiry():
    async def body(emu: IfsEmulator, erp: IfsErp):
        for _ in range(5):
            await read_supplier(erp)
        assert erp.tokens.fetched == 1 and len(token_requests(emu)) == 1
        form = token_requests(emu)[0]["body_text"]
        assert "grant_type=client_credentials" in form and "client_secret=***" in form
        emu.advance_clock(155)           # 180 s lifetime, renewed 30 s early: due now
        await read_supplier(erp)
        assert erp.tokens.fetched == 2
        assert not [e for e in odata_log(emu) if e["status"] == 401]   # renewed, not refused

    # The client shares the emulator's clock so that "time passes" without sleeping.
    async def main():
        async with IfsEmulator() as emu:
            erp = erp_for(emu, erp_options={"clock": emu.clock.now})
            try:
                await body(emu, erp)
            finally:
                await erp.close()
    asyncio.run(main())


def test_401_mid_paging_gets_a_new_token_and_loses_no_row():
    async def body(emu, erp):
        emu.seed(accounts_seed(6000))
        ep = erp.endpoints["account"]
        rows = []
        async for page in erp.odata.pages(ep.projection, ep.entity_set, keys=ep.keys,
                                          filter="Company eq '10'", what="reading accounts"):
            rows.extend(page)
            if len(rows) == 1000:
                emu.revoke_tokens()      # the token dies between two pages
        log = odata_log(emu)
        assert [e["status"] for e in log].count(401) == 1
        assert erp.tokens.fetched == 2
        accounts = [r["Account"] for r in rows]
        assert len(accounts) == 6005 and len(set(accounts)) == 6005
    run(body, emulator={"page_size": 1000})


@pytest.mark.parametrize("next_links", [True, False])
def test_paging_over_5000_rows_both_modes(next_links):
    async def body(emu, erp):
        emu.seed(accounts_seed(7000))
        data = await erp.reference.company("10")
        assert len(data.accounts) == 7005
        pages = [e for e in odata_log(emu) if e["path"].endswith("AccountSet")]
        if next_links:
            # $top=5000 window in server pages of 2000 via nextLink, then $skip for the rest
            assert len(pages) == 5
            assert any("$skip" in e["query"] and "$count" in e["query"] for e in pages)
        else:
            assert len(pages) == 4 and all("$orderby" in e["query"] for e in pages)
            assert [e["query"].get("$skip") for e in pages] == [None, "2000", "4000", "6000"]
    run(body, emulator={"page_size": 2000, "next_links": next_links})


def test_paging_full_5000_pages_without_next_links():
    async def body(emu, erp):
        emu.seed(accounts_seed(10_000))
        data = await erp.reference.company("10")
        assert len(data.accounts) == 10_005
        pages = [e for e in odata_log(emu) if e["path"].endswith("AccountSet")]
        assert [e["query"].get("$skip") for e in pages] == [None, "5000", "10000"]
    run(body, emulator={"next_links": False})


def test_read_retries_on_503_423_504():
    async def body(emu, erp):
        emu.mi_modified(2, method="GET")
        emu.locked(1, method="GET")
        emu.gateway_timeout(1, method="GET")
        supplier = await read_supplier(erp)
        assert supplier["Name"] == "Acme Industrial Supply"
        assert [e["status"] for e in odata_log(emu)] == [503, 503, 423, 504, 200]
    run(body)


def test_read_gives_up_after_bounded_retries_as_transient():
    async def body(emu, erp):
        emu.mi_modified(None, method="GET")          # until cleared
        with pytest.raises(ErpFailure) as err:
            await read_supplier(erp)
        assert err.value.kind == "transient" and "MI_MODIFIED_ERROR" in str(err.value)
        assert len(odata_log(emu)) == erp.odata.backoff.attempts + 1
    run(body)


class FakeTime:
    """Clock and sleep for the client: waits advance time instead of passing it."""

    def __init__(self):
        self.now = 1000.0

    def clock(self):
        return self.now

    async def sleep(self, seconds):
        self.now += seconds
        await asyncio.sleep(0)


class RecordingBackoff(Backoff):
    def __init__(self, **kw):
        super().__init__(**kw)
        self.waits: list[float] = []

    def wait(self, attempt, retry_after=None):
        value = super().wait(attempt, retry_after)
        self.waits.append(value)
        return value


def test_429_with_retry_after_is_honoured_and_nothing_lost():
    t = FakeTime()
    backoff = RecordingBackoff(base=0.01, cap=0.05)

    async def body(emu, erp):
        emu.rate_limit_burst(3, retry_after=2, method="GET")
        results = await asyncio.gather(*(read_supplier(erp) for _ in range(6)))
        assert all(r["SupplierId"] == "V00231" for r in results)
        statuses = [e["status"] for e in odata_log(emu)]
        assert statuses.count(429) == 3 and statuses.count(200) == 6
        assert backoff.waits == [2.0, 2.0, 2.0]
        assert t.now >= 1002.0           # the client really held back (on its own clock)
    run(body, erp_options={"sleep": t.sleep, "clock": t.clock, "backoff": backoff})


def test_429_without_retry_after_backs_off_exponentially():
    t = FakeTime()
    backoff = RecordingBackoff(base=0.1, cap=5.0)

    async def body(emu, erp):
        emu.rate_limit_burst(4, retry_after=None, method="GET")
        await read_supplier(erp)
        assert [e["status"] for e in odata_log(emu)] == [429] * 4 + [200]
        assert len(backoff.waits) == 4
        for attempt, wait in enumerate(backoff.waits):   # full jitter: 0 <= w <= base * 2**n
            assert 0 <= wait <= 0.1 * 2 ** attempt
    run(body, erp_options={"sleep": t.sleep, "clock": t.clock, "backoff": backoff})


def test_client_limiter_keeps_under_the_tenant_budget():
    """Tenant budget 20 per second (1000/min scaled down); the client is set to the same 20:
    60 concurrent reads all succeed and the tenant never answers 429."""
    async def body(emu, erp):
        results = await asyncio.gather(*(read_supplier(erp)
                                         for _ in range(60)))
        assert len(results) == 60
        statuses = [e["status"] for e in odata_log(emu)]
        assert statuses.count(429) == 0 and statuses.count(200) == 60
    run(body, emulator={"budget": (20, 1.0)}, requests_per_minute=20,
        erp_options={"limiter_window": 1.0})


def test_over_budget_client_gets_429s_and_loses_nothing():
    """A client configured above the tenant's budget: the tenant's 429 + Retry-After slow it
    down; every request still completes."""
    async def body(emu, erp):
        emu.configure(retry_after=True)
        results = await asyncio.gather(*(read_supplier(erp)
                                         for _ in range(30)))
        assert len(results) == 30
        statuses = [e["status"] for e in odata_log(emu)]
        assert statuses.count(200) == 30 and statuses.count(429) >= 1
    run(body, emulator={"budget": (10, 1.0)}, requests_per_minute=1000,
        erp_options={"backoff": Backoff(base=0.05, cap=0.5, attempts=10, max_retry_after=1.0)})


@pytest.mark.parametrize("secret", ["s3cr:et %2F+ with spaces", "wrong"])
def test_secret_in_an_http_basic_header(secret):
    """ifs.token_auth = "basic": the secret travels only in the Authorization header, each
    part form-encoded (a ':' or '%' in it survives), and a wrong one is refused as usual."""
    async def body(emu, erp):
        emu.auth.add_client("acme1", "basic client", "s3cr:et %2F+ with spaces")
        if secret == "wrong":
            with pytest.raises(ErpFailure, match="invalid_client"):
                await read_supplier(erp)
        else:
            assert (await read_supplier(erp))["SupplierId"] == "V00231"
        sent = token_requests(emu)[0]
        assert sent["headers"]["Authorization"] == "Basic ***"
        assert "client_secret" not in sent["body_text"] and secret not in sent["body_text"]
        assert "grant_type=client_credentials" in sent["body_text"]
    run(body, secret=secret, client_id="basic client", token_auth="basic")


@pytest.mark.parametrize("secret,client,realm,expect", [
    ("wrong-secret", "ml-connector", "acme1",
     "IFS rejected client 'ml-connector' (invalid_client"),
    (SECRET, "no-service-account", "acme1", "enable 'Service accounts'"),
    (SECRET, "ml-connector", "nosuchrealm", "check `ifs.realm`"),
])
def test_token_errors_say_what_to_fix_without_the_secret(secret, client, realm, expect):
    async def body(emu, erp):
        with pytest.raises(ErpFailure) as err:
            await erp.reference.supplier("V00231")
        assert err.value.kind == "rejected"
        assert expect in str(err.value), str(err.value)
        assert secret not in str(err.value)
        if secret == "wrong-secret":
            assert "ml-connector secrets set ifs.client_secret" in str(err.value)
    run(body, secret=secret, client_id=client, realm=realm)


def _closed_port() -> int:
    import socket
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_unreachable_tenant_reads_retry_then_transient_and_refused_writes_are_safe():
    """Connection refused means nothing reached IFS: reads and writes alike are retried (a
    write is only 'unknown' once it may have been sent)."""
    async def body(emu, erp):
        with pytest.raises(ErpFailure) as err:
            await read_supplier(erp)
        assert err.value.kind == "transient" and "could not be reached" in str(err.value)
        assert erp.odata.sent == erp.odata.backoff.attempts + 1
        with pytest.raises(ErpFailure) as err:
            await erp.odata.write("POST", "SupplierHandling", "SupplierInfoGeneralSet",
                                  {"SupplierId": "X", "Name": "X"}, what="creating X")
        assert err.value.kind == "transient" and not isinstance(err.value, OutcomeUnknown)

    async def main():
        async with IfsEmulator() as emu:
            erp = erp_for(emu, base_url=f"http://127.0.0.1:{_closed_port()}",
                          token_url=emu.token_url())
            try:
                await body(emu, erp)
            finally:
                await erp.close()
    asyncio.run(main())


def test_403_names_the_projection():
    async def body(emu, erp):
        emu.add_fault("error", 1, status=403, code="ODP_FORBIDDEN", path="AccountSet",
                      message="You do not have access to this projection.")
        with pytest.raises(ErpFailure) as err:
            await erp.validate(make_invoice([("6100", "CC210", "1.00", "TX8", "0.08")]))
        assert err.value.kind == "rejected" and err.value.status == 403
        assert "projection AccountsHandling" in str(err.value)
        assert "You do not have access" in str(err.value)
    run(body)


def test_tokens_that_expire_early_are_replaced_once_per_401():
    async def body(emu, erp):
        await read_supplier(erp)
        emu.expire_tokens(after=5)           # IFS says 180 s, the tokens die after 5
        emu.advance_clock(10)
        await read_supplier(erp)             # 401 -> new token -> retried once
        assert erp.tokens.fetched == 2
        assert [e["status"] for e in odata_log(emu)] == [200, 401, 200]
        emu.expire_tokens(after=0)           # every token dead on arrival: give up clearly
        with pytest.raises(ErpFailure) as err:
            await read_supplier(erp)
        assert err.value.kind == "rejected" and "a fresh token was refused too" in str(err.value)
        assert [e["status"] for e in odata_log(emu)][-2:] == [401, 401]
    run(body)
