"""Portable path (paths.py), between a round's creates and its actions: every created header
must hold exactly its document's children and its current ETag before the action runs.

A deep insert that the server answered with the children inline needs nothing more. What a
create left open is settled a whole round at a time, never per document: the children the
answer did not show are read (GETs, outside any changeset, in one `$batch`); the missing ones
are added (one changeset per document, If-Match with the header's real ETag, one `$batch`);
the headers that got children are read again (one `$batch` of GETs) since a server outside
IFS may change a header's ETag when a child is added. A document any of this leaves unclear
goes to the finisher, which re-reads and completes it one by one (or rolls back the header
its own call created), so a refusal costs only its own document.
"""
from __future__ import annotations

from typing import Any

from adapters.ifs import batch as batchlib
from adapters.ifs import mapping
from adapters.ifs.endpoints import Endpoint, key_predicate
from adapters.ifs.exchange import encode_path
from adapters.ifs.finishing import Finisher, keys_of, missing_children
from adapters.ifs.odata import ODataClient
from ledger.ports import ErpFailure

# (request index, header without its children, ETag, the document's exchange record)
Created = tuple[int, dict[str, Any], str, list[dict[str, Any]]]


def exchange_of(info: dict[str, Any], part: bytes, result: batchlib.ChangesetResult) -> dict:
    """One document's slice of a $batch: exactly what was sent and received for it."""
    return {**info, "batch": True,
            "request_body": part.decode("utf-8", "replace"),
            "statuses": [r.status for r in result.responses],
            "response_body": result.raw.decode("utf-8", "replace"),
            "etag": result.responses[-1].etag}


class Settler:
    def __init__(self, odata: ODataClient, endpoints: dict[str, Endpoint],
                 finisher: Finisher) -> None:
        self._odata = odata
        self._finisher = finisher
        self._inv, self._line = endpoints["invoice"], endpoints["invoice_line"]
        self._vou, self._row = endpoints["voucher"], endpoints["voucher_row"]

    async def settle(self, created: list[tuple[Created, list[dict[str, Any]] | None]],
                     docs: dict[int, mapping.Document], *, voucher: bool
                     ) -> tuple[list[Created], list[Created]]:
        """created: each header with the children its create answer showed (None: not
        shown). -> (ready for the action with this ETag, left to the finisher)."""
        ep, child = (self._vou, self._row) if voucher else (self._inv, self._line)
        ready: list[Created] = []
        leftover: list[Created] = []
        unread = [c for c, held in created if held is None]
        known = {c[0]: held for c, held in created if held is not None}
        answers = await self._send(ep, [batchlib.Operation(
            "GET", encode_path(f"{self._path(ep, head)}/{child.entity_set}"))
            for _, head, _, _ in unread], unread, "reading the children of")
        for c, answer in zip(unread, answers):
            body = answer.responses[0].json() if answer is not None and answer.ok else None
            if isinstance(body, dict) and isinstance(body.get("value"), list) \
                    and "@odata.nextLink" not in body:
                known[c[0]] = body["value"]
            else:
                leftover.append(c)
        to_add: list[tuple[Created, list[dict[str, Any]]]] = []
        for c, _ in created:
            if c[0] not in known:
                continue
            expected = docs[c[0]].rows if voucher else docs[c[0]].lines
            missing, unexplained = missing_children(expected, known[c[0]],
                                                    self._finisher.child_fields(voucher))
            if unexplained or len(missing) >= batchlib.MAX_OPERATIONS:
                leftover.append(c)         # a conflict, or chunks: the finisher's to say
            elif missing:
                to_add.append((c, missing))
            else:
                ready.append(c)
        added = await self._add(ep, child, to_add, leftover)
        answers = await self._send(ep, [batchlib.Operation("GET", encode_path(
            self._path(ep, head))) for _, head, _, _ in added], added, "re-reading")
        for (i, head, etag, record), answer in zip(added, answers):
            fresh = answer.responses[0] if answer is not None and answer.ok else None
            etag = fresh.etag or (fresh.json() or {}).get("@odata.etag", "") if fresh else ""
            (ready if etag else leftover).append((i, head, etag, record))
        return ready, leftover

    async def _add(self, ep: Endpoint, child: Endpoint,
                   to_add: list[tuple[Created, list[dict[str, Any]]]],
                   leftover: list[Created]) -> list[Created]:
        """The missing children, one changeset per document; -> the documents that took them
        all (a refused changeset added nothing: its document goes to the finisher)."""
        changesets = [batchlib.Changeset(tuple(batchlib.Operation(
            "POST", encode_path(f"{self._path(ep, head)}/{child.entity_set}"), body,
            if_match=etag, content_id=str(n), prefer="return=minimal")
            for n, body in enumerate(missing, start=1))) for (_, head, etag, _), missing in to_add]
        done = [c for c, _ in to_add]
        answers = await self._send(ep, changesets, done, "adding the missing children to")
        added = []
        for c, answer in zip(done, answers):
            (added if answer is not None and answer.ok else leftover).append(c)
        return added

    async def _send(self, ep: Endpoint, parts: list[Any], owners: list[Created], doing: str
                    ) -> list[batchlib.ChangesetResult | None]:
        """Send parts (requests or changesets, one per owner) in as few `$batch` requests as
        fit; each owner's record gets its slice. None: no readable answer for that part."""
        answers: list[batchlib.ChangesetResult | None] = []
        for group in batchlib.split(parts):
            start = len(answers)
            body, headers, raw = batchlib.build(group)
            what = f"{doing} {len(group)} created {ep.entity_set} header(s)"
            try:
                reply, info = await self._odata.batch(ep.projection, body, headers, what=what)
                parsed = batchlib.parse(reply.body, reply.headers.get("content-type", ""))
            except (ErpFailure, ValueError):
                parsed = []                # each document settles through the finisher
            got: list[batchlib.ChangesetResult | None] = list(parsed) \
                if len(parsed) == len(group) else [None] * len(group)
            answers += got
            for owner, part, answer in zip(owners[start:], raw, got):
                if answer is not None:
                    owner[3].append(exchange_of(info, part, answer))
        return answers

    @staticmethod
    def _path(ep: Endpoint, head: dict[str, Any]) -> str:
        return ep.entity_set + key_predicate(keys_of(ep, head))

