"""CanonicalInvoice -> IFS payloads (supplier invoice header + lines, GL voucher + rows). Pure.

Amounts stay Decimal until the last step and go on the wire as strings written with exactly
the currency's minor units (JPY "1250", USD "1250.00", KWD "12.345"). Everything IFS would
refuse for arithmetic reasons is refused here first, with kind "data", so a person sees the
reason without a round trip: an amount with too many decimals, lines that do not add up to the
header, a voucher that does not balance to the minor unit, a tax code without a tax account.
"""
from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

import msgspec

from adapters.settings import PostingSettings
from ledger.model import CanonicalInvoice
from ledger.money import MoneyError, fits_currency, minor_units, quantize, to_wire
from ledger.ports import ErpFailure, PostingRequest

_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
ZERO = Decimal(0)
TEXT_MAX = 100                         # IFS text columns are short; keep the start


class Document(msgspec.Struct, frozen=True):
    """Everything to send for one PostingRequest."""
    invoice: dict[str, Any]
    lines: list[dict[str, Any]]
    voucher: dict[str, Any] | None
    rows: list[dict[str, Any]]


def code_field(posting: PostingSettings) -> str:
    """The cost-center field of a line/row: the configured code part letter ("B" -> CodeB)."""
    return f"Code{posting.cost_center_code_part.strip().upper()}"


def _fail(invoice: CanonicalInvoice, problem: str, fix: str = "correct it in Stampli") -> ErpFailure:
    return ErpFailure("data", f"{problem} (invoice {invoice.ref}); {fix}", code="DATA")


def _money(invoice: CanonicalInvoice, value: Decimal | None, what: str) -> Decimal:
    if value is None:
        raise _fail(invoice, f"{what} is missing")
    try:
        if not fits_currency(value, invoice.currency):
            raise _fail(invoice, f"{what} {value} has more decimals than {invoice.currency} "
                                 f"allows ({minor_units(invoice.currency)})")
        return quantize(value, invoice.currency)
    except MoneyError as exc:
        raise _fail(invoice, f"currency: {exc}") from None


def _wire(invoice: CanonicalInvoice, value: Decimal) -> str:
    return to_wire(quantize(value, invoice.currency))


def _text(value: str) -> str:
    return " ".join(value.split())[:TEXT_MAX]


def _check_header(invoice: CanonicalInvoice) -> tuple[Decimal, Decimal, Decimal]:
    try:
        minor_units(invoice.currency)
    except MoneyError as exc:
        raise _fail(invoice, str(exc)) from None
    if not _ISO_DATE.match(invoice.invoice_date or ""):
        raise _fail(invoice, f"invoice date {invoice.invoice_date!r} is not a YYYY-MM-DD date")
    if invoice.due_date and not _ISO_DATE.match(invoice.due_date):
        raise _fail(invoice, f"due date {invoice.due_date!r} is not a YYYY-MM-DD date")
    if not invoice.lines:
        raise _fail(invoice, "the invoice has no lines")
    net = _money(invoice, invoice.net, "net amount")
    tax = _money(invoice, invoice.tax, "tax amount")
    gross = _money(invoice, invoice.total, "total")
    if net + tax != gross:
        raise _fail(invoice, f"net {net} + tax {tax} is not the total {gross} {invoice.currency}")
    line_net = sum((_money(invoice, ln.net, f"line {ln.line_number} net") for ln in invoice.lines),
                   ZERO)
    line_tax = sum((_money(invoice, ln.tax or ZERO, f"line {ln.line_number} tax")
                    for ln in invoice.lines), ZERO)
    if line_net != net:
        raise _fail(invoice, f"the lines' net amounts add up to {line_net}, the header says {net}")
    if line_tax != tax:
        raise _fail(invoice, f"the lines' tax amounts add up to {line_tax}, the header says {tax}")
    return net, tax, gross


def invoice_type(invoice: CanonicalInvoice) -> str:
    return "CREDIT" if invoice.document_type == "CreditNote" else "INVOICE"


def invoice_payload(request: PostingRequest, totals: tuple[Decimal, Decimal, Decimal]
                    ) -> dict[str, Any]:
    """The supplier-invoice header (totals: _check_header's). A credit note keeps its
    negative amounts (IFS credit invoices carry negative amounts; InvoiceType CREDIT says what
    it is)."""
    inv = request.invoice
    net, tax, gross = totals
    body: dict[str, Any] = {
        "Company": inv.company,
        "Identity": request.supplier_id,
        "InvoiceNo": inv.invoice_number,
        "InvoiceType": invoice_type(inv),
        "InvoiceDate": inv.invoice_date,
        "Currency": inv.currency,
        "NetCurrAmount": _wire(inv, net),
        "VatCurrAmount": _wire(inv, tax),
        "GrossCurrAmount": _wire(inv, gross),
        "ExternalRef": request.ledger_id,
    }
    if inv.due_date:
        body["DueDate"] = inv.due_date
    if inv.po_number:
        body["PurchaseOrderRef"] = inv.po_number
    return body


def line_payloads(invoice: CanonicalInvoice, posting: PostingSettings) -> list[dict[str, Any]]:
    field = code_field(posting)
    lines = []
    for ln in sorted(invoice.lines, key=lambda x: x.line_number):
        body: dict[str, Any] = {
            "Account": ln.gl_account,
            field: ln.cost_center,
            "CurrAmount": _wire(invoice, _money(invoice, ln.net, f"line {ln.line_number} net")),
            "TaxCurrAmount": _wire(invoice, _money(invoice, ln.tax or ZERO,
                                                   f"line {ln.line_number} tax")),
            "Text": _text(ln.description or f"{invoice.ref} line {ln.line_number}"),
        }
        if ln.tax_code:
            body["TaxCode"] = ln.tax_code
        lines.append(body)
    return lines


def _row(invoice: CanonicalInvoice, account: str, signed: Decimal, text: str,
         extra: dict[str, Any]) -> dict[str, Any]:
    """signed > 0 is a debit, < 0 a credit; the columns always hold positive amounts."""
    debit, credit = (signed, ZERO) if signed > 0 else (ZERO, -signed)
    return {"Account": account, **extra,
            "CurrencyDebitAmount": _wire(invoice, debit),
            "CurrencyCreditAmount": _wire(invoice, credit),
            "Text": _text(text)}


def voucher_payloads(request: PostingRequest, posting: PostingSettings,
                     totals: tuple[Decimal, Decimal, Decimal]
                     ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """GL voucher (totals: _check_header's): expense per line on its cost center, input
    tax per tax code account, AP liability for the gross. An invoice debits expense and tax
    and credits AP; a credit note (negative amounts) lands on the opposite sides by the same
    rule."""
    inv = request.invoice
    _, _, gross = totals
    field = code_field(posting)
    rows: list[dict[str, Any]] = []
    tax_by_code: dict[str, Decimal] = {}
    for ln in sorted(inv.lines, key=lambda x: x.line_number):
        amount = _money(inv, ln.net, f"line {ln.line_number} net")
        if amount:
            rows.append(_row(inv, ln.gl_account, amount,
                             ln.description or f"{inv.ref} line {ln.line_number}",
                             {field: ln.cost_center}))
        tax = _money(inv, ln.tax or ZERO, f"line {ln.line_number} tax")
        if tax:
            if not ln.tax_code:
                raise _fail(inv, f"line {ln.line_number} has tax {tax} but no tax code")
            tax_by_code[ln.tax_code] = tax_by_code.get(ln.tax_code, ZERO) + tax
    for tax_code, amount in tax_by_code.items():
        account = posting.tax_accounts.get(tax_code)
        if not account:
            raise _fail(inv, f"tax code {tax_code} has no input-tax account",
                        f"add it to `ifs.posting.tax_accounts` (e.g. {tax_code} = \"2640\") "
                        "or correct the tax code in Stampli")
        if amount:
            rows.append(_row(inv, account, amount, f"{inv.ref} input tax {tax_code}", {}))
    if gross:
        rows.append(_row(inv, posting.ap_liability_account, -gross,
                         f"{inv.ref} {inv.vendor_name}".strip(), {}))
    debit = sum((Decimal(r["CurrencyDebitAmount"]) for r in rows), ZERO)
    credit = sum((Decimal(r["CurrencyCreditAmount"]) for r in rows), ZERO)
    if quantize(debit, inv.currency) != quantize(credit, inv.currency):
        raise _fail(inv, f"the GL voucher does not balance: debit {debit}, credit {credit} "
                         f"{inv.currency}")
    if len(rows) < 2:
        raise _fail(inv, "the GL voucher would have fewer than two rows (all amounts zero)")
    header = {
        "Company": inv.company,
        "VoucherType": posting.voucher_type,
        "VoucherDate": inv.invoice_date,
        "Currency": inv.currency,
        "Text": _text(f"{inv.ref} {inv.vendor_name}".strip()),
        "ExternalRef": request.ledger_id,
    }
    return header, rows


def document(request: PostingRequest, posting: PostingSettings) -> Document:
    """All payloads of one request, or ErpFailure(kind="data") before anything is sent."""
    totals = _check_header(request.invoice)
    header = invoice_payload(request, totals)
    lines = line_payloads(request.invoice, posting)
    voucher, rows = (voucher_payloads(request, posting, totals) if posting.post_voucher
                     else (None, []))
    return Document(invoice=header, lines=lines, voucher=voucher, rows=rows)
