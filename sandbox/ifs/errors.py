"""IFS-shaped OData errors.

IFS answers errors as `{"error": {"code", "message", "details": [...]}}`. Real tenants vary the
shape: `message` is sometimes `{"lang", "value"}`, the business text often sits only in
`details[].message`, and many database-side validations come back as HTTP 500. The emulator
reproduces each of these shapes (fixed per error code) so the client has to parse all of them.
"""
from __future__ import annotations

from typing import Any

# Business codes IFS reports from the database layer as HTTP 500 (contract §6).
_AS_500 = {"ACCOUNT_NOT_FOUND", "ACCOUNT_NOT_VALID", "SUPPLIER_NOT_CONNECTED", "PERIOD_CLOSED"}
# Codes whose top-level message uses the {"lang", "value"} shape.
_LANG_MESSAGE = {"CODE_PART_NOT_FOUND", "CODE_PART_NOT_VALID", "FND_RECORD_EXIST",
                 "ODP_PRECONDITION_FAILED"}
# Codes whose top-level message is generic and whose business text lives only in details.
_TEXT_IN_DETAILS = {"ACCOUNT_NOT_FOUND", "ACCOUNT_NOT_VALID", "SUPPLIER_NOT_CONNECTED",
                    "PERIOD_CLOSED", "NOT_BALANCED"}


class ODataError(Exception):
    """An error answer. `body()` renders the IFS JSON shape for this code."""

    def __init__(self, status: int, code: str, message: str, *,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        if self.code in _TEXT_IN_DETAILS:
            top: Any = ("The database operation failed." if self.status >= 500
                        else "The request could not be processed.")
            return {"error": {"code": self.code, "message": top,
                              "details": [{"code": self.code, "message": self.message}]}}
        if self.code in _LANG_MESSAGE:
            return {"error": {"code": self.code,
                              "message": {"lang": "en-US", "value": self.message},
                              "details": [{"code": self.code, "message": self.message}]}}
        return {"error": {"code": self.code, "message": self.message}}


def business(code: str, message: str) -> ODataError:
    """A business-rule refusal: 400, or 500 for the codes IFS raises from the database."""
    return ODataError(500 if code in _AS_500 else 400, code, message)


def not_found(what: str) -> ODataError:
    return ODataError(404, "ODP_RESOURCE_NOTFOUND", f"The requested resource {what} was not found.")


def bad_request(message: str, code: str = "ODP_BAD_REQUEST") -> ODataError:
    return ODataError(400, code, message)


def not_allowed(message: str) -> ODataError:
    return ODataError(405, "ODP_METHOD_NOT_ALLOWED", message)
