"""The common new invoice (no rule broken, approved) is recorded as two events, Discovered and
Parsed, whose stored states are encoded here directly: building the event objects, then the
mapper taking them apart again (topic, vars, pops), and turning the invoice into a dict only
to encode it, cost about as much as storing them. Same topics, same stored members in the
same order (tests/ledger/test_intake_fast_path.py holds them equal to the aggregate's).

A reader in a worker process (adapters/stampli/worker.py) encodes them there, so that the
recording process only seals and stores them: it yields PreparedInvoice items, which intake
(ledger/intake.py) records as they are when the ledger does not hold the invoice yet, and
decodes into the ParsedInvoice otherwise.
"""
from __future__ import annotations

from typing import NamedTuple
from uuid import UUID

import msgspec
import orjson
from eventsourcing.utils import get_topic

from ledger import __version__
from ledger.codec import encode
from ledger.invoice import Invoice
from ledger.model import CanonicalInvoice, ParsedInvoice, invoice_json

INVOICE_TOPIC = get_topic(Invoice)
DISCOVERED, PARSED = get_topic(Invoice.Discovered), get_topic(Invoice.Parsed)
_now = Invoice.Event.create_timestamp
_encode_parsed = msgspec.msgpack.Encoder().encode
_decode_parsed = msgspec.msgpack.Decoder(ParsedInvoice).decode


class ExportFileRef(NamedTuple):
    """The file the invoices are read from, as their first events name it."""
    name: str
    sha256: str


def states(item: ParsedInvoice, file: ExportFileRef) -> tuple[bytes, bytes]:
    """The stored states (not yet MACed) of a new invoice's Discovered and Parsed events."""
    canonical = item.invoice
    return (encode({"timestamp": _now(), "originator_topic": INVOICE_TOPIC,
                    "connector_version": __version__, "company": canonical.company,
                    "vendor_id": canonical.vendor_id, "document_type": canonical.document_type,
                    "invoice_number": canonical.invoice_number, "file_name": file.name,
                    "file_sha256": file.sha256, "locations": list(item.locations)}),
            encode({"timestamp": _now(), "connector_version": __version__,
                    "invoice": orjson.Fragment(invoice_json(canonical)),
                    "content_hash": item.content_hash, "violations": [],
                    "file_name": file.name, "file_sha256": file.sha256}))


class PreparedInvoice(msgspec.Struct, frozen=True, array_like=True):
    """A ParsedInvoice prepared in the reader's process for intake: `states` are those of
    states() (None when the invoice broke a rule: intake's general path records it). The
    ParsedInvoice itself, which intake needs only for an invoice it already holds, is read
    back from the states (they hold all of it); `raw` carries it (msgpack) when there are none."""
    id: UUID
    approval_status: str
    states: tuple[bytes, bytes] | None
    raw: bytes = b""

    def parsed(self) -> ParsedInvoice:
        if self.states is None:
            return _decode_parsed(self.raw)
        discovered, parsed = self.states
        found = _decode_parsed_state(parsed)
        return ParsedInvoice(invoice=found.invoice, violations=(),
                             locations=_decode_discovered_state(discovered).locations,
                             id=self.id, content_hash=found.content_hash)


class _DiscoveredState(msgspec.Struct):
    locations: tuple[int, ...]


class _ParsedState(msgspec.Struct):
    invoice: CanonicalInvoice
    content_hash: str


_decode_discovered_state = msgspec.json.Decoder(_DiscoveredState).decode
_decode_parsed_state = msgspec.json.Decoder(_ParsedState).decode


def prepare(item: ParsedInvoice, file: ExportFileRef) -> PreparedInvoice:
    assert item.id is not None         # set when the ParsedInvoice was built
    if item.violations:
        return PreparedInvoice(item.id, item.invoice.approval_status, None,
                               _encode_parsed(item))
    return PreparedInvoice(item.id, item.invoice.approval_status, states(item, file))
