"""The OData client: headers, token, rate budget, retries, paging, ETags.

Retry policy (decided by errors.classify, applied here):
- 401: new token, retry once.
- 429 / 423 / 503 (and, for reads only, 504 and lost connections): wait (Retry-After, else
  exponential backoff with full jitter) and retry, a bounded number of times.
- A write whose outcome is unknown (504, connection lost after sending) is never re-sent:
  OutcomeUnknown tells the caller to look the document up first.
- 412: PreconditionFailed; the caller re-reads, re-checks and retries with the new ETag.

One exchange as data (reply, URL encoding, its record): adapters/ifs/exchange.py.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import urljoin

import aiohttp
import orjson
import yarl

from adapters.ifs.auth import TokenProvider
from adapters.ifs.errors import (REAUTH, REREAD, RETRY, UNKNOWN, BadAnswer, OutcomeUnknown,
                                 PreconditionFailed, RedirectRefused, classify, describe,
                                 endpoint_missing, failure, is_odata_error, parse_error)
from adapters.ifs.exchange import (JSON, Reply, Request, encode_path, encode_query,
                                   record_exchange, without_bodies)
from adapters.ifs.guard import CycleGuard, bad_answer, is_breakdown
from adapters.ifs.limiter import Backoff, SlidingWindowLimiter
from adapters.settings import IfsSettings, parse_duration
from ledger.ports import ErpFailure, ErpUnavailable

log = logging.getLogger("ml_connector.ifs")
MAX_PAGE = 5000


class ODataClient:
    def __init__(self, settings: IfsSettings, tokens: TokenProvider,
                 session_getter: Callable[[], aiohttp.ClientSession],
                 limiter: SlidingWindowLimiter, backoff: Backoff, *,
                 sleep: Callable[[float], Any] = asyncio.sleep) -> None:
        self.settings = settings
        self.tokens = tokens
        self._session = session_getter
        self.limiter = limiter
        self.backoff = backoff
        self._sleep = sleep
        self.page_size = max(1, min(settings.page_size, MAX_PAGE))
        self.guard = CycleGuard(settings.breaker_after)  # cycle deadline, circuit breaker
        self.sent = 0                                   # requests sent (for measurements)
        self.sent_by_method: dict[str, int] = {}
        self.by_status: dict[str, int] = {}             # answers by HTTP status ("error": none)

    def service_url(self, projection: str) -> str:
        return (f"{self.settings.base_url.rstrip('/')}/{self.settings.endpoint}"
                f"/ifsapplications/projection/v1/{projection}.svc/")

    def url(self, projection: str, path: str, params: dict[str, str] | None = None) -> str:
        url = self.service_url(projection) + encode_path(path.lstrip("/"))
        return f"{url}?{encode_query(params)}" if params else url

    # ------------------------------------------------------------------ the one send loop

    async def send(self, method: str, url: str, *, what: str, projection: str,
                   body: bytes | None = None, headers: dict[str, str] | None = None,
                   write: bool = False, ok_statuses: tuple[int, ...] = (),
                   record: list[dict[str, Any]] | None = None, expect: str = "json") -> Reply:
        """Send with the retry policy. Returns a 2xx reply (or one in ok_statuses); raises
        ErpFailure, OutcomeUnknown or PreconditionFailed otherwise. `expect` is what a 2xx
        answer must be (guard.bad_answer); anything else is a BadAnswer, never trusted."""
        base_headers = {"Accept": JSON, "OData-Version": "4.0", **(headers or {})}
        if body is not None and "Content-Type" not in base_headers:
            base_headers["Content-Type"] = JSON
        assert base_headers.get("If-Match") != "*", "the connector never switches ETags off"
        request = Request(method, url, what, projection, body, base_headers, write, ok_statuses,
                          record, expect)
        attempt = 0
        reauthed = False
        self.guard.before_request(what)
        while True:
            self.guard.before_try(what)
            token, reply = await self._exchange(request)
            answered = str(reply.status) if isinstance(reply, Reply) else "error"
            self.by_status[answered] = self.by_status.get(answered, 0) + 1
            verdict = (self._lost(request, reply, attempt) if not isinstance(reply, Reply)
                       else self._judge(request, reply, attempt))
            if isinstance(verdict, Reply):
                return verdict
            if verdict == REAUTH:
                log.info("IFS refused the token while %s (HTTP 401); fetching a new one", what)
                self.tokens.invalidate(token)
                if reauthed:
                    assert isinstance(reply, Reply)
                    raise failure("rejected", reply.status, reply.body, projection=projection,
                                  what=f"{what} (a fresh token was refused too: check the "
                                       "client's roles in IFS IAM)", exchanges=record)
                reauthed = True
                continue
            await self._sleep(verdict)
            attempt += 1

    async def _exchange(self, request: Request) -> tuple[str, Reply | BaseException]:
        """One HTTP exchange within the rate budget, recorded: (the token it carried, the
        reply, or the error that left no reply)."""
        slot = await self.limiter.acquire()
        try:
            token = await self.tokens.get()
            sent_headers = {**request.headers, "Authorization": f"Bearer {token}"}
            started = time.monotonic()
            self.sent += 1
            self.sent_by_method[request.method] = self.sent_by_method.get(request.method, 0) + 1
            try:
                # Never follow a redirect: it would carry the token and the body elsewhere.
                async with self._session().request(request.method,
                                                   yarl.URL(request.url, encoded=True),
                                                   data=request.body, headers=sent_headers,
                                                   allow_redirects=False,
                                                   **self._timeout()) as resp:
                    reply: Reply | BaseException = Reply(
                        resp.status, {k.lower(): v for k, v in resp.headers.items()},
                        await resp.read())
            except (aiohttp.ClientError, asyncio.TimeoutError, ConnectionError) as exc:
                reply = exc
        finally:
            self.limiter.release(slot)
        if isinstance(reply, Reply):
            record_exchange(request, reply.status, reply.body, reply.etag, started)
        else:
            record_exchange(request, 0, f"{type(reply).__name__}: {reply}".encode(), "",
                            started)
        return token, reply

    def _lost(self, request: Request, error: BaseException, attempt: int) -> float:
        """No reply: the seconds to wait before the next try, or the error to raise."""
        what = request.what
        # Refused before connecting: nothing reached IFS, a write may be re-sent.
        reached = not isinstance(error, aiohttp.ClientConnectorError)
        self.guard.failed(f"{type(error).__name__} while {what}")
        action = classify(0, None, method=request.method, during_write=request.write and reached)
        if action == UNKNOWN:
            raise OutcomeUnknown(
                f"the connection to IFS was lost while {what} ({type(error).__name__})"
                "; whether IFS applied it is unknown: the connector looks the document "
                "up before sending anything again", exchanges=request.record)
        if attempt >= self.backoff.attempts:
            raise ErpUnavailable("transient", f"IFS could not be reached while {what} "
                                 f"after {attempt + 1} tries: {type(error).__name__} "
                                 f"{error}".strip(), code="CONNECTION",
                                 exchanges=request.record)
        wait = self._capped(self.backoff.wait(attempt))
        log.warning("IFS unreachable while %s (%s); retry %d in %.1fs", what,
                    type(error).__name__, attempt + 1, wait)
        return wait

    def _judge(self, request: Request, reply: Reply, attempt: int) -> Reply | str | float:
        """A reply: itself when it is the answer, REAUTH, the seconds to wait before the next
        try, or the error to raise, by classify()'s verdict."""
        what, url, record = request.what, request.url, request.record
        if 300 <= reply.status < 400:
            raise RedirectRefused(url, reply.headers.get("location", ""), reply.status,
                                  what=what)
        if 200 <= reply.status < 300:
            return self._checked(request, reply, attempt)
        if reply.status in request.ok_statuses:
            return reply
        action = classify(reply.status, reply.body, method=request.method,
                          during_write=request.write)
        if is_breakdown(reply.status, parse_error(reply.body).business_code):
            self.guard.failed(f"HTTP {reply.status} while {what}")
        else:
            self.guard.answered()
        if action == REAUTH:
            return REAUTH
        if action == RETRY:
            # Under a 429 nothing was applied and IFS is fine: within a cycle's deadline,
            # wait for the budget as long as it takes rather than give the work up.
            waits_for_budget = reply.status == 429 and self.guard.remaining() is not None
            if attempt >= self.backoff.attempts and not waits_for_budget:
                code, text = describe(reply.status, reply.body, what=what)
                raise ErpFailure("transient", f"{text} (still failing after {attempt + 1} "
                                 "tries; the connector retries later)", code=code,
                                 status=reply.status, exchanges=record)
            retry_after = Backoff.parse_retry_after(reply.headers.get("retry-after"))
            wait = self._capped(self.backoff.wait(attempt, retry_after))
            if reply.status == 429:
                self.limiter.penalize(wait)
            log.warning("IFS answered HTTP %s %s while %s; retry %d in %.1fs", reply.status,
                        parse_error(reply.body).business_code, what, attempt + 1, wait)
            return wait
        if action == REREAD:
            raise PreconditionFailed(f"IFS says the entity changed since it was read while "
                                     f"{what} (HTTP 412)", exchanges=record)
        if action == UNKNOWN:
            code, text = describe(reply.status, reply.body, what=what)
            raise OutcomeUnknown(f"{text}; whether IFS applied it is unknown: the connector "
                                 "looks the document up before sending anything again",
                                 status=reply.status, code=code, exchanges=record)
        if reply.status == 404 and (request.method == "GET" or not is_odata_error(reply.body)):
            # A collection (or an HTML page) that is not there: the map is wrong.
            raise endpoint_missing(url, 404, what=what, projection=request.projection,
                                   exchanges=record)
        raise failure(action, reply.status, reply.body, what=what,
                      projection=request.projection, exchanges=record)

    def _checked(self, request: Request, reply: Reply, attempt: int) -> Reply | float:
        """A 2xx reply: itself if it is the OData answer expected, else (a proxy's page...)
        the seconds to wait before reading again, or a BadAnswer for a write."""
        ctype = reply.headers.get("content-type", "")
        problem, reply.parsed = bad_answer(reply.status, ctype, reply.body, request.expect)
        if not problem:
            self.guard.answered()
            return reply
        url = request.url
        self.guard.failed(f"HTTP {reply.status} {ctype or '(no content type)'} "
                          f"instead of OData from {url}")
        bad = BadAnswer(
            f"IFS answered HTTP {reply.status} {ctype or '(no content type)'} from {url} "
            f"while {request.what}: {problem}, not the OData answer expected (a proxy or "
            "maintenance page?)" + ("; whether IFS applied the change is unknown: the "
                                   "connector looks the document up before sending "
                                   "anything again" if request.write else ""),
            url=url, content_type=ctype, status=reply.status, exchanges=request.record)
        if request.write or attempt >= self.backoff.attempts:
            raise bad
        wait = self._capped(self.backoff.wait(attempt))
        log.warning("%s; retry %d in %.1fs", bad, attempt + 1, wait)
        return wait

    def _timeout(self) -> dict[str, Any]:
        """A request never outlives the cycle's deadline."""
        remaining = self.guard.remaining()
        if remaining is None:
            return {}
        total = min(parse_duration(self.settings.timeout), max(remaining, 0.001))
        return {"timeout": aiohttp.ClientTimeout(total=total)}

    def _capped(self, wait: float) -> float:
        remaining = self.guard.remaining()
        return wait if remaining is None else min(wait, remaining)

    # ------------------------------------------------------------------ reads

    async def get_entity(self, projection: str, path: str, *, what: str,
                         record: list[dict[str, Any]] | None = None
                         ) -> tuple[dict[str, Any] | None, str]:
        """(entity, ETag), or (None, "") when the entity does not exist.

        A 404 with an OData error body is "not found", whatever its code (IFS says
        ODP_RESOURCE_NOTFOUND, other servers their own), once the entity set itself is known to
        exist; an HTML 404, or one for the entity set too, is a configuration error."""
        url = self.url(projection, path)
        reply = await self.send("GET", url, what=what, projection=projection,
                                ok_statuses=(404,), record=record,
                                expect="entity")
        if reply.status == 404:
            if not is_odata_error(reply.body):
                raise endpoint_missing(url, 404, what=what, projection=projection,
                                       exchanges=record)
            # Servers (IFS too) answer the same 404 for a missing projection or entity set:
            # one read of the collection tells a missing entity from a wrong endpoint map.
            collection = path.split("(", 1)[0]
            probe = await self.send("GET", self.url(projection, collection, {"$top": "0"}),
                                    what=what, projection=projection, ok_statuses=(404,),
                                    record=record)
            if probe.status == 404:
                raise endpoint_missing(self.url(projection, collection), 404, what=what,
                                       projection=projection, exchanges=record)
            return None, ""
        entity = reply.json() or {}
        return entity, reply.etag or entity.get("@odata.etag", "")

    async def pages(self, projection: str, path: str, *, keys: tuple[str, ...], what: str,
                    filter: str = "", select: str = "", top: int | None = None,
                    record: list[dict[str, Any]] | None = None
                    ) -> AsyncIterator[list[dict[str, Any]]]:
        """Every entity of a collection, page by page, in key order.

        Follows `@odata.nextLink` when the server gives one; otherwise advances `$skip`
        (stable `$orderby` on the keys) until `@odata.count` rows have come, or an empty or
        short page. `top` limits the total (for `check` and lookups)."""
        size = min(self.page_size, top) if top else self.page_size
        params = {"$orderby": ",".join(keys), "$top": str(size), "$count": "true"}
        if filter:
            params["$filter"] = filter
        if select:
            params["$select"] = select
        received, count = 0, None
        url = self.url(projection, path, params)
        while True:
            reply = await self.send("GET", url, what=what, projection=projection, record=record,
                                    expect="collection")
            data = reply.json() or {}
            page = data.get("value") or []
            if "@odata.count" in data:
                count = int(data["@odata.count"])
            if page:
                yield page
            received += len(page)
            if top and received >= top:
                return
            next_link = data.get("@odata.nextLink")
            if next_link:
                # A URL reference (RFC 3986 §5): relative to the context URL when there is
                # one (OData JSON format §4.4; it is relative to the service root), else to
                # the request URL.
                base = urljoin(url, data.get("@odata.context") or "")
                url = urljoin(base, next_link)
                continue
            if not page:
                return
            if count is not None and received >= count:
                return
            if count is None and len(page) < size:
                return                                  # a short page: the end
            params = {**params, "$skip": str(received)}
            params.pop("$count", None)
            url = self.url(projection, path, params)

    async def read_all(self, projection: str, path: str, **kwargs: Any) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        async for page in self.pages(projection, path, **kwargs):
            rows.extend(page)
        return rows

    # ------------------------------------------------------------------ writes

    async def write(self, method: str, projection: str, path: str, body: dict[str, Any] | None,
                    *, what: str, if_match: str = "", prefer: str = "",
                    record: list[dict[str, Any]] | None = None
                    ) -> tuple[dict[str, Any] | None, str]:
        """POST/PATCH/DELETE/bound action -> (entity or None, new ETag)."""
        headers = {}
        if if_match:
            headers["If-Match"] = if_match
        if prefer:
            headers["Prefer"] = prefer
        payload = orjson.dumps(body) if body is not None else None
        if payload is None and method == "POST":
            payload = b"{}"                               # actions with no parameters
        reply = await self.send(method, self.url(projection, path), what=what,
                                projection=projection, body=payload, headers=headers,
                                write=True, record=record)
        entity = reply.json() if reply.status != 204 else None
        etag = reply.etag or (entity or {}).get("@odata.etag", "")
        return entity, etag

    async def batch(self, projection: str, body: bytes, headers: dict[str, str], *, what: str
                    ) -> tuple[Reply, dict[str, Any]]:
        """Send one `$batch` body (built with batch.build). -> (reply, the exchange record of
        the $batch without its bodies: each document files its own slice). A failure carries
        that same body-less record, not a copy of every document in the request."""
        local: list[dict[str, Any]] = []
        try:
            reply = await self.send("POST", self.service_url(projection) + "$batch", what=what,
                                    projection=projection, body=body, headers=headers,
                                    write=True, record=local, expect="multipart")
        except ErpFailure as exc:
            exc.exchanges = [without_bodies(x) | {"response_body": x["response_body"][:2000]}
                             for x in local]
            raise
        return reply, without_bodies(local[-1])

    async def metadata(self, projection: str) -> bytes:
        reply = await self.send("GET", self.service_url(projection) + "$metadata",
                                what=f"reading $metadata of {projection}", projection=projection,
                                headers={"Accept": "application/xml"}, expect="")
        return reply.body
