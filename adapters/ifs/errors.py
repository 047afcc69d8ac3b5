"""IFS error bodies, and the ONE place where an HTTP status and an IFS code become an action.

`classify` answers what the caller should do with a response:

- a failure kind from ledger.ports.FAILURE_KINDS ("data", "reference", "rejected", "conflict",
  "transient") when the request is finished and failed;
- "retry"   : nothing was applied (or it was a read): wait, then send the same request again;
- "reauth"  : the token was refused: fetch a new one and retry once;
- "reread"  : stale If-Match (412): re-read the entity, re-check, retry with the new ETag;
- "unknown" : a write may or may not have been applied (504, 5xx without an IFS body, a
  connection lost after sending). Never re-send blindly: look the document up first.

IFS reports many database-side validations as HTTP 500 with a business code, so a 500 is not
automatically transient; only the code decides.
"""
from __future__ import annotations

from typing import Any

import msgspec
import orjson

from ledger.ports import ErpFailure, ErpUnavailable

RETRY = "retry"
REAUTH = "reauth"
REREAD = "reread"
UNKNOWN = "unknown"

# Codes that say the reference data is missing or incomplete in IFS: parked as "reference",
# and moved again when a refresh shows the account / cost center / supplier link exists.
_REFERENCE_CODES = frozenset({
    "ACCOUNT_NOT_FOUND", "ACCOUNT_NOT_VALID", "CODE_PART_NOT_FOUND", "CODE_PART_NOT_VALID",
    "SUPPLIER_NOT_FOUND", "SUPPLIER_NOT_CONNECTED", "PO_NOT_FOUND", "CURRENCY_NOT_FOUND",
    "COMPANY_NOT_FOUND", "TAX_CODE_NOT_FOUND", "ODP_RESOURCE_NOTFOUND", "FND_RECORD_NOT_EXIST",
})
# Codes where IFS refuses for a reason outside the document: a person must act in IFS.
_REJECTED_CODES = frozenset({"PERIOD_CLOSED", "ODP_FORBIDDEN", "FND_NO_GRANT",
                             "ODP_NOT_IMPLEMENTED", "ODP_REQUEST_TOO_LARGE",
                             "ODP_MISSING_PRECONDITION"})
_CONFLICT_CODES = frozenset({"FND_RECORD_EXIST", "FND_RECORD_MODIFIED", "ODP_PRECONDITION_FAILED",
                             "FND_RECORD_REMOVED", "FND_STATE_NOT_ALLOWED"})
_LOCK_CODES = frozenset({"FND_LOCKED", "FND_RECORD_LOCKED"})
_TRANSIENT_CODES = frozenset({"MI_MODIFIED_ERROR", "ODP_OPERATION_TIMEOUT"})
# IFS business errors: only these make a 5xx permanent. Any other 5xx (IFS's own internal
# errors, another server's fault such as a database error) is a server fault: transient.
_BUSINESS_CODES = (_REFERENCE_CODES | _REJECTED_CODES | _CONFLICT_CODES) - {
    "ODP_RESOURCE_NOTFOUND", "ODP_FORBIDDEN", "ODP_NOT_IMPLEMENTED", "ODP_REQUEST_TOO_LARGE",
    "ODP_MISSING_PRECONDITION", "ODP_PRECONDITION_FAILED"} | {
    "NOT_BALANCED", "INVALID_ACCOUNTING_YEAR", "FND_MANDATORY", "CURRENCY_ROUNDING",
    "INVALID_INVOICE_TYPE"}


class IfsError(msgspec.Struct, frozen=True):
    """The parts of an IFS error body a person needs."""
    code: str = ""
    message: str = ""
    details: tuple[tuple[str, str], ...] = ()      # (code, message)

    @property
    def business_code(self) -> str:
        """The most specific code: a detail's code beats the generic outer one."""
        for code, _ in self.details:
            if code and not code.startswith("ODP_"):
                return code
        return self.code

    @property
    def text(self) -> str:
        """IFS's own words: the details' messages first (they hold the business text)."""
        details = "; ".join(dict.fromkeys(m for _, m in self.details if m))
        if self.message and self.message != details:
            return f"{details} ({self.message})" if details else self.message
        return details


def _message_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, dict):               # {"lang": "en-US", "value": "..."}
        return str(value.get("value") or value.get("message") or "")
    return "" if value is None else str(value)


def parse_error(body: bytes | str | dict | None) -> IfsError:
    """Any IFS error body (or a non-JSON one) -> IfsError; never raises."""
    data: Any = body
    if isinstance(body, (bytes, str)):
        if not body:
            return IfsError()
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
            return IfsError(message=text.strip()[:500])
    if not isinstance(data, dict):
        return IfsError()
    if "error_description" in data:           # Keycloak shape
        return IfsError(code=str(data.get("error", "")), message=str(data["error_description"]))
    err = data.get("error", data)
    if not isinstance(err, dict):
        return IfsError(message=_message_text(err))
    details = []
    for item in err.get("details") or []:
        if isinstance(item, dict):
            details.append((str(item.get("code") or ""), _message_text(item.get("message"))))
    inner = err.get("innererror")
    if isinstance(inner, dict) and inner.get("message"):
        details.append((str(inner.get("code") or ""), _message_text(inner.get("message"))))
    return IfsError(code=str(err.get("code") or ""), message=_message_text(err.get("message")),
                    details=tuple(details))


def _kind_for_code(code: str) -> str | None:
    if code in _REFERENCE_CODES:
        return "reference"
    if code in _REJECTED_CODES:
        return "rejected"
    if code in _CONFLICT_CODES:
        return "conflict"
    return None


def classify(status: int, body: bytes | str | dict | None, *, method: str,
             during_write: bool) -> str:
    """status 0 = no response (connection refused / reset / timeout).

    during_write: the request was a write that may have reached IFS (False for a connection
    refused before anything was sent, and for every GET).
    """
    write = during_write and method.upper() != "GET"
    if status == 0:
        return UNKNOWN if write else RETRY
    if 200 <= status < 300:
        raise ValueError(f"classify() is for failures, got {status}")
    err = parse_error(body)
    codes = {err.code, *(c for c, _ in err.details)}
    if status == 401:
        return REAUTH
    if status == 403:
        return "rejected"
    if status == 412:
        return REREAD
    if status == 428:
        return "rejected"
    if status == 423 or codes & _LOCK_CODES:
        return RETRY                 # a lock refuses the whole request: nothing applied
    if status == 429:
        return RETRY                 # refused before processing
    if status == 503 or "MI_MODIFIED_ERROR" in codes:
        return RETRY                 # metadata refresh: the request was not run
    if status == 504 or "ODP_OPERATION_TIMEOUT" in codes or status in (502, 599):
        return UNKNOWN if write else RETRY
    if status == 404:
        # ODP_RESOURCE_NOTFOUND: the entity is missing. A 404 without it: the projection or
        # entity set does not exist (the endpoint map is wrong for this tenant).
        return "reference" if "ODP_RESOURCE_NOTFOUND" in codes else "rejected"
    if status == 409:
        return "conflict"
    if status == 501:
        return "rejected"
    business = err.business_code
    if status >= 500:
        if business not in _BUSINESS_CODES:
            # A server fault says nothing about whether a write committed.
            return UNKNOWN if write else RETRY
        return _kind_for_code(business) or "data"
    if 400 <= status < 500:
        return _kind_for_code(business) or "data"
    return "data" if write else RETRY


def describe(status: int, body: bytes | str | dict | None, *, what: str,
             projection: str = "") -> tuple[str, str]:
    """(code, message) for a failed response, keeping IFS's own text."""
    err = parse_error(body)
    code = err.business_code
    text = err.text or f"HTTP {status}"
    if status == 403:
        return code, (f"IFS refused {what}: the connector's IFS user has no grant for projection "
                      f"{projection or '?'} (or for the company) - HTTP 403 {code}: {text}. "
                      f"Grant the permission set for {projection or 'the projection'} to the "
                      f"client's service user in IFS")
    if status == 428:
        return code, f"IFS refused {what}: If-Match was missing (a connector bug) - {text}"
    return code, f"IFS refused {what}: HTTP {status} {code}: {text}".replace("  ", " ")


def failure(kind: str, status: int, body: bytes | str | dict | None, *, what: str,
            projection: str = "", exchanges: list[dict[str, Any]] | None = None) -> ErpFailure:
    code, message = describe(status, body, what=what, projection=projection)
    return ErpFailure(kind, message, code=code, status=status, exchanges=exchanges)


class OutcomeUnknown(ErpFailure):
    """A write was sent but no answer tells whether IFS applied it (504, connection lost after
    sending). Kind "transient" so a caller that does not know this class still waits and
    retries; a caller that does must look the document up (find_posted) before sending again."""

    def __init__(self, message: str, *, status: int = 0, code: str = "",
                 exchanges: list[dict[str, Any]] | None = None) -> None:
        super().__init__("transient", message, code=code or "OUTCOME_UNKNOWN", status=status,
                         exchanges=exchanges)


class PreconditionFailed(Exception):
    """412: the If-Match ETag was stale. The caller re-reads, re-checks and retries."""

    def __init__(self, message: str, exchanges: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.exchanges = exchanges or []


class BadAnswer(OutcomeUnknown):
    """A 2xx answer that is not the OData the call needs: an HTML maintenance or login page
    from a proxy, any body that is not JSON, or JSON without what the call reads (`{}` for an
    entity, no `value` for a collection). Transient: a read is retried with backoff; a write
    answered this way may or may not have been applied, so it is an OutcomeUnknown (looked up
    before anything is sent again)."""

    def __init__(self, message: str, *, url: str, content_type: str, status: int,
                 exchanges: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message, status=status, code="IFS_BAD_ANSWER", exchanges=exchanges)
        self.url = url
        self.content_type = content_type


class RedirectRefused(ErpUnavailable):
    """IFS or its IAM answered 3xx. The connector never follows a redirect (it would carry the
    client secret, the token or a supplier change to another host, and trust that host's
    answers): the configured URL is wrong, or something in front of IFS is. A configuration
    problem for the whole cycle, not for an invoice."""

    def __init__(self, url: str, location: str, status: int, *, what: str = "",
                 who: str = "IFS") -> None:
        doing = f" while {what}" if what else ""
        super().__init__("rejected", f"{who} answered HTTP {status}{doing}: a redirect from {url} "
                         f"to {location or '(no Location)'}; the connector never follows "
                         "redirects: check `ifs.base_url` / `ifs.token_url` (use the address "
                         "the redirect names if it is IFS's own) and any proxy in between",
                         code="IFS_REDIRECT", status=status)
        self.url = url
        self.location = location


def is_odata_error(body: bytes | str | dict | None) -> bool:
    """An OData JSON error body (`{"error": {...}}`), as opposed to an HTML or empty page that a
    web server or gateway answers for a path it does not serve."""
    if isinstance(body, (bytes, str)):
        try:
            body = orjson.loads(body) if body else None
        except orjson.JSONDecodeError:
            return False
    return isinstance(body, dict) and isinstance(body.get("error"), dict)


def endpoint_missing(url: str, status: int, *, what: str, projection: str = "",
                     exchanges: list[dict[str, Any]] | None = None) -> ErpFailure:
    """A 404 for the service or entity set itself: the endpoint map (or base_url / endpoint)
    does not fit this server. A configuration error, never "the entity is missing"."""
    return ErpFailure("rejected", f"IFS has no {url.split('?', 1)[0]} (HTTP {status} while "
                      f"{what}): the projection {projection or '?'} or its entity set does not "
                      "exist there; check `[ifs] base_url` and `endpoint`, and the endpoint map "
                      "(`[ifs.endpoints]`, `ml-connector check` compares it with $metadata)",
                      code="ENDPOINT_NOT_FOUND", status=status, exchanges=exchanges)


def is_business_error(body: bytes | str | dict | None) -> bool:
    """The error names a known IFS business rule (the data is wrong), not the request's form."""
    return parse_error(body).business_code in _BUSINESS_CODES
