"""Find a document an earlier attempt sent, and finish what it left undone.

A crash, a dropped connection or a 504 can leave: nothing; an invoice in Preliminary with some
of its lines; a posted invoice without its voucher; a voucher in Waiting with some rows. The
finisher compares what IFS holds with what the document should be and sends only the missing
parts (never a second header). What IFS holds that the document does not explain is a
conflict for a person, not something to overwrite.
"""
from __future__ import annotations

from collections import Counter
from decimal import Decimal, InvalidOperation
from typing import Any

from adapters.ifs import batch as batchlib
from adapters.ifs import mapping
from adapters.ifs.endpoints import ACTIONS, Endpoint, key_predicate, literal
from adapters.ifs.errors import (REREAD, RETRY, UNKNOWN, OutcomeUnknown, PreconditionFailed,
                                 classify, failure)
from adapters.ifs.exchange import encode_path
from adapters.ifs.odata import ODataClient
from adapters.settings import PostingSettings
from ledger.ports import ErpFailure, PostingRequest, PostingResult
from ledger.replay import replay_command

HEADER_AMOUNTS = ("NetCurrAmount", "VatCurrAmount", "GrossCurrAmount")
ROUNDS = 3                             # re-read / re-check rounds after 412 or an unknown outcome


def keys_of(ep: Endpoint, entity: dict[str, Any]) -> dict[str, Any]:
    return {k: entity.get(k) for k in ep.keys}


def _signature(body: dict[str, Any], fields: tuple[str, ...]) -> tuple:
    """What identifies a line/row: amounts compared as numbers ("750" == "750.00"), codes as
    trimmed text. Text columns are left out: IFS may shorten or translate them."""
    out: list[Any] = []
    for field in fields:
        value = body.get(field)
        if field.endswith("Amount"):
            try:
                out.append(Decimal(str(value)) if value not in (None, "") else Decimal(0))
            except InvalidOperation:
                out.append(str(value))
        else:
            out.append("" if value is None else str(value).strip())
    return tuple(out)


def missing_children(expected: list[dict[str, Any]], existing: list[dict[str, Any]],
                     fields: tuple[str, ...]) -> tuple[list[dict[str, Any]], int]:
    """(expected children IFS does not hold yet, how many IFS children are unexplained)."""
    have = Counter(_signature(e, fields) for e in existing)
    missing = []
    for body in expected:
        sig = _signature(body, fields)
        if have[sig] > 0:
            have[sig] -= 1
        else:
            missing.append(body)
    return missing, sum(have.values())


class Finisher:
    def __init__(self, odata: ODataClient, endpoints: dict[str, Endpoint],
                 posting: PostingSettings) -> None:
        self._odata = odata
        self._posting = posting
        self._inv, self._line = endpoints["invoice"], endpoints["invoice_line"]
        self._vou, self._row = endpoints["voucher"], endpoints["voucher_row"]
        code = mapping.code_field(posting)
        self._line_fields = ("Account", code, "CurrAmount", "TaxCode", "TaxCurrAmount")
        self._row_fields = ("Account", code, "CurrencyDebitAmount", "CurrencyCreditAmount")
        self._post_action = ACTIONS["invoice"].format(projection=self._inv.projection)
        self._approve_action = ACTIONS["voucher"].format(projection=self._vou.projection)

    def _path(self, ep: Endpoint, entity: dict[str, Any]) -> str:
        return ep.entity_set + key_predicate(keys_of(ep, entity))

    def child_fields(self, voucher: bool) -> tuple[str, ...]:
        """What identifies a row (voucher) or a line (invoice), see missing_children."""
        return self._row_fields if voucher else self._line_fields

    # ------------------------------------------------------------------ lookup

    async def find(self, request: PostingRequest, doc: mapping.Document,
                   record: list[dict[str, Any]]) -> PostingResult | None:
        head = await self._lookup_invoice(request, record)
        if head is None:
            return None        # the voucher is only ever created after its invoice: none either
        _same_amounts(request, doc.invoice, head, record)
        head, etag = await self.finish_invoice(request, doc, head, head.get("@odata.etag", ""),
                                               record)
        voucher, vetag = {}, ""
        if doc.voucher is not None:
            voucher = await self._lookup_voucher(request, record)
            if voucher is None:
                voucher, vetag = await self.create_voucher(request, doc, record)
            else:
                voucher, vetag = await self.finish_voucher(
                    request, doc, voucher, voucher.get("@odata.etag", ""), record)
        return PostingResult(
            ifs_invoice_id=str(head.get("InvoiceId", "")),
            voucher=keys_of(self._vou, voucher) if voucher else {},
            etags={k: v for k, v in (("invoice", etag), ("voucher", vetag)) if v},
            exchanges=record, found_existing=True)

    async def _lookup_invoice(self, request: PostingRequest, record: list[dict[str, Any]]
                              ) -> dict[str, Any] | None:
        inv = request.invoice
        company = f"Company eq {literal(inv.company)}"
        rows = await self._odata.read_all(
            self._inv.projection, self._inv.entity_set, keys=self._inv.keys, record=record,
            filter=f"{company} and ExternalRef eq {literal(request.ledger_id)}",
            what=f"looking up supplier invoice {inv.ref} by ExternalRef")
        if rows:
            return _prefer(rows, ("Posted", "Preliminary"))
        rows = await self._odata.read_all(
            self._inv.projection, self._inv.entity_set, keys=self._inv.keys, record=record,
            filter=f"{company} and Identity eq {literal(request.supplier_id)} and "
                   f"InvoiceNo eq {literal(inv.invoice_number)}",
            what=f"looking up supplier invoice {inv.ref} by number")
        if not rows:
            return None
        other = rows[0]
        ext = other.get("ExternalRef") or ""
        origin = (f"created for another ledger invoice (ExternalRef {ext})" if ext
                  else "entered outside the connector (no ExternalRef)")
        raise ErpFailure(
            "conflict", f"IFS already holds invoice {inv.invoice_number} of supplier "
            f"{request.supplier_id} in company {inv.company} (InvoiceId {other.get('InvoiceId')},"
            f" {other.get('InvoiceType')}, {other.get('Objstate')}), {origin}; if it is this "
            f"invoice, set its ExternalRef to {request.ledger_id} in IFS; if not, correct the "
            "invoice number in Stampli", code="FND_RECORD_EXIST", exchanges=record)

    async def _lookup_voucher(self, request: PostingRequest, record: list[dict[str, Any]]
                              ) -> dict[str, Any] | None:
        rows = await self._odata.read_all(
            self._vou.projection, self._vou.entity_set, keys=self._vou.keys, record=record,
            filter=f"Company eq {literal(request.invoice.company)} and "
                   f"ExternalRef eq {literal(request.ledger_id)}",
            what=f"looking up the GL voucher of {request.invoice.ref} by ExternalRef")
        return _prefer(rows, ("Approved", "Waiting")) if rows else None

    # ------------------------------------------------------------------ supplier invoice

    async def finish_invoice(self, request: PostingRequest, doc: mapping.Document,
                             head: dict[str, Any], etag: str, record: list[dict[str, Any]], *,
                             known_lines: list[dict[str, Any]] | None = None,
                             rollback: bool = False) -> tuple[dict[str, Any], str]:
        """Add the missing lines and post. `known_lines=[]`: the header was just created."""
        ref = request.invoice.ref
        return await self._finish(
            request, head, etag, record, known_lines, rollback, ep=self._inv, child=self._line,
            expected=doc.lines, fields=self._line_fields, action=self._post_action,
            open_state="Preliminary", done_state="Posted", what=f"supplier invoice {ref}")

    # ------------------------------------------------------------------ GL voucher

    async def create_voucher(self, request: PostingRequest, doc: mapping.Document,
                             record: list[dict[str, Any]]) -> tuple[dict[str, Any], str]:
        """Create, add rows, approve. Called only when a lookup showed no voucher, or right
        after this call created the invoice."""
        assert doc.voucher is not None
        ref = request.invoice.ref
        try:
            head, etag = await self._odata.write(
                "POST", self._vou.projection, self._vou.entity_set, doc.voucher, record=record,
                what=f"creating the GL voucher of {ref}")
            known: list[dict[str, Any]] | None = []
        except OutcomeUnknown:
            found = await self._lookup_voucher(request, record)
            if found is None:
                raise
            head, etag, known = found, found.get("@odata.etag", ""), None
        return await self.finish_voucher(request, doc, head or {}, etag, record,
                                         known_rows=known, rollback=known == [])

    async def finish_voucher(self, request: PostingRequest, doc: mapping.Document,
                             head: dict[str, Any], etag: str, record: list[dict[str, Any]], *,
                             known_rows: list[dict[str, Any]] | None = None,
                             rollback: bool = False) -> tuple[dict[str, Any], str]:
        return await self._finish(
            request, head, etag, record, known_rows, rollback, ep=self._vou, child=self._row,
            expected=doc.rows, fields=self._row_fields, action=self._approve_action,
            open_state="Waiting", done_state="Approved",
            what=f"GL voucher of {request.invoice.ref}")

    # ------------------------------------------------------------------ the shared loop

    async def _finish(self, request: PostingRequest, head: dict[str, Any], etag: str,
                      record: list[dict[str, Any]], known: list[dict[str, Any]] | None,
                      rollback: bool, *, ep: Endpoint, child: Endpoint,
                      expected: list[dict[str, Any]], fields: tuple[str, ...], action: str,
                      open_state: str, done_state: str, what: str) -> tuple[dict[str, Any], str]:
        for _ in range(ROUNDS):
            state = head.get("Objstate")
            if state == done_state:
                return head, etag
            if state not in (None, open_state):
                raise ErpFailure("conflict", f"IFS holds the {what} in state {state} "
                                 f"({self._path(ep, head)}); resolve it in IFS",
                                 code="FND_STATE_NOT_ALLOWED", exchanges=record)
            path = self._path(ep, head)
            try:
                if known is None:
                    known = await self._odata.read_all(
                        child.projection, f"{path}/{child.entity_set}", keys=child.keys,
                        record=record, what=f"reading what IFS holds of the {what}")
                missing, unexplained = missing_children(expected, known, fields)
                if unexplained:
                    raise ErpFailure("conflict", f"IFS holds the {what} ({path}, {state}) with "
                                     f"{unexplained} line(s) this document does not have; it "
                                     "was changed in IFS or the invoice was amended: correct or"
                                     " delete it in IFS", code="CONTENT_DIFFERS",
                                     exchanges=record)
                await self._add_children(path, etag, missing, child, record, what)
                final, etag = await self._odata.write("POST", ep.projection, f"{path}/{action}",
                                                      {}, if_match=etag, record=record,
                                                      what=f"posting the {what}")
                return {**head, **(final or {}), "Objstate": (final or {}).get(
                    "Objstate", done_state)}, etag
            except (PreconditionFailed, OutcomeUnknown):
                # Someone changed it, or an answer was lost: read it again and re-check.
                fresh, fresh_etag = await self._odata.get_entity(
                    ep.projection, path, record=record, what=f"re-reading the {what}")
                if fresh is None:
                    raise ErpFailure("conflict", f"the {what} ({path}) disappeared from IFS "
                                     "while the connector finished it", exchanges=record)
                head, etag, known = fresh, fresh_etag, None
            except ErpFailure as exc:
                if rollback and exc.kind != "transient":
                    await self._rollback(ep, path, etag, record, what)
                exc.exchanges = record
                raise
        raise ErpFailure("transient", f"the {what} kept changing in IFS while the connector "
                         f"finished it ({ROUNDS} rounds); it retries later", exchanges=record)

    async def _add_children(self, path: str, etag: str, missing: list[dict[str, Any]],
                            child: Endpoint, record: list[dict[str, Any]], what: str) -> None:
        """Add the missing lines (rows) to an existing header. With `$batch`, in chunks of
        one changeset of at most 5000 operations each: a 10,000-line document costs two
        requests, not 10,000 (and waits out a 429 as one request). Adding a child keeps the
        parent's ETag, so every chunk carries the same If-Match."""
        url = f"{path}/{child.entity_set}"
        if not self._odata.settings.use_batch or len(missing) < 2:
            for body in missing:
                await self._odata.write("POST", child.projection, url, body, if_match=etag,
                                        prefer="return=minimal", record=record,
                                        what=f"adding a line to the {what}")
            return
        for start in range(0, len(missing), batchlib.MAX_OPERATIONS):
            chunk = missing[start:start + batchlib.MAX_OPERATIONS]
            doing = f"adding lines {start + 1}-{start + len(chunk)} to the {what}"
            ops = tuple(batchlib.Operation("POST", encode_path(url), body, if_match=etag,
                                           content_id=str(n), prefer="return=minimal")
                        for n, body in enumerate(chunk, start=1))
            body, headers, _ = batchlib.build([batchlib.Changeset(ops)])
            reply, info = await self._odata.batch(child.projection, body, headers, what=doing)
            record.append(info)
            try:
                [answer] = batchlib.parse(reply.body, reply.headers.get("content-type", ""))
            except ValueError as exc:
                raise OutcomeUnknown(f"IFS's answer to {doing} could not be read ({exc})",
                                     exchanges=record) from None
            if answer.ok:
                continue
            err = answer.error
            assert err is not None
            action = classify(err.status, err.body, method="POST", during_write=True)
            if action == REREAD:
                raise PreconditionFailed(f"IFS says the {what} changed while {doing} (HTTP "
                                         "412)", exchanges=record)
            if action in (UNKNOWN, RETRY):       # re-read, re-check, add what is missing
                raise OutcomeUnknown(f"IFS answered HTTP {err.status} while {doing}",
                                     status=err.status, exchanges=record)
            raise failure(action, err.status, err.body, what=doing,
                          projection=child.projection, exchanges=record)

    async def _rollback(self, ep: Endpoint, path: str, etag: str,
                        record: list[dict[str, Any]], what: str) -> None:
        """Delete a document this very call created and could not complete, so that a
        corrected document can be posted later without a half-made one in the way."""
        try:
            await self._odata.write("DELETE", ep.projection, path, None, if_match=etag,
                                    record=record, what=f"removing the incomplete {what}")
        except ErpFailure:
            pass        # it stays Preliminary/Waiting; a later find() finishes or reports it


def _prefer(rows: list[dict[str, Any]], states: tuple[str, ...]) -> dict[str, Any]:
    for state in states:
        for row in rows:
            if row.get("Objstate") == state:
                return row
    return rows[0]


def _same_amounts(request: PostingRequest, sent: dict[str, Any], held: dict[str, Any],
                  record: list[dict[str, Any]]) -> None:
    """The document an earlier attempt left in IFS must say what the invoice says now: it was
    amended in between otherwise, and finishing (or taking) the old one would post amounts
    the ledger no longer holds."""
    differ = [f"{field} {held[field]} (the invoice now says {sent[field]})"
              for field in HEADER_AMOUNTS if field in held and field in sent
              and _signature(held, (field,)) != _signature(sent, (field,))]
    if differ:
        raise ErpFailure(
            "conflict", f"IFS already holds supplier invoice {request.invoice.ref} (ExternalRef "
            f"{request.ledger_id}, InvoiceId {held.get('InvoiceId')}, {held.get('Objstate')}) "
            f"with {', '.join(differ)}: it was amended after an earlier attempt reached IFS; "
            f"correct the document in IFS, then {replay_command(request.invoice.ref)}",
            code="CONTENT_DIFFERS", exchanges=record)
