"""The OData client: headers, token, rate budget, retries, paging, ETags, exchange records.

Retry policy (decided by errors.classify, applied here):
- 401: new token, retry once.
- 429 / 423 / 503 (and, for reads only, 504 and lost connections): wait (Retry-After, else
  exponential backoff with full jitter) and retry, a bounded number of times.
- A write whose outcome is unknown (504, connection lost after sending) is never re-sent:
  OutcomeUnknown tells the caller to look the document up first.
- 412: PreconditionFailed; the caller re-reads, re-checks and retries with the new ETag.

Every exchange can be recorded into a list the caller passes (`record=`): method, url,
request headers that matter (never Authorization), request body, status, response body, ETag.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote, urljoin

import aiohttp
import orjson
import yarl

from adapters.ifs.auth import TokenProvider
from adapters.ifs.errors import (REAUTH, REREAD, RETRY, UNKNOWN, BadAnswer, OutcomeUnknown,
                                 PreconditionFailed, RedirectRefused, classify, describe,
                                 endpoint_missing, failure, is_odata_error, parse_error)
from adapters.ifs.guard import CycleGuard, bad_answer, is_breakdown
from adapters.ifs.limiter import Backoff, SlidingWindowLimiter
from adapters.settings import IfsSettings, parse_duration
from ledger.ports import ErpFailure, ErpUnavailable

log = logging.getLogger("ml_connector.ifs")
JSON = "application/json;IEEE754Compatible=true"
MAX_PAGE = 5000
_PATH_SAFE = "/'(),=$.:@-_~!*;+"
_RECORDED_HEADERS = ("If-Match", "Prefer", "Content-Type", "Content-ID")


class Reply:
    __slots__ = ("status", "headers", "body", "parsed")

    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body
        self.parsed: Any = None                 # the JSON, once send() checked it

    def json(self) -> Any:
        if self.parsed is not None:
            return self.parsed
        return orjson.loads(self.body) if self.body.strip() else None

    @property
    def etag(self) -> str:
        return self.headers.get("etag", "")


def encode_path(path: str) -> str:
    """Percent-encode a path (key predicates keep their quotes, commas and parentheses)."""
    return quote(path, safe=_PATH_SAFE)


def encode_query(params: dict[str, str]) -> str:
    return "&".join(f"{k}={quote(str(v), safe=chr(39) + '(),$:/')}" for k, v in params.items())


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
        attempt = 0
        reauthed = False
        base_headers = {"Accept": JSON, "OData-Version": "4.0", **(headers or {})}
        if body is not None and "Content-Type" not in base_headers:
            base_headers["Content-Type"] = JSON
        assert base_headers.get("If-Match") != "*", "the connector never switches ETags off"
        self.guard.before_request(what)
        while True:
            self.guard.before_try(what)
            slot = await self.limiter.acquire()
            error: BaseException | None = None
            try:
                token = await self.tokens.get()
                sent_headers = {**base_headers, "Authorization": f"Bearer {token}"}
                started = time.monotonic()
                self.sent += 1
                self.sent_by_method[method] = self.sent_by_method.get(method, 0) + 1
                try:
                    # Never follow a redirect: it would carry the token and the body elsewhere.
                    async with self._session().request(method, yarl.URL(url, encoded=True),
                                                       data=body, headers=sent_headers,
                                                       allow_redirects=False,
                                                       **self._timeout()) as resp:
                        reply = Reply(resp.status,
                                      {k.lower(): v for k, v in resp.headers.items()},
                                      await resp.read())
                except (aiohttp.ClientError, asyncio.TimeoutError, ConnectionError) as exc:
                    error = exc
            finally:
                self.limiter.release(slot)
            if error is not None:
                # Refused before connecting: nothing reached IFS, a write may be re-sent.
                reached = not isinstance(error, aiohttp.ClientConnectorError)
                self._record(record, method, url, base_headers, body, 0,
                             f"{type(error).__name__}: {error}".encode(), "", started)
                self.guard.failed(f"{type(error).__name__} while {what}")
                action = classify(0, None, method=method, during_write=write and reached)
                if action == UNKNOWN:
                    raise OutcomeUnknown(
                        f"the connection to IFS was lost while {what} ({type(error).__name__})"
                        "; whether IFS applied it is unknown: the connector looks the document "
                        "up before sending anything again", exchanges=record)
                if attempt >= self.backoff.attempts:
                    raise ErpUnavailable("transient", f"IFS could not be reached while {what} "
                                         f"after {attempt + 1} tries: {type(error).__name__} "
                                         f"{error}".strip(), code="CONNECTION",
                                         exchanges=record)
                wait = self._capped(self.backoff.wait(attempt))
                log.warning("IFS unreachable while %s (%s); retry %d in %.1fs", what,
                            type(error).__name__, attempt + 1, wait)
                await self._sleep(wait)
                attempt += 1
                continue
            self._record(record, method, url, base_headers, body, reply.status, reply.body,
                         reply.etag, started)
            if 300 <= reply.status < 400:
                raise RedirectRefused(url, reply.headers.get("location", ""), reply.status,
                                      what=what)
            if 200 <= reply.status < 300:
                ctype = reply.headers.get("content-type", "")
                problem, reply.parsed = bad_answer(reply.status, ctype, reply.body, expect)
                if not problem:
                    self.guard.answered()
                    return reply
                self.guard.failed(f"HTTP {reply.status} {ctype or '(no content type)'} "
                                  f"instead of OData from {url}")
                bad = BadAnswer(
                    f"IFS answered HTTP {reply.status} {ctype or '(no content type)'} from {url} "
                    f"while {what}: {problem}, not the OData answer expected (a proxy or "
                    "maintenance page?)" + ("; whether IFS applied the change is unknown: the "
                                           "connector looks the document up before sending "
                                           "anything again" if write else ""),
                    url=url, content_type=ctype, status=reply.status, exchanges=record)
                if write or attempt >= self.backoff.attempts:
                    raise bad
                wait = self._capped(self.backoff.wait(attempt))
                log.warning("%s; retry %d in %.1fs", bad, attempt + 1, wait)
                await self._sleep(wait)
                attempt += 1
                continue
            if reply.status in ok_statuses:
                return reply
            action = classify(reply.status, reply.body, method=method, during_write=write)
            if is_breakdown(reply.status, parse_error(reply.body).business_code):
                self.guard.failed(f"HTTP {reply.status} while {what}")
            else:
                self.guard.answered()
            if action == REAUTH:
                log.info("IFS refused the token while %s (HTTP 401); fetching a new one", what)
                self.tokens.invalidate(token)
                if reauthed:
                    raise failure("rejected", reply.status, reply.body, projection=projection,
                                  what=f"{what} (a fresh token was refused too: check the "
                                       "client's roles in IFS IAM)", exchanges=record)
                reauthed = True
                continue
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
                await self._sleep(wait)
                attempt += 1
                continue
            if action == REREAD:
                raise PreconditionFailed(f"IFS says the entity changed since it was read while "
                                         f"{what} (HTTP 412)", exchanges=record)
            if action == UNKNOWN:
                code, text = describe(reply.status, reply.body, what=what)
                raise OutcomeUnknown(f"{text}; whether IFS applied it is unknown: the connector "
                                     "looks the document up before sending anything again",
                                     status=reply.status, code=code, exchanges=record)
            if reply.status == 404 and (method == "GET" or not is_odata_error(reply.body)):
                # A collection (or an HTML page) that is not there: the map is wrong.
                raise endpoint_missing(url, 404, what=what, projection=projection,
                                       exchanges=record)
            raise failure(action, reply.status, reply.body, what=what, projection=projection,
                          exchanges=record)

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

    @staticmethod
    def _record(record: list[dict[str, Any]] | None, method: str, url: str,
                headers: dict[str, str], body: bytes | None, status: int, response: bytes,
                etag: str, started: float) -> None:
        if record is None:
            return
        record.append({
            "at": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
            "method": method,
            "url": url,
            "request_headers": {k: v for k, v in headers.items() if k in _RECORDED_HEADERS},
            "request_body": body.decode("utf-8", "replace") if body is not None else None,
            "status": status,
            "response_body": response.decode("utf-8", "replace"),
            "etag": etag,
            "elapsed_ms": round((time.monotonic() - started) * 1000, 1),
        })

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
            exc.exchanges = [_without_bodies(x) | {"response_body": x["response_body"][:2000]}
                             for x in local]
            raise
        return reply, _without_bodies(local[-1])

    async def metadata(self, projection: str) -> bytes:
        reply = await self.send("GET", self.service_url(projection) + "$metadata",
                                what=f"reading $metadata of {projection}", projection=projection,
                                headers={"Accept": "application/xml"}, expect="")
        return reply.body


def _without_bodies(exchange: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in exchange.items() if k not in ("request_body", "response_body")}
