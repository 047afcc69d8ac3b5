"""Posting documents into IFS, and finding (and finishing) what an earlier attempt left.

Order per document: supplier invoice (header, lines, PostingProposalHead_Post), then the GL
voucher (header, rows, Voucher_Approve) only once the invoice is posted. The voucher has no
unique business key in IFS, so it is only ever created after a lookup by ExternalRef showed it
missing (or in the same call right after its invoice was created): that, plus IFS refusing a
second invoice with the same number (FND_RECORD_EXIST), is what keeps a document from being
posted twice even when `post` is called again after a crash.

With `use_batch`, one changeset per document (all-or-nothing) and many documents per `$batch`:
two requests for a whole batch of documents (four on the portable path with deep insert,
eight without, see paths.py and portable.py).
Without it, a plain sequence of requests using the ETag each write returns (a child add keeps
the parent's ETag; an action changes it).
"""
from __future__ import annotations

from typing import Any

from adapters.ifs import batch as batchlib
from adapters.ifs import mapping
from adapters.ifs.endpoints import ACTIONS, Endpoint, key_predicate
from adapters.ifs.errors import UNKNOWN, OutcomeUnknown, classify, failure
from adapters.ifs.finishing import Finisher, keys_of
from adapters.ifs.odata import ODataClient
from adapters.ifs.paths import PostingPaths
from adapters.ifs.portable import Created, Settler, exchange_of
from adapters.ifs.reference import replay_hint
from adapters.settings import IfsSettings
from ledger.ports import (FAILURE_KINDS, ErpFailure, ErpUnavailable, PostingRequest,
                          PostingResult)

MINIMAL = "return=minimal"


class Poster:
    def __init__(self, odata: ODataClient, endpoints: dict[str, Endpoint],
                 settings: IfsSettings, *, batch_max_documents: int = 200,
                 default_company: str | None = None) -> None:
        self._odata = odata
        self._posting = settings.posting
        self._use_batch = settings.use_batch and settings.batch_mode != "off"
        self.paths = PostingPaths(odata, settings, endpoints)
        self._max_docs = max(1, batch_max_documents)
        self._default_company = default_company
        self._inv, self._line = endpoints["invoice"], endpoints["invoice_line"]
        self._vou, self._row = endpoints["voucher"], endpoints["voucher_row"]
        self._post_action = ACTIONS["invoice"].format(projection=self._inv.projection)
        self._approve_action = ACTIONS["voucher"].format(projection=self._vou.projection)
        self.finisher = Finisher(odata, endpoints, settings.posting)
        self._settler = Settler(odata, endpoints, self.finisher)

    # ------------------------------------------------------------------ public

    async def post(self, requests: list[PostingRequest]) -> list[PostingResult | ErpFailure]:
        results: list[PostingResult | ErpFailure | None] = [None] * len(requests)
        docs: dict[int, mapping.Document] = {}
        for i, request in enumerate(requests):
            try:
                docs[i] = mapping.document(request, self._posting)
            except ErpFailure as exc:
                results[i] = exc
        if self._use_batch:
            await self._post_batched(requests, docs, results)
        else:
            for i, doc in docs.items():
                results[i] = await self._post_one(requests[i], doc)
        assert all(r is not None for r in results)
        return results  # type: ignore[return-value]

    async def find_posted(self, request: PostingRequest) -> PostingResult | None:
        doc = mapping.document(request, self._posting)
        return await self.finisher.find(request, doc, [])

    # ------------------------------------------------------------------ one by one

    async def _post_one(self, request: PostingRequest, doc: mapping.Document
                        ) -> PostingResult | ErpFailure:
        record: list[dict[str, Any]] = []
        ref = request.invoice.ref
        try:
            try:
                head, etag = await self._odata.write(
                    "POST", self._inv.projection, self._inv.entity_set, doc.invoice,
                    what=f"creating supplier invoice {ref}", record=record)
            except ErpFailure as exc:
                if isinstance(exc, OutcomeUnknown) or exc.code == "FND_RECORD_EXIST":
                    return await self._recover(request, doc, record, exc)
                raise
            head, etag = await self.finisher.finish_invoice(
                request, doc, head or {}, etag, record, known_lines=[], rollback=True)
            voucher, vetag = {}, ""
            if doc.voucher is not None:
                try:
                    voucher, vetag = await self.finisher.create_voucher(request, doc, record)
                except ErpFailure as exc:
                    raise self._voucher_failed(request, head, exc, record) from None
        except ErpFailure as exc:
            return self._with_hint(exc, request, record)
        return self._result(head, etag, voucher, vetag, record)

    # ------------------------------------------------------------------ batched

    def _groups(self, changesets: list[batchlib.Changeset]) -> list[list[batchlib.Changeset]]:
        groups = []
        for group in batchlib.split(changesets):
            for start in range(0, len(group), self._max_docs):
                groups.append(group[start:start + self._max_docs])
        return groups

    async def _post_batched(self, requests: list[PostingRequest],
                            docs: dict[int, mapping.Document], results: list) -> None:
        changesets = []
        for i, doc in docs.items():
            cs = self._invoice_changeset(i, doc)
            if len(cs.operations) > batchlib.MAX_OPERATIONS:
                results[i] = await self._post_one(requests[i], doc)   # too big for one $batch
            else:
                changesets.append(cs)
        posted: dict[int, tuple[dict, str, list[dict[str, Any]]]] = {}
        await self._send_all(changesets, requests, docs, results, posted, voucher=False)
        if not self._posting.post_voucher:
            for i, (head, etag, record) in posted.items():
                results[i] = self._result(head, etag, {}, "", record)
            return
        vouchers = [self._voucher_changeset(i, docs[i]) for i in posted]
        await self._send_all(vouchers, requests, docs, results, posted, voucher=True)

    async def _send_all(self, changesets: list[batchlib.Changeset], requests: list,
                        docs: dict[int, mapping.Document], results: list,
                        posted: dict[int, tuple[dict, str, list]], *, voucher: bool) -> None:
        """References path while the projection takes it; the documents a refusal sent back
        (nothing of them applied: a changeset is atomic) go again the portable way."""
        ep = self._vou if voucher else self._inv
        refused: list[int] = []
        if ep.projection not in self.paths.portable:
            for group in self._groups(changesets):
                await self._send_group(group, requests, docs, results, posted,
                                       voucher=voucher, refused=refused)
        else:
            refused = [cs.tag for cs in changesets]
        for _ in range(2):                   # a second round only after a refused deep insert
            if not refused:
                break
            portable = [self._portable_changeset(i, docs[i], voucher) for i in refused]
            refused = []
            for group in self._groups(portable):
                created: list[tuple[Created, list[dict[str, Any]] | None]] = []
                await self._send_group(group, requests, docs, results, posted,
                                       voucher=voucher, finish=True, refused=refused,
                                       created=created)
                if created:
                    ready, leftover = await self._settler.settle(created, docs,
                                                                 voucher=voucher)
                    await self._send_actions(ready, leftover, requests, docs, results, posted,
                                             voucher=voucher)

    async def _send_actions(self, ready: list[Created], leftover: list[Created],
                            requests: list, docs: dict[int, mapping.Document], results: list,
                            posted: dict[int, tuple[dict, str, list]], *, voucher: bool) -> None:
        """Portable path, last request of a round: the post / approve action of every header
        that holds all its children, with the real key and ETag, one changeset each in one
        $batch. Anything but a clean answer, and every leftover, goes to the finisher, which
        re-reads (a 412, a lost answer) and rolls back a header it cannot complete."""
        ep = self._vou if voucher else self._inv
        action = self._approve_action if voucher else self._post_action
        child = (self._row if voucher else self._line).entity_set
        changesets = [batchlib.Changeset((batchlib.Operation(
            "POST", f"{ep.entity_set}{key_predicate(keys_of(ep, head))}/{action}", {},
            if_match=etag),), tag=n) for n, (_, head, etag, _) in enumerate(ready)]
        answers: list[batchlib.ChangesetResult | None] = [None] * len(ready)
        parts: list[bytes] = [b""] * len(ready)
        info: dict[str, Any] = {}
        if ready:
            body, headers, parts = batchlib.build(changesets)
            what = f"running {action.rsplit('.', 1)[-1]} on {len(ready)} document(s)"
            try:
                reply, info = await self._odata.batch(ep.projection, body, headers, what=what)
                parsed = batchlib.parse(reply.body, reply.headers.get("content-type", ""))
                if len(parsed) == len(ready):
                    answers = list(parsed)
            except (ErpFailure, ValueError):
                pass                          # each document settles through the finisher
        for (i, head, etag, record), part, answer in zip(
                ready + leftover, parts + [b""] * len(leftover),
                answers + [None] * len(leftover)):
            request = requests[i]
            if answer is not None:
                record.append(exchange_of(info, part, answer))
            try:
                if answer is not None and answer.ok:
                    final = answer.responses[-1].json() or {}
                    etag = answer.responses[-1].etag or final.get("@odata.etag", "")
                    final = {**{k: v for k, v in head.items() if k != child}, **final}
                else:
                    final, etag = await self._finish_created(request, docs[i], head, etag,
                                                             record, voucher)
            except ErpFailure as exc:
                exc = self._voucher_failed(request, posted[i][0], exc, record) if voucher \
                    else exc
                results[i] = self._with_hint(exc, request, record)
                continue
            if voucher:
                results[i] = self._result(posted[i][0], posted[i][1], final, etag, record)
            else:
                posted[i] = (final, etag, record)

    def _portable_changeset(self, i: int, doc: mapping.Document,
                            voucher: bool) -> batchlib.Changeset:
        """The header with its children inline (a deep insert, OData 4.0 §11.4.2.2): one
        operation, so no `$n` reference and no dependence on the order a server runs them."""
        deep = (self._vou if voucher else self._inv).projection not in self.paths.no_deep
        if voucher:
            assert doc.voucher is not None
            body = {**doc.voucher, **({self._row.entity_set: doc.rows} if deep else {})}
            return batchlib.Changeset((batchlib.Operation("POST", self._vou.entity_set, body,
                                                          content_id="1"),), tag=i)
        body = {**doc.invoice, **({self._line.entity_set: doc.lines} if deep else {})}
        return batchlib.Changeset((batchlib.Operation("POST", self._inv.entity_set, body,
                                                      content_id="1"),), tag=i)

    async def _send_group(self, group: list[batchlib.Changeset], requests: list[PostingRequest],
                          docs: dict[int, mapping.Document], results: list,
                          posted: dict[int, tuple[dict, str, list]], *, voucher: bool,
                          refused: list[int] | None = None, finish: bool = False,
                          created: list[tuple[int, dict, str, list]] | None = None) -> None:
        ep = self._vou if voucher else self._inv
        what = f"posting {len(group)} {'GL voucher' if voucher else 'supplier invoice'}(s)"
        body, headers, parts = batchlib.build(group)
        try:
            reply, info = await self._odata.batch(ep.projection, body, headers, what=what)
            answers = batchlib.parse(reply.body, reply.headers.get("content-type", ""))
            if len(answers) != len(group):
                raise OutcomeUnknown(f"IFS answered {len(answers)} parts to a $batch of "
                                     f"{len(group)} documents while {what}", exchanges=[info])
        except (ErpFailure, ValueError) as exc:
            if isinstance(exc, ValueError):      # an unreadable multipart answer
                exc = OutcomeUnknown(f"IFS's answer to {what} could not be read ({exc})")
            for cs, part in zip(group, parts):
                i = cs.tag
                sent = [{**x, "request_body": part.decode("utf-8", "replace")}
                        for x in exc.exchanges[-1:]]
                record = (posted[i][2] if voucher else []) + sent
                if isinstance(exc, OutcomeUnknown):
                    results[i] = await self._recover(requests[i], docs[i], record, exc)
                else:
                    cls = ErpUnavailable if isinstance(exc, ErpUnavailable) else ErpFailure
                    own = cls(exc.kind, str(exc), code=exc.code, status=exc.status)
                    if voucher:
                        own = self._voucher_failed(requests[i], posted[i][0], own, record)
                    results[i] = self._with_hint(own, requests[i], record)
            return
        for cs, part, answer in zip(group, parts, answers):
            i = cs.tag
            request = requests[i]
            record = (posted[i][2] if voucher else []) + [exchange_of(info, part, answer)]
            if answer.ok:
                first = answer.responses[0].json() or {}
                final = answer.responses[-1].json() or {**first, "Objstate": "?"}
                etag = answer.responses[-1].etag or final.get("@odata.etag", "")
                if finish and created is not None:   # portable: children checked, then action
                    child = (self._row if voucher else self._line).entity_set
                    held = first.get(child) if child in (cs.operations[0].body or {}) else []
                    head = {k: v for k, v in first.items() if k != child}
                    created.append(((i, head, etag, record),
                                    held if isinstance(held, list) else None))
                    continue
                if voucher:
                    head, hetag, _ = posted[i]
                    results[i] = self._result(head, hetag, final, etag, record)
                else:
                    posted[i] = ({**first, **final}, etag, record)
                continue
            err = answer.error
            assert err is not None
            child = (self._row if voucher else self._line).entity_set
            learned = (self.paths.refused_deep_insert(ep.projection, err, cs, child) if finish
                       else refused is not None
                       and self.paths.refused_references(ep.projection, err, cs))
            if learned and refused is not None:
                refused.append(i)            # nothing of it applied: send it again at once
                continue
            action = classify(err.status, err.body, method="POST", during_write=True)
            doc_what = f"{'GL voucher' if voucher else 'supplier invoice'} {request.invoice.ref}"
            exc = failure(action if action in FAILURE_KINDS else "transient", err.status,
                          err.body, what=f"posting {doc_what}", projection=ep.projection)
            if action == UNKNOWN or exc.code == "FND_RECORD_EXIST":
                results[i] = await self._recover(request, docs[i], record, exc)
            elif voucher:
                results[i] = self._with_hint(
                    self._voucher_failed(request, posted[i][0], exc, record), request, record)
            else:
                results[i] = self._with_hint(exc, request, record)

    async def _finish_created(self, request: PostingRequest, doc: mapping.Document,
                              created: dict[str, Any], etag: str, record: list[dict[str, Any]],
                              voucher: bool) -> tuple[dict[str, Any], str]:
        """Run the action on a header the portable changeset created; the finisher adds any
        child the server did not take inline, and re-reads on 412 (bounded)."""
        child = self._row if voucher else self._line
        known = created.get(child.entity_set)
        known = known if isinstance(known, list) else None        # not returned: read them
        head = {k: v for k, v in created.items() if k != child.entity_set}
        if voucher:
            return await self.finisher.finish_voucher(request, doc, head, etag, record,
                                                      known_rows=known, rollback=True)
        return await self.finisher.finish_invoice(request, doc, head, etag, record,
                                                  known_lines=known, rollback=True)

    def _invoice_changeset(self, i: int, doc: mapping.Document) -> batchlib.Changeset:
        ops = [batchlib.Operation("POST", self._inv.entity_set, doc.invoice, content_id="1")]
        ops += [batchlib.Operation("POST", f"$1/{self._line.entity_set}", line, if_match="$1",
                                   content_id=str(n), prefer=MINIMAL)
                for n, line in enumerate(doc.lines, start=2)]
        ops.append(batchlib.Operation("POST", f"$1/{self._post_action}", {}, if_match="$1",
                                      content_id=str(len(ops) + 1)))
        return batchlib.Changeset(tuple(ops), tag=i)

    def _voucher_changeset(self, i: int, doc: mapping.Document) -> batchlib.Changeset:
        assert doc.voucher is not None
        ops = [batchlib.Operation("POST", self._vou.entity_set, doc.voucher, content_id="1")]
        ops += [batchlib.Operation("POST", f"$1/{self._row.entity_set}", row, if_match="$1",
                                   content_id=str(n), prefer=MINIMAL)
                for n, row in enumerate(doc.rows, start=2)]
        ops.append(batchlib.Operation("POST", f"$1/{self._approve_action}", {}, if_match="$1",
                                      content_id=str(len(ops) + 1)))
        return batchlib.Changeset(tuple(ops), tag=i)

    # ------------------------------------------------------------------ results and failures

    async def _recover(self, request: PostingRequest, doc: mapping.Document,
                       record: list[dict[str, Any]], cause: ErpFailure
                       ) -> PostingResult | ErpFailure:
        """After an unknown outcome or FND_RECORD_EXIST: look the document up and finish it."""
        try:
            found = await self.finisher.find(request, doc, record)
        except ErpFailure as exc:
            return self._with_hint(exc, request, record)
        if found is not None:
            return found
        if isinstance(cause, OutcomeUnknown):
            return OutcomeUnknown(f"{cause} (looked up by ExternalRef {request.ledger_id}: not in "
                                  "IFS yet)", status=cause.status, exchanges=record)
        return self._with_hint(cause, request, record)

    def _voucher_failed(self, request: PostingRequest, head: dict[str, Any], exc: ErpFailure,
                        record: list[dict[str, Any]]) -> ErpFailure:
        invoice_id = head.get("InvoiceId", "?")
        cls = OutcomeUnknown if isinstance(exc, OutcomeUnknown) else None
        message = (f"supplier invoice {request.invoice.ref} is posted in IFS (InvoiceId "
                   f"{invoice_id}) but its GL voucher was not (a replay finishes only the "
                   f"voucher): {exc}")
        if cls is not None:
            return OutcomeUnknown(message, status=exc.status, exchanges=record)
        return ErpFailure(exc.kind, message, code=exc.code, status=exc.status, exchanges=record)

    def _with_hint(self, exc: ErpFailure, request: PostingRequest,
                   record: list[dict[str, Any]]) -> ErpFailure:
        exc.exchanges = record
        if isinstance(exc, ErpUnavailable):
            return exc              # IFS as a whole (a redirect, a bad secret): not this document
        if exc.kind in ("reference", "rejected", "conflict") and "ml-connector replay" not in str(exc):
            hint = replay_hint(request.invoice, self._default_company)
            fixed = ErpFailure(exc.kind, f"{exc}; fix it in IFS (or Stampli), then {hint}",
                               code=exc.code, status=exc.status, exchanges=record)
            return fixed
        return exc

    def _result(self, head: dict[str, Any], etag: str, voucher: dict[str, Any], vetag: str,
                record: list[dict[str, Any]], found: bool = False) -> PostingResult:
        return PostingResult(
            ifs_invoice_id=str(head.get("InvoiceId", "")),
            voucher=keys_of(self._vou, voucher) if voucher else {},
            etags={k: v for k, v in (("invoice", etag), ("voucher", vetag)) if v},
            exchanges=record, found_existing=found)
