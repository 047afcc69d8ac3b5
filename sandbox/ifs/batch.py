"""OData 4.0 `$batch` over multipart/mixed: parsing, changesets, `$n` references, responses.

A changeset runs inside one store transaction: the first failing operation undoes the others
and becomes the changeset's only response (OData 4.0 §11.7.4).
"""
from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, Callable
from urllib.parse import parse_qsl, unquote

import orjson

from .errors import ODataError, bad_request
from .odata import JSON_TYPE, OData, Op, Result, error_result
from .store import Dec

MAX_OPERATIONS = 5000
_BOUNDARY = re.compile(r'boundary=(?:"([^"]+)"|([^;\s]+))', re.I)
_BARE_DECIMAL = re.compile(rb'"\\u0000([-+0-9.eE]+)\\u0000"')


@dataclass
class Part:
    headers: dict[str, str]
    method: str = ""
    target: str = ""
    op_headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    changeset: list["Part"] | None = None


def boundary_of(content_type: str) -> str:
    m = _BOUNDARY.search(content_type or "")
    if not content_type.lower().startswith("multipart/mixed") or not m:
        raise bad_request("A $batch request needs Content-Type multipart/mixed with a boundary.",
                          "ODP_INVALID_BATCH")
    return m.group(1) or m.group(2)


def _split(body: bytes, boundary: str) -> list[bytes]:
    delim = b"--" + boundary.encode()
    pos = body.find(delim)
    if pos < 0:
        raise bad_request("The $batch body does not contain its boundary.", "ODP_INVALID_BATCH")
    parts = []
    while True:
        pos += len(delim)
        if body[pos:pos + 2] == b"--":
            return parts
        eol = body.find(b"\n", pos)
        if eol < 0:
            raise bad_request("Unterminated $batch part.", "ODP_INVALID_BATCH")
        # The CRLF before the next delimiter belongs to the delimiter (RFC 2046).
        nxt = body.find(b"\n" + delim, eol)
        if nxt < 0:
            raise bad_request("The $batch body has no closing boundary.", "ODP_INVALID_BATCH")
        parts.append(body[eol + 1:nxt].removesuffix(b"\r"))
        pos = nxt + 1


def _head_body(raw: bytes) -> tuple[list[str], bytes]:
    m = re.search(rb"\r?\n\r?\n", raw)
    if m is None:
        head, body = raw, b""
    else:
        head, body = raw[:m.start()], raw[m.end():]
    return head.decode("utf-8").splitlines(), body


def _headers(lines: list[str]) -> dict[str, str]:
    out = {}
    for line in lines:
        name, sep, value = line.partition(":")
        if sep:
            out[name.strip().lower()] = value.strip()
    return out


def parse(body: bytes, boundary: str, nested: bool = False) -> list[Part]:
    parts = []
    for raw in _split(body, boundary):
        head, content = _head_body(raw)
        headers = _headers(head)
        ctype = headers.get("content-type", "")
        if ctype.lower().startswith("multipart/mixed"):
            if nested:
                raise bad_request("Changesets cannot be nested.", "ODP_INVALID_BATCH")
            parts.append(Part(headers, changeset=parse(content, boundary_of(ctype), True)))
            continue
        if not ctype.lower().startswith("application/http"):
            raise bad_request("A $batch part must be application/http or a changeset.",
                              "ODP_INVALID_BATCH")
        lines, op_body = _head_body(content.lstrip(b"\r\n"))
        request_line = lines[0].split() if lines else []
        if len(request_line) < 2:
            raise bad_request("A $batch part has no request line.", "ODP_INVALID_BATCH")
        parts.append(Part(headers, request_line[0].upper(), request_line[1],
                          _headers(lines[1:]), op_body))
    return parts


class _Abort(Exception):
    def __init__(self, result: Result, content_id: str | None) -> None:
        self.result, self.content_id = result, content_id


class BatchRunner:
    """Runs one $batch. `before(op)` may return an injected fault for an operation;
    `after(op, result, meta)` sees every operation's outcome (the request log);
    `committed(ops)` gets the writes that are now durable (drop faults key on those)."""

    def __init__(self, odata: OData, before: Callable[[Op], Result | None],
                 after: Callable[[Op, Result, dict[str, Any]], None],
                 committed: Callable[[list[Op]], None]) -> None:
        self.odata, self.before, self.after = odata, before, after
        self.committed = committed

    def run(self, outer: Op) -> Result:
        items = parse(outer.body, boundary_of(outer.headers.get("content-type", "")))
        count = sum(len(p.changeset) if p.changeset is not None else 1 for p in items)
        if count > MAX_OPERATIONS:
            raise ODataError(400, "ODP_REQUEST_TOO_LARGE", f"The $batch carries {count} "
                             f"operations; at most {MAX_OPERATIONS} are allowed.")
        keep_going = "continue-on-error" in outer.headers.get("prefer", "")
        boundary = f"batchresponse_{uuid.uuid4()}"
        out: list[bytes] = []
        for index, item in enumerate(items):
            if item.changeset is None:
                result, op = self._one(outer, item, {}, {"part": index})
                out.append(_http_part(result, None))
                failed = result.status >= 400
                if not failed and op is not None and op.method != "GET":
                    self.committed([op])
            else:
                chunk, failed = self._changeset(outer, item.changeset, index)
                out.append(chunk)
            if failed and not keep_going:
                break
        body = b"".join(b"--" + boundary.encode() + b"\r\n" + p for p in out)
        body += b"--" + boundary.encode() + b"--\r\n"
        headers = {"OData-Version": "4.0"}
        if keep_going:
            headers["Preference-Applied"] = "odata.continue-on-error"
        return Result(200, body, headers, content_type=f"multipart/mixed; boundary={boundary}")

    def _changeset(self, outer: Op, parts: list[Part], index: int) -> tuple[bytes, bool]:
        refs: dict[str, tuple[str, str | None]] = {}
        done: list[tuple[Result, str | None]] = []
        ops: list[Op] = []
        try:
            with self.odata.store.transaction():
                for n, part in enumerate(parts):
                    cid = part.headers.get("content-id") or part.op_headers.get("content-id")
                    meta = {"part": index, "changeset": True, "content_id": cid, "index": n}
                    if part.method == "GET":
                        err = bad_request("A GET is not allowed inside a changeset.",
                                          "ODP_INVALID_BATCH")
                        raise _Abort(error_result(err), cid)
                    result, op = self._one(outer, part, refs, meta)
                    if result.status >= 400 or op is None:
                        raise _Abort(result, cid)
                    ops.append(op)
                    if cid:
                        refs[cid] = (result.entity_path or "", result.etag)
                    done.append((result, cid))
        except _Abort as abort:
            return _http_part(abort.result, abort.content_id), True
        self.committed(ops)
        boundary = f"changesetresponse_{uuid.uuid4()}".encode()
        inner = b"".join(b"--" + boundary + b"\r\n" + _http_part(r, c) for r, c in done)
        inner += b"--" + boundary + b"--\r\n"
        head = b"Content-Type: multipart/mixed; boundary=" + boundary + b"\r\n\r\n"
        return head + inner + b"\r\n", False

    def _one(self, outer: Op, part: Part, refs: dict[str, tuple[str, str | None]],
             meta: dict[str, Any]) -> tuple[Result, Op | None]:
        try:
            op = self._op(outer, part, refs)
        except ODataError as err:
            result = error_result(err)
            self.after(Op(part.method, outer.projection, part.target, {}, part.op_headers,
                          part.body, outer.service_root), result, meta)
            return result, None
        result = self.before(op) or self.odata.handle(op)
        self.after(op, result, meta)
        return result, op

    @staticmethod
    def _op(outer: Op, part: Part, refs: dict[str, tuple[str, str | None]]) -> Op:
        target, _, query = part.target.partition("?")
        marker = f"/{outer.projection}.svc/"
        if ".svc/" in target:
            if marker not in target:
                raise bad_request(f"{target} is not in the projection of this $batch.",
                                  "ODP_INVALID_BATCH")
            target = target.split(marker, 1)[1]
        target = unquote(target)
        headers = dict(part.op_headers)
        headers.setdefault("accept", outer.headers.get("accept", ""))
        if target.startswith("$"):
            ref, _, rest = target.partition("/")
            if ref[1:] not in refs:
                raise bad_request(f"Unknown Content-ID reference {ref}.", "ODP_INVALID_BATCH")
            target = refs[ref[1:]][0] + ("/" + rest if rest else "")
        match = headers.get("if-match", "")
        if match.startswith("$") and match[1:] in refs:
            headers["if-match"] = refs[match[1:]][1] or ""
        return Op(part.method, outer.projection, target,
                  dict(parse_qsl(query, keep_blank_values=True)), headers, part.body,
                  outer.service_root)


def _http_part(result: Result, content_id: str | None) -> bytes:
    head = "Content-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n"
    if content_id:
        head += f"Content-ID: {content_id}\r\n"
    lines = [f"HTTP/1.1 {result.status} {HTTPStatus(result.status).phrase}"]
    body = encode_body(result)
    if body:
        lines.append(f"Content-Type: {result.content_type}")
    lines += [f"{k}: {v}" for k, v in result.headers.items()]
    return (head + "\r\n" + "\r\n".join(lines) + "\r\n\r\n").encode() + body + b"\r\n"


def encode_body(result: Result) -> bytes:
    if result.body is None:
        return b""
    if isinstance(result.body, bytes):
        return result.body
    if isinstance(result.body, str):
        return result.body.encode()
    if result.ieee754:
        return orjson.dumps(result.body, default=str)
    # Mark decimals, then strip the quotes around them: exact digits, no float on the way.
    marked = orjson.dumps(result.body, option=orjson.OPT_PASSTHROUGH_SUBCLASS,
                          default=lambda o: f"\x00{o}\x00" if isinstance(o, Dec) else str(o))
    return _BARE_DECIMAL.sub(rb"\1", marked)


__all__ = ["BatchRunner", "encode_body", "JSON_TYPE", "MAX_OPERATIONS"]
