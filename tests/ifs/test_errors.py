"""classify(): the one place statuses and IFS codes become actions. No sockets."""
from __future__ import annotations

import pytest

from adapters.ifs.errors import (REAUTH, REREAD, RETRY, UNKNOWN, classify, describe,
                                 parse_error)


def body(code: str, message="m", details=None):
    err = {"code": code, "message": message}
    if details is not None:
        err["details"] = details
    return {"error": err}


@pytest.mark.parametrize("status,payload,method,write,expected", [
    (401, None, "GET", False, REAUTH),
    (401, None, "POST", True, REAUTH),
    (403, body("ODP_FORBIDDEN"), "GET", False, "rejected"),
    (412, body("ODP_PRECONDITION_FAILED"), "PATCH", True, REREAD),
    (428, body("ODP_MISSING_PRECONDITION"), "POST", True, "rejected"),
    (423, None, "POST", True, RETRY),
    (400, body("FND_LOCKED"), "POST", True, RETRY),
    (429, None, "POST", True, RETRY),
    (503, body("MI_MODIFIED_ERROR"), "POST", True, RETRY),
    (503, body("MI_MODIFIED_ERROR"), "GET", False, RETRY),
    (504, body("ODP_OPERATION_TIMEOUT"), "GET", False, RETRY),
    (504, body("ODP_OPERATION_TIMEOUT"), "POST", True, UNKNOWN),
    (0, None, "GET", False, RETRY),
    (0, None, "POST", True, UNKNOWN),
    (0, None, "POST", False, RETRY),            # refused before sending: safe to re-send
    (404, body("ODP_RESOURCE_NOTFOUND"), "GET", False, "reference"),
    (404, body("SOMETHING"), "GET", False, "rejected"),
    (400, body("FND_RECORD_EXIST"), "POST", True, "conflict"),
    (400, body("CODE_PART_NOT_FOUND"), "POST", True, "reference"),
    (400, body("NOT_BALANCED"), "POST", True, "data"),
    (400, body("CURRENCY_ROUNDING"), "POST", True, "data"),
    (500, body("ACCOUNT_NOT_FOUND"), "POST", True, "reference"),   # 500 is not transient
    (500, body("PERIOD_CLOSED"), "POST", True, "rejected"),
    (500, body("SUPPLIER_NOT_CONNECTED"), "POST", True, "reference"),
    (500, b"<html>oops</html>", "GET", False, RETRY),
    (500, b"", "POST", True, UNKNOWN),           # bare 500 says nothing about a commit
    (501, body("ODP_NOT_IMPLEMENTED"), "GET", False, "rejected"),
])
def test_classify(status, payload, method, write, expected):
    assert classify(status, payload, method=method, during_write=write) == expected


def test_detail_code_wins_over_generic_outer_code():
    payload = body("DATABASE_ERROR", "The database operation failed.",
                   [{"code": "ACCOUNT_NOT_FOUND", "message": "Account 6999 does not exist"}])
    assert classify(500, payload, method="POST", during_write=True) == "reference"


@pytest.mark.parametrize("payload,text", [
    (b'{"error": {"code": "X", "message": "plain"}}', "plain"),
    (b'{"error": {"code": "X", "message": {"lang": "en-US", "value": "lang shaped"}}}',
     "lang shaped"),
    (b'{"error": {"code": "X", "message": "The database operation failed.", '
     b'"details": [{"code": "X", "message": "Account 6999 does not exist in company 10."}]}}',
     "Account 6999 does not exist in company 10. (The database operation failed.)"),
    (b"not json at all", "not json at all"),
    (b"", ""),
])
def test_parse_error_all_shapes(payload, text):
    assert parse_error(payload).text == text


def test_403_names_the_projection():
    _, message = describe(403, body("ODP_FORBIDDEN", "no access"), what="reading accounts",
                          projection="AccountsHandling")
    assert "AccountsHandling" in message and "grant" in message.lower()


def test_keycloak_shape():
    err = parse_error(b'{"error": "invalid_client", "error_description": "Invalid client"}')
    assert err.code == "invalid_client" and err.text == "Invalid client"
