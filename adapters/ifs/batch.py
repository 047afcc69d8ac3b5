"""OData 4.0 `$batch` (multipart/mixed): building requests and parsing responses. Pure.

One changeset per document keeps each document all-or-nothing; many changesets per `$batch`
keep the request count low (one `$batch` counts as one request against the rate budget).
A `$batch` may carry at most MAX_OPERATIONS operations; `split` packs changesets into as few
requests as fit, never splitting a changeset.
"""
from __future__ import annotations

import uuid
from typing import Any

import msgspec
import orjson

MAX_OPERATIONS = 5000
JSON = "application/json;IEEE754Compatible=true"
CRLF = b"\r\n"


class Operation(msgspec.Struct, frozen=True):
    """One request inside a changeset. url is relative to the service root, or `$n/...`."""
    method: str
    url: str
    body: dict[str, Any] | None = None
    if_match: str = ""                 # an ETag, or `$n` for the ETag of what `$n` created
    content_id: str = ""
    prefer: str = ""                   # e.g. "return=minimal" where the body is not needed


class Changeset(msgspec.Struct, frozen=True):
    operations: tuple[Operation, ...]
    tag: Any = None                    # the caller's handle (e.g. the request index)


class Response(msgspec.Struct, frozen=True):
    status: int
    headers: dict[str, str]            # lower-case names
    body: bytes
    content_id: str = ""

    def json(self) -> Any:
        return orjson.loads(self.body) if self.body.strip() else None

    @property
    def etag(self) -> str:
        return self.headers.get("etag", "")


class ChangesetResult(msgspec.Struct, frozen=True):
    """A changeset's answer: `ok` with one response per operation, or the single error."""
    ok: bool
    responses: tuple[Response, ...]
    raw: bytes = b""                   # the response part exactly as received

    @property
    def error(self) -> Response | None:
        return None if self.ok else self.responses[0]


def split(changesets: list[Any], limit: int = MAX_OPERATIONS) -> list[list[Any]]:
    """Pack changesets (or single requests, one operation each), in order, into groups of at
    most `limit` operations.

    A changeset larger than `limit` on its own cannot be sent at all: ValueError names it.
    """
    groups: list[list[Any]] = []
    current: list[Any] = []
    count = 0
    for cs in changesets:
        n = len(cs.operations) if isinstance(cs, Changeset) else 1
        if n > limit:
            raise ValueError(f"changeset {cs.tag!r} has {n} operations; a $batch allows {limit}")
        if current and count + n > limit:
            groups.append(current)
            current, count = [], 0
        current.append(cs)
        count += n
    if current:
        groups.append(current)
    return groups


def _http_part(op: Operation) -> bytes:
    lines = [f"{op.method} {op.url} HTTP/1.1", f"Accept: {JSON}"]
    payload = b""
    if op.if_match:
        lines.append(f"If-Match: {op.if_match}")
    if op.prefer:
        lines.append(f"Prefer: {op.prefer}")
    if op.body is not None:
        payload = orjson.dumps(op.body)
        lines.append(f"Content-Type: {JSON}")
        lines.append(f"Content-Length: {len(payload)}")
    return CRLF.join(x.encode() for x in lines) + CRLF + CRLF + payload


def render_changeset(cs: Changeset, boundary: str | None = None) -> bytes:
    """One changeset as a body part of the outer multipart (without the outer delimiter)."""
    cs_boundary = boundary or f"changeset_{uuid.uuid4().hex}"
    out = [f"Content-Type: multipart/mixed; boundary={cs_boundary}".encode() + CRLF + CRLF]
    for op in cs.operations:
        out.append(b"--" + cs_boundary.encode() + CRLF)
        out.append(b"Content-Type: application/http" + CRLF)
        out.append(b"Content-Transfer-Encoding: binary" + CRLF)
        if op.content_id:
            out.append(f"Content-ID: {op.content_id}".encode() + CRLF)
        out.append(CRLF)
        out.append(_http_part(op) + CRLF)
    out.append(b"--" + cs_boundary.encode() + b"--")
    return b"".join(out)


def render_request(op: Operation) -> bytes:
    """One request outside any changeset (a GET may only go there), as a body part."""
    head = b"Content-Type: application/http" + CRLF + b"Content-Transfer-Encoding: binary" + CRLF
    return head + CRLF + _http_part(op)


def build(changesets: list[Changeset] | list[Operation], *, boundary: str | None = None,
          continue_on_error: bool = True) -> tuple[bytes, dict[str, str], list[bytes]]:
    """-> (body, headers, the bytes of each part) for POST {service}/$batch. A part is a
    changeset, or a single request outside any changeset (reads).

    The per-part bytes let each document's ledger record hold exactly what was sent for
    it, without a copy of every other document in the same request."""
    boundary = boundary or f"batch_{uuid.uuid4().hex}"
    parts = [render_changeset(cs) if isinstance(cs, Changeset) else render_request(cs)
             for cs in changesets]
    out: list[bytes] = []
    for part in parts:
        out.append(b"--" + boundary.encode() + CRLF + part + CRLF)
    out.append(b"--" + boundary.encode() + b"--" + CRLF)
    headers = {"Content-Type": f"multipart/mixed; boundary={boundary}",
               "Accept": "multipart/mixed", "OData-Version": "4.0"}
    if continue_on_error:
        headers["Prefer"] = "odata.continue-on-error"
    return b"".join(out), headers, parts


# ------------------------------------------------------------------ parsing


def boundary_of(content_type: str) -> str:
    for param in content_type.split(";")[1:]:
        name, _, value = param.strip().partition("=")
        if name.strip().lower() == "boundary":
            return value.strip().strip('"')
    raise ValueError(f"no boundary in Content-Type {content_type!r}")


def _split_parts(body: bytes, boundary: str) -> list[bytes]:
    """Body parts between delimiter lines (RFC 2046). A delimiter only counts at the start of
    a line, so a JSON body that happens to contain the boundary text is not cut; the line
    break before a delimiter belongs to the delimiter."""
    delimiter = b"--" + boundary.encode()
    parts: list[bytes] = []
    start: int | None = None
    position = 0
    while True:
        found = body.find(delimiter, position)
        if found < 0:
            return parts
        position = found + len(delimiter)
        if found > 0 and body[found - 1:found] != b"\n":
            continue                                # not at a line start: part of a body
        if start is not None:
            end = found - 1 if found > 0 else 0
            if end > 0 and body[end - 1:end] == b"\r":
                end -= 1
            parts.append(body[start:max(end, start)])
        if body[position:position + 2] == b"--":    # close delimiter: the epilogue follows
            return parts
        line_end = body.find(b"\n", position)
        if line_end < 0:
            return parts
        start = position = line_end + 1


def _headers_and_body(part: bytes) -> tuple[dict[str, str], bytes]:
    for sep in (b"\r\n\r\n", b"\n\n"):
        head, found, rest = part.partition(sep)
        if found:
            break
    else:
        head, rest = part, b""
    headers: dict[str, str] = {}
    for line in head.decode("utf-8", "replace").splitlines():
        name, colon, value = line.partition(":")
        if colon:
            headers[name.strip().lower()] = value.strip()
    return headers, rest


def _parse_http(part: bytes, content_id: str = "") -> Response:
    """An application/http part: status line, headers, body."""
    part = part.lstrip(b"\r\n")
    status_line, _, rest = part.partition(b"\n")
    fields = status_line.decode("latin-1").strip().split(" ", 2)
    if len(fields) < 2 or not fields[0].startswith("HTTP/"):
        raise ValueError(f"not an HTTP response part: {status_line[:80]!r}")
    headers, body = _headers_and_body(rest)
    return Response(status=int(fields[1]), headers=headers, body=body,
                    content_id=content_id or headers.get("content-id", ""))


def parse(body: bytes, content_type: str) -> list[ChangesetResult]:
    """A $batch response -> one result per top-level part (per changeset), in order.

    A successful changeset is a nested multipart with one response per operation; a failed one
    is a single application/http part carrying the error.
    """
    results = []
    for part in _split_parts(body, boundary_of(content_type)):
        headers, payload = _headers_and_body(part)
        ctype = headers.get("content-type", "")
        if ctype.lower().startswith("multipart/mixed"):
            responses = []
            for inner in _split_parts(payload, boundary_of(ctype)):
                ih, ib = _headers_and_body(inner)
                responses.append(_parse_http(ib, ih.get("content-id", "")))
            ok = all(200 <= r.status < 300 for r in responses)
            results.append(ChangesetResult(ok=ok, responses=tuple(responses), raw=part))
        else:
            resp = _parse_http(payload, headers.get("content-id", ""))
            results.append(ChangesetResult(ok=200 <= resp.status < 300, responses=(resp,),
                                           raw=part))
    return results
