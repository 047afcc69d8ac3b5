"""The rules every parsed invoice must pass (stampli-exports.md §5).

`build_invoice` turns the raw text of one invoice (its rows, from CSV or XML) into a
CanonicalInvoice plus every RuleViolation found. It never raises for bad data: a value that
does not parse becomes None (amounts) or stays raw text (dates) and is reported, so the invoice
is still recorded and a person can see all that is wrong with it at once.

Pass 2 of a CSV export tries plain_invoice.py first, which checks the same rules on the raw
rows and gives up at the first doubt: a rule added here must be added there too
(tests/stampli/test_plain_invoice.py fails until it is, given a defect that breaks it).
"""
from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from functools import lru_cache
from itertools import chain, repeat
from operator import attrgetter, is_not, itemgetter

from adapters.stampli.values import Formats, ValueProblem, line_number
from ledger.model import (DOCUMENT_TYPES, CanonicalInvoice, InvoiceLine, ParsedInvoice,
                          RuleViolation)
from ledger.money import is_currency, minor_units

HEADER_FIELDS = (
    "company_id", "stampli_invoice_id", "document_type", "invoice_number", "vendor_id",
    "vendor_name", "invoice_date", "due_date", "currency", "invoice_net", "invoice_tax",
    "invoice_total", "approval_status", "approved_at", "approved_by", "po_number", "exported_at",
)
LINE_FIELDS = ("line_number", "line_description", "gl_account", "cost_center", "line_net",
               "tax_code", "line_tax")
_AMOUNTS = frozenset({"invoice_net", "invoice_tax", "invoice_total", "line_net", "line_tax"})
_INVOICE_AMOUNTS = ("invoice_net", "invoice_tax", "invoice_total")
_DATES = frozenset({"invoice_date", "due_date"})
_REQUIRED_TEXT = ("vendor_name", "currency", "invoice_date")
_TIMESTAMPS = ("approved_at", "exported_at")
# Free text that may span lines; every other field is one line.
MULTILINE_FIELDS = frozenset({"line_description"})
# C0 controls but tab and line breaks, DEL, C1 controls: never posted to IFS, never printed.
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_LINE_BREAK = re.compile("[\r\n\u2028\u2029]")
_SUSPECT = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\n\u2028\u2029]")
_PLAIN_ASCII = b"\t" + bytes(range(0x20, 0x7f))   # bytes _SUSPECT never matches
_NO_HEADER = ("",) * len(HEADER_FIELDS)    # defaults for map(values.get, HEADER_FIELDS, ...)
_HEADER_TEXT = itemgetter(*HEADER_FIELDS)
_ZERO = Decimal("0")                       # immutable: one for every empty line tax
LINE_ORDER = attrgetter("line_number", "source_line")


@dataclass(slots=True)
class Row:
    """Raw text of one CSV row or XML element: canonical field -> stripped value ('' absent)."""
    line: int
    values: dict[str, str]
    problems: Sequence[tuple[str, str, str]] = ()   # (rule, field, message)

    def get(self, name: str) -> str:
        return self.values.get(name, "")


@dataclass(frozen=True)
class Context:
    company: str                       # the IFS company the invoice belongs to
    formats: Formats
    labels: Mapping[str, str]          # canonical field -> column header / XML element

    def label(self, name: str) -> str:
        return self.labels.get(name, name)


def build_invoice(header_rows: Sequence[Row], line_rows: Sequence[Row], ctx: Context,
                  locations: Sequence[int]) -> ParsedInvoice:
    """header_rows: rows carrying the header fields (CSV: every row; XML: the <Invoice>);
    line_rows: rows carrying the line fields (CSV: every row; XML: each <Line>)."""
    return _Builder(ctx).build(header_rows, line_rows, tuple(locations))


class _Builder:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.violations: list[RuleViolation] = []

    def flag(self, rule: str, name: str, line: int, message: str) -> None:
        self.violations.append(RuleViolation(rule=rule, field=name, line=line, message=message))

    def build(self, header_rows: Sequence[Row], line_rows: Sequence[Row],
              locations: tuple[int, ...]) -> ParsedInvoice:
        ctx, first = self.ctx, header_rows[0]
        get = first.values.get
        # CSV passes the same rows as header and line rows; XML distinct ones.
        rows = header_rows if header_rows is line_rows else \
            {id(r): r for r in (*header_rows, *line_rows)}.values()
        # One C scan per invoice; the rows' fields are looked at only when it finds something.
        suspect = is_suspect("".join(chain.from_iterable([r.values.values() for r in rows])))
        for row in rows:
            for rule, name, message in row.problems:
                self.flag(rule, name, row.line, message)
            if suspect and _SUSPECT.search("".join(row.values.values())):
                self._characters(row)
        self._agreement(header_rows)
        for name in _TIMESTAMPS:
            text = get(name, "")
            if text and not is_timestamp(text):
                self._timestamp(first, name, text)

        doc_type = get("document_type", "")
        if doc_type not in DOCUMENT_TYPES:
            self.flag("document_type", "document_type", first.line,
                      f"{ctx.label('document_type')} is {doc_type!r}; expected Invoice or "
                      f"CreditNote")
        for name in _REQUIRED_TEXT:
            if not get(name):
                self.flag("required", name, first.line, f"{ctx.label(name)} is empty; it is "
                          f"required")
        currency = get("currency", "")
        if currency and not is_currency(currency):
            self.flag("currency_unknown", "currency", first.line,
                      f"{ctx.label('currency')} {currency!r} is not an ISO 4217 currency code "
                      f"(e.g. USD, EUR, JPY); fix the invoice in Stampli")
        money_ok = is_currency(currency)
        units = minor_units(currency) if money_ok else None
        texts = [get(name, "") for name in _INVOICE_AMOUNTS]
        for row in line_rows:
            texts += (row.values.get("line_net", ""), row.values.get("line_tax", ""))
        amounts = ctx.formats.plain_amounts(texts, units)
        if amounts is None:            # some amount breaks a rule: each is read on its own
            net, tax, total = (self._money(first, name, units, currency)
                               for name in _INVOICE_AMOUNTS)
        else:
            net, tax, total = amounts[:3]
        invoice_date, invoice_ok = self._date(first, "invoice_date")
        due_date, due_ok = self._date(first, "due_date")
        if invoice_ok and due_ok and due_date < invoice_date:
            self.flag("due_before_invoice", "due_date", first.line,
                      f"{ctx.label('due_date')} {due_date} is before "
                      f"{ctx.label('invoice_date')} {invoice_date}")

        if amounts is None:
            lines = [self._line(row, units, currency) for row in line_rows]
        else:
            lines = [self._line(row, units, currency, line_net, line_tax)
                     for row, line_net, line_tax in zip(line_rows, amounts[3::2], amounts[4::2])]
        self._lines(lines, net, tax, total, doc_type)
        lines.sort(key=LINE_ORDER)

        invoice = CanonicalInvoice(
            company=ctx.company, stampli_company_id=get("company_id", ""),
            stampli_invoice_id=get("stampli_invoice_id", ""), document_type=doc_type,
            invoice_number=get("invoice_number", ""), vendor_id=get("vendor_id", ""),
            vendor_name=get("vendor_name", ""), invoice_date=invoice_date, due_date=due_date,
            currency=currency, net=net, tax=tax, total=total,
            approval_status=get("approval_status", ""), approved_at=get("approved_at", ""),
            approved_by=get("approved_by", ""), po_number=get("po_number", ""),
            exported_at=get("exported_at", ""), lines=tuple(lines))
        return ParsedInvoice(invoice=invoice, violations=tuple(self.violations),
                             locations=locations)

    # ------------------------------------------------------------------ values

    def _money(self, row: Row, name: str, units: int | None, currency: str, *,
               empty_is_zero: bool = False) -> Decimal | None:
        """The amount, or None (reported) when it does not parse; checks minor units (units:
        the currency's, None when the currency is unknown)."""
        text = row.values.get(name, "")
        if not text and empty_is_zero:
            return _ZERO
        try:
            amount, decimals = self.ctx.formats.amount(text)
        except ValueProblem as exc:
            self.flag("amount_format", name, row.line, f"{self.ctx.label(name)}: {exc}")
            return None
        if units is not None and decimals > units:   # ledger.money.fits_currency, from text
            self.flag("amount_precision", name, row.line,
                      f"{self.ctx.label(name)} {text!r} has more decimals than {currency} "
                      f"allows ({units}, ISO 4217 minor units); fix the amount in Stampli")
        return amount

    def _date(self, row: Row, name: str) -> tuple[str, bool]:
        """(ISO date, True) or (the raw text, False) when empty or not a date (reported)."""
        text = row.get(name)
        if not text:
            return "", False
        try:
            return self.ctx.formats.date(text), True
        except ValueProblem as exc:
            self.flag("date_format", name, row.line, f"{self.ctx.label(name)}: {exc}")
            return text, False

    def _timestamp(self, row: Row, name: str, text: str) -> None:
        """text is not an ISO 8601 date and time with its UTC offset (2026-11-06T15:22:10Z)."""
        self.flag("timestamp_format", name, row.line,
                  f"{self.ctx.label(name)}: expected an ISO 8601 date and time with its UTC "
                  f"offset (e.g. '2026-11-06T15:22:10Z'), got {text[:60]!r}; fix the export "
                  f"template in Stampli")

    def _characters(self, row: Row) -> None:
        """Control characters (a terminal escape, a NUL) and line breaks in a one-line field
        break a rule; the message shows where, never the character itself."""
        label = self.ctx.label
        for name, text in row.values.items():
            bad = _CONTROL.search(text)
            if bad:
                self.flag("control_character", name, row.line,
                          f"{label(name)} holds the control character U+{ord(bad.group()):04X} "
                          f"at position {bad.start() + 1} (after {text[:bad.start()][-30:]!r}); "
                          f"control characters are never posted to IFS: remove it in Stampli "
                          f"and export again")
            if name not in MULTILINE_FIELDS:
                brk = _LINE_BREAK.search(text)
                if brk:
                    self.flag("line_break", name, row.line,
                              f"{label(name)} holds a line break at position {brk.start() + 1}"
                              f" (after {_CONTROL.sub('?', text[:brk.start()][-30:])!r}), "
                              f"where the template allows none: a quote in the export may be "
                              f"misplaced, so this row probably took in the text of the rows "
                              f"after it; fix the export and send it again")

    def _line(self, row: Row, units: int | None, currency: str, net: Decimal | None = None,
              tax: Decimal | None = None) -> InvoiceLine:
        """net and tax: already read (plain_amounts), else None: read here."""
        # Runs once per CSV row: labels are looked up only for a message.
        get, line = row.values.get, row.line
        number = 0
        text = get("line_number", "")
        if not text:
            self.flag("required", "line_number", line, f"{self.ctx.label('line_number')} is "
                      f"empty; it is required")
        else:
            try:
                number = line_number(text)
            except ValueProblem as exc:
                self.flag("line_number_invalid", "line_number", line,
                          f"{self.ctx.label('line_number')}: {exc}")
        gl_account, cost_center = get("gl_account", ""), get("cost_center", "")
        if not (gl_account and cost_center):
            for name, value in (("gl_account", gl_account), ("cost_center", cost_center)):
                if not value:
                    self.flag("required", name, line, f"{self.ctx.label(name)} is empty; it is "
                              f"required")
        if net is None:
            net = self._money(row, "line_net", units, currency)
            tax = self._money(row, "line_tax", units, currency, empty_is_zero=True)
        return InvoiceLine(
            line_number=number, description=get("line_description", ""),
            gl_account=gl_account, cost_center=cost_center, net=net,
            tax_code=get("tax_code", ""), tax=tax, source_line=line)

    # ------------------------------------------------------------------ rules

    def _agreement(self, rows: Sequence[Row]) -> None:
        """Every row repeats the first row's header values (compared as values: 1250.0 is
        1250.00)."""
        first = rows[0]
        if len(rows) < 2:
            return
        # Fast path: rows that repeat the first row's text exactly cannot disagree.
        try:                           # every header field present: one C call a row
            texts = [_HEADER_TEXT(row.values) for row in rows]
        except KeyError:               # a template without some optional column
            texts = [tuple(map(row.values.get, HEADER_FIELDS, _NO_HEADER)) for row in rows]
        for row, text in zip(rows, texts):
            if text == texts[0]:
                continue
            for name in HEADER_FIELDS:
                mine, theirs = row.get(name), first.get(name)
                if mine != theirs and self._comparable(name, mine) != \
                        self._comparable(name, theirs):
                    self.flag("header_mismatch", name, row.line,
                              f"{self.ctx.label(name)} is {row.get(name)!r} on line {row.line} "
                              f"but {first.get(name)!r} on line {first.line}; every row of one "
                              f"invoice must repeat the same header values")

    def _comparable(self, name: str, text: str) -> object:
        try:
            if name in _AMOUNTS and text:
                return self.ctx.formats.money(text)
            if name in _DATES and text:
                return self.ctx.formats.date(text)
        except ValueProblem:
            pass
        return text

    def _lines(self, lines: list[InvoiceLine], net: Decimal | None, tax: Decimal | None,
               total: Decimal | None, doc_type: str) -> None:
        label = self.ctx.label
        if not lines:
            self.flag("no_lines", "line_number", 0, "the invoice has no lines; it needs at "
                      "least one line with an account, a cost center and an amount")
        numbers = [ln.line_number for ln in lines]
        seen: dict[int, int] = {}
        for ln in lines if len(set(numbers)) < len(numbers) else ():
            if ln.line_number in seen and ln.line_number:
                self.flag("line_numbers_unique", "line_number", ln.source_line,
                          f"{label('line_number')} {ln.line_number} on line {ln.source_line} "
                          f"repeats line {seen[ln.line_number]}; line numbers must be unique "
                          f"within an invoice")
            seen.setdefault(ln.line_number, ln.source_line)
        nets = [ln.net for ln in lines]
        if lines and net is not None and _all_set(nets):
            line_sum = sum(nets, _ZERO)
            if line_sum != net:
                self.flag("lines_sum_net", "invoice_net", 0,
                          f"{label('invoice_net')} is {net} but the {label('line_net')} of "
                          f"{_where(lines)} sum to {line_sum}; they must be equal")
        taxes = [ln.tax for ln in lines]
        if lines and tax is not None and _all_set(taxes):
            tax_sum = sum(taxes, _ZERO)
            if tax_sum != tax:
                self.flag("lines_sum_tax", "invoice_tax", 0,
                          f"{label('invoice_tax')} is {tax} but the {label('line_tax')} of "
                          f"{_where(lines)} sum to {tax_sum}; they must be equal")
        if net is not None and tax is not None and total is not None and net + tax != total:
            self.flag("net_plus_tax_total", "invoice_total", 0,
                      f"{label('invoice_total')} is {total} but {label('invoice_net')} "
                      f"{net} + {label('invoice_tax')} {tax} = {net + tax}")
        if total is not None and doc_type == "Invoice" and total <= 0:
            self.flag("total_sign", "invoice_total", 0,
                      f"{label('invoice_total')} of an Invoice must be positive, got {total}")
        if total is not None and doc_type == "CreditNote" and total >= 0:
            self.flag("total_sign", "invoice_total", 0,
                      f"{label('invoice_total')} of a CreditNote must be negative, got {total}")


def is_suspect(text: str) -> bool:
    """The text holds a control character or a line break (the rows holding it are then
    looked at one by one). Plain ASCII text, nearly all, is passed by a byte translate, 4x
    cheaper than the regex."""
    return bool(text.encode("utf-8", "surrogatepass").translate(None, _PLAIN_ASCII)) and \
        _SUSPECT.search(text) is not None


@lru_cache(maxsize=4096)   # an export repeats its ExportedAt on every row
def is_timestamp(text: str) -> bool:
    try:
        return datetime.fromisoformat(text).tzinfo is not None and "T" in text.upper()
    except ValueError:
        return False


def _all_set(amounts: list[Decimal | None]) -> bool:
    """`None not in amounts` without comparing None to each Decimal (Decimal.__eq__ then
    runs an ABC isinstance check: microseconds per invoice)."""
    return all(map(is_not, amounts, repeat(None)))


def _where(lines: Sequence[InvoiceLine]) -> str:
    sources = sorted({ln.source_line for ln in lines})
    shown = ", ".join(map(str, sources[:10])) + (", ..." if len(sources) > 10 else "")
    return f"its {len(lines)} line(s) (at {shown})"

