"""The canonical invoice (what every export template becomes) and the invoice identity.

Amounts are Decimal; dates are ISO `YYYY-MM-DD` strings once parsed. An invoice that broke a
rule still becomes a CanonicalInvoice (with whatever could be read) plus its RuleViolations,
so the ledger records it and a person can see why it does not post.
"""
from __future__ import annotations

import hashlib
import re
import uuid
from decimal import Decimal

import msgspec

# Fixed namespace: changing it would move every invoice to a new stream.
INVOICE_NAMESPACE = uuid.UUID("6f1c2a9e-3b7d-5e48-9a0c-2d4b8e6f1a37")
FILE_NAMESPACE = uuid.UUID("0b8e6a52-7c1f-5d39-8e2a-4f6b9c3d1e70")
VENDOR_NAMESPACE = uuid.UUID("a3d5f7b9-1c2e-5f40-8b6d-9e0a2c4e6f81")

DOCUMENT_TYPES = ("Invoice", "CreditNote")
_WHITESPACE = re.compile(r"\s+")


def normalize_invoice_number(number: str) -> str:
    """Trim, case-fold and remove inner white space (stampli-exports.md §6)."""
    return _WHITESPACE.sub("", number).casefold()


def invoice_identity(company: str, vendor_id: str, document_type: str, invoice_number: str) -> str:
    return "|".join((company.strip(), vendor_id.strip(), document_type.strip(),
                     normalize_invoice_number(invoice_number)))


def invoice_id(company: str, vendor_id: str, document_type: str, invoice_number: str) -> uuid.UUID:
    return _uuid5(_INVOICE_NAMESPACE_BYTES,
                  invoice_identity(company, vendor_id, document_type, invoice_number))


_INVOICE_NAMESPACE_BYTES = INVOICE_NAMESPACE.bytes
_VERSION_5 = (~((0xC000 << 48) | (0xF000 << 64)), (0x8000 << 48) | (5 << 76))


def _uuid5(namespace: bytes, name: str) -> uuid.UUID:
    """uuid.uuid5, without UUID.__init__'s argument checks (half its cost; intake computes
    one per invoice). Same bytes: SHA-1 of namespace + UTF-8 name, version 5, RFC 4122."""
    digest = hashlib.sha1(namespace + name.encode("utf-8")).digest()
    clear, set_bits = _VERSION_5
    value = object.__new__(uuid.UUID)
    object.__setattr__(value, "int", int.from_bytes(digest[:16], "big") & clear | set_bits)
    object.__setattr__(value, "is_safe", uuid.SafeUUID.unknown)
    return value


def export_file_id(path: str, sha256: str) -> uuid.UUID:
    return uuid.uuid5(FILE_NAMESPACE, f"{path}|{sha256}")


def vendor_stream_id(vendor_id: str) -> uuid.UUID:
    return uuid.uuid5(VENDOR_NAMESPACE, vendor_id.strip())


class InvoiceLine(msgspec.Struct, frozen=True, kw_only=True):
    line_number: int
    description: str = ""
    gl_account: str
    cost_center: str
    net: Decimal | None
    tax_code: str = ""
    tax: Decimal | None = Decimal("0")
    source_line: int = 0               # line (CSV) or element index (XML) in the export file


class CanonicalInvoice(msgspec.Struct, frozen=True, kw_only=True):
    company: str                       # IFS company code
    stampli_company_id: str = ""
    stampli_invoice_id: str = ""
    document_type: str
    invoice_number: str
    vendor_id: str
    vendor_name: str = ""
    invoice_date: str = ""             # ISO date when it parsed, else the raw text
    due_date: str = ""
    currency: str
    net: Decimal | None
    tax: Decimal | None
    total: Decimal | None
    approval_status: str
    approved_at: str = ""
    approved_by: str = ""
    po_number: str = ""
    exported_at: str = ""
    lines: tuple[InvoiceLine, ...] = ()

    @property
    def id(self) -> uuid.UUID:
        return invoice_id(self.company, self.vendor_id, self.document_type, self.invoice_number)

    @property
    def ref(self) -> str:
        """What a person types: VENDOR_ID/INVOICE_NUMBER."""
        return f"{self.vendor_id}/{self.invoice_number}"


class RuleViolation(msgspec.Struct, frozen=True, kw_only=True):
    rule: str                          # short id, e.g. "lines_sum_net"
    field: str                         # canonical field name
    message: str                       # what was found, what was expected
    line: int = 0                      # file line (CSV) or element index (XML); 0 = whole invoice


class ParsedInvoice(msgspec.Struct, frozen=True, kw_only=True):
    """One invoice read from an export file, with where it came from and what is wrong.
    `id` and `content_hash` are the invoice's; computed when it is built, so that a reader
    in a worker process (adapters/stampli/worker.py) spares the recording process them."""
    invoice: CanonicalInvoice
    violations: tuple[RuleViolation, ...] = ()
    locations: tuple[int, ...] = ()    # the CSV lines / XML element index it was read from
    id: uuid.UUID | None = None        # the invoice's stream id (invoice_id)
    content_hash: str = ""

    def __post_init__(self) -> None:
        # Also run after decoding, which brings both along. (content_hash below is the
        # module's function: a method does not see the class's names.)
        if self.id is None:
            msgspec.structs.force_setattr(self, "id", self.invoice.id)
        if not self.content_hash:
            msgspec.structs.force_setattr(self, "content_hash", content_hash(self.invoice))


_encoder = msgspec.json.Encoder(decimal_format="string", order="sorted")
_last_json: tuple[object, bytes] = (None, b"")


def invoice_json(invoice: CanonicalInvoice) -> bytes:
    """The invoice as the Parsed event stores it (sorted members, decimals as strings). The
    last one is kept: the content hash and the Parsed state of a new invoice are both made of
    it, and encoding it is most of their cost."""
    global _last_json
    last, data = _last_json
    if last is not invoice:            # `is`: the tuple keeps `last` alive, so no id reuse
        data = _encoder.encode(invoice)
        _last_json = (invoice, data)
    return data


def invoice_to_data(invoice: CanonicalInvoice) -> dict:
    """JSON-native form for the ledger: decimals as strings."""
    return msgspec.to_builtins(invoice, order="sorted")


def invoice_data_and_hash(invoice: CanonicalInvoice) -> tuple[dict, str]:
    """(invoice_to_data(invoice), content_hash(invoice))."""
    return invoice_to_data(invoice), content_hash(invoice)


def invoice_from_data(data: dict) -> CanonicalInvoice:
    return msgspec.convert(data, CanonicalInvoice, strict=False)


# In the encoder's output a quote inside a string is always escaped (\"), so a member name
# preceded by a comma is a member, never text: blanking these two is blanking the fields.
_EXPORTED_AT = re.compile(rb',"exported_at":"(?:[^"\\]|\\.)*"')
_EXPORTED_AT_OPEN = b',"exported_at":"'
_SOURCE_LINE_OPEN = b',"source_line":'


def content_hash(invoice: CanonicalInvoice) -> str:
    """Hash of the canonical content: the JSON of the invoice with exported_at and every
    line's source_line blanked. Where in which file it was read does not count, so the same
    invoice in another file is a duplicate, not an amendment. (The bytes are those of
    encoding the struct with both fields blanked; tests/ledger/test_content_hash.py holds
    the two equal. Blanking the JSON spares a copy of the invoice and an encoding; splitting
    at the member names, a search in C, costs a third of a regex scanning every byte.)"""
    head, _, rest = invoice_json(invoice).partition(_EXPORTED_AT_OPEN)   # always there
    end = rest.find(b'"')
    if b"\\" in rest[:end]:           # an escape: the first quote may be inside the value
        rest = _EXPORTED_AT.sub(b"", _EXPORTED_AT_OPEN + rest, count=1)
    else:
        rest = rest[end + 1:]
    pieces = (head + _EXPORTED_AT_OPEN + b'"' + rest).split(_SOURCE_LINE_OPEN)
    # After each split point an integer: [-]digits, then the next member or the line's end.
    blanked = [pieces[0], *[b"0" + piece.lstrip(b"-0123456789") for piece in pieces[1:]]]
    return hashlib.sha256(_SOURCE_LINE_OPEN.join(blanked)).hexdigest()


class VendorRecord(msgspec.Struct, frozen=True, kw_only=True):
    """A vendor as the latest vendor export describes it."""
    vendor_id: str
    name: str
    tax_id: str = ""
    address_line1: str = ""
    city: str = ""
    postal_code: str = ""
    country: str = ""                  # ISO 3166 alpha-2
    currency: str = ""
    payment_terms: str = ""
    active: bool = True
    source_line: int = 0


class PurchaseOrderLine(msgspec.Struct, frozen=True, kw_only=True):
    po_number: str
    vendor_id: str
    line_number: int
    description: str = ""
    quantity: Decimal | None = None
    unit_price: Decimal | None = None
    amount: Decimal | None = None
    currency: str = ""
    status: str = ""
    source_line: int = 0


class RejectedRow(msgspec.Struct, frozen=True, kw_only=True):
    """A row (or XML element) that could not be attributed to any record; its neighbours go on."""
    line: int
    field: str
    message: str
