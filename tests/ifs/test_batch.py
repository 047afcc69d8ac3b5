"""$batch multipart building and parsing. Pure; no sockets."""
from __future__ import annotations

import orjson
import pytest

from adapters.ifs import batch


def invoice_changeset(tag, lines=2):
    ops = [batch.Operation("POST", "PostingProposalHeadSet", {"InvoiceNo": f"N{tag}"},
                           content_id="1")]
    ops += [batch.Operation("POST", "$1/Lines", {"CurrAmount": "1.00"}, if_match="$1",
                            content_id=str(n), prefer="return=minimal")
            for n in range(2, lines + 2)]
    ops.append(batch.Operation("POST", "$1/IfsApp.X.PostingProposalHead_Post", {},
                               if_match="$1", content_id=str(lines + 2)))
    return batch.Changeset(tuple(ops), tag=tag)


def test_build_shape():
    body, headers, parts = batch.build([invoice_changeset(0), invoice_changeset(1)],
                                       boundary="batch_B")
    assert headers["Content-Type"] == "multipart/mixed; boundary=batch_B"
    assert headers["Prefer"] == "odata.continue-on-error"
    text = body.decode()
    assert text.count("--batch_B\r\n") == 2 and text.endswith("--batch_B--\r\n")
    assert text.count("Content-Type: multipart/mixed; boundary=changeset_") == 2
    assert "POST $1/Lines HTTP/1.1\r\n" in text and "If-Match: $1\r\n" in text
    assert "Content-ID: 1\r\n" in text and "Prefer: return=minimal" in text
    assert "Content-Type: application/json;IEEE754Compatible=true" in text
    assert len(parts) == 2 and all(p in body for p in parts)
    assert b'{"InvoiceNo":"N0"}' in parts[0] and b"N1" not in parts[0]


def test_no_continue_on_error():
    _, headers, _ = batch.build([invoice_changeset(0)], continue_on_error=False)
    assert "Prefer" not in headers


def test_split_packs_in_order_and_never_splits_a_changeset():
    sets = [invoice_changeset(i, lines=2) for i in range(10)]      # 4 ops each
    groups = batch.split(sets, limit=10)
    assert [len(g) for g in groups] == [2, 2, 2, 2, 2]
    assert [cs.tag for g in groups for cs in g] == list(range(10))
    assert batch.split(sets, limit=5000) == [sets]
    with pytest.raises(ValueError):
        batch.split([invoice_changeset(0, lines=20)], limit=10)


def test_split_5000_limit():
    sets = [invoice_changeset(i, lines=3) for i in range(2600)]    # 5 ops each: 13000
    groups = batch.split(sets)
    assert all(sum(len(cs.operations) for cs in g) <= 5000 for g in groups)
    assert len(groups) == 3


def _http(status, body=b"", headers=(), content_id=None):
    head = "Content-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n"
    if content_id:
        head += f"Content-ID: {content_id}\r\n"
    lines = [f"HTTP/1.1 {status} X"] + [f"{k}: {v}" for k, v in headers]
    return (head + "\r\n" + "\r\n".join(lines) + "\r\n\r\n").encode() + body + b"\r\n"


def test_parse_success_and_failure_changesets():
    created = orjson.dumps({"Company": "10", "InvoiceId": 1001, "@odata.etag": 'W/"a"'})
    posted = orjson.dumps({"InvoiceId": 1001, "Objstate": "Posted"})
    inner = (b"--cs1\r\n" + _http(201, created, [("ETag", 'W/"a"')], "1")
             + b"--cs1\r\n" + _http(204, b"", [("ETag", 'W/"line"')], "2")
             + b"--cs1\r\n" + _http(200, posted, [("ETag", 'W/"b"')], "3") + b"--cs1--\r\n")
    ok_part = b"Content-Type: multipart/mixed; boundary=cs1\r\n\r\n" + inner + b"\r\n"
    error = orjson.dumps({"error": {"code": "ACCOUNT_NOT_FOUND", "message": "db",
                                    "details": [{"code": "ACCOUNT_NOT_FOUND",
                                                 "message": "Account 6999 --resp boundary"}]}})
    bad_part = _http(500, error, [("Content-Type", "application/json")], "2")
    body = b"--resp\r\n" + ok_part + b"--resp\r\n" + bad_part + b"--resp--\r\n"
    results = batch.parse(body, "multipart/mixed; boundary=resp")
    assert [r.ok for r in results] == [True, False]
    first = results[0]
    assert [r.status for r in first.responses] == [201, 204, 200]
    assert first.responses[0].json()["InvoiceId"] == 1001
    assert first.responses[0].etag == 'W/"a"' and first.responses[-1].etag == 'W/"b"'
    assert first.responses[1].content_id == "2" and first.responses[1].body == b""
    failed = results[1].error
    assert failed.status == 500 and failed.json()["error"]["details"][0]["message"].startswith(
        "Account 6999")
    assert b"ACCOUNT_NOT_FOUND" in results[1].raw


def test_parse_lf_only_and_quoted_boundary():
    body = (b"preamble\n--b\nContent-Type: application/http\n\nHTTP/1.1 204 No Content\n"
            b"ETag: W/\"x\"\n\n\n--b--\nepilogue")
    results = batch.parse(body, 'multipart/mixed; boundary="b"')
    assert len(results) == 1 and results[0].ok and results[0].responses[0].etag == 'W/"x"'


def test_round_trip_request_through_own_parser():
    """The request format parses with the response parser's multipart splitter too."""
    body, headers, _ = batch.build([invoice_changeset(0)], boundary="bb")
    parts = batch._split_parts(body, "bb")
    assert len(parts) == 1 and parts[0].startswith(b"Content-Type: multipart/mixed")
