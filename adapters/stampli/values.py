"""Field values as the configuration says they are written: amounts, dates, line numbers.

Nothing is guessed: an amount must match the configured decimal and thousands separators
exactly (thousands groups of three, only before the decimal separator), a date must match the
configured strptime format. Each failure is a ValueProblem whose message says what was
expected, what was found and which setting to change.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from functools import cached_property, lru_cache
from typing import TYPE_CHECKING

from adapters.stampli.errors import ExportFileError

if TYPE_CHECKING:                      # the pass-2 worker (worker.py) starts without settings
    from adapters.settings import FileKindSettings

MAX_DIGITS = 18       # beyond this no real amount exists, and exactness under the default
                      # 28-digit Decimal context would no longer be guaranteed for sums
_INT = re.compile(r"[+]?\d{1,9}", re.ASCII)
LINE_NUMBERS = {str(n): n for n in range(1, 1000)}   # the usual ones, read without a regex
_SAMPLE_DATE = date(2026, 11, 4)


class ValueProblem(ValueError):
    """A value that cannot be read as the configuration says; str() is the whole message."""


@dataclass(frozen=True)
class Formats:
    decimal_separator: str = "."
    thousands_separator: str = ""
    date_format: str = "%Y-%m-%d"
    config_key: str = "stampli.invoices"

    @classmethod
    def of(cls, settings: FileKindSettings, config_key: str, file: str) -> Formats:
        dec, thou = settings.decimal_separator, settings.thousands_separator
        unusable = (len(dec) != 1 or len(thou) > 1 or thou == dec
                    or any(c.isdigit() or c in "+-" for c in dec + thou))
        if unusable:
            raise ExportFileError(
                file, 0, "", f"{config_key}.decimal_separator = {dec!r} and "
                f"{config_key}.thousands_separator = {thou!r} cannot be used: the decimal "
                f"separator must be one character, the thousands separator one other "
                f"character or empty, neither a digit or sign")
        return cls(dec, thou, settings.date_format, config_key)

    @cached_property
    def _amount(self) -> re.Pattern[str]:
        d, t = re.escape(self.decimal_separator), re.escape(self.thousands_separator)
        whole = rf"(?:\d{{1,3}}(?:{t}\d{{3}})+|\d+)" if self.thousands_separator else r"\d+"
        return re.compile(rf"[+-]?{whole}(?:{d}(\d+))?", re.ASCII)

    @cached_property
    def _plain(self) -> bool:
        """Amounts are written as Decimal() reads them once the pattern matched."""
        return not self.thousands_separator and self.decimal_separator == "."

    def describe_amount(self) -> str:
        thousands = (f"{self.thousands_separator!r} between thousands"
                     if self.thousands_separator else "no thousands separator")
        return f"a decimal with {self.decimal_separator!r} as decimal separator and {thousands}"

    def money(self, text: str) -> Decimal:
        raw = text.strip()
        if not raw:
            raise ValueProblem(f"expected {self.describe_amount()}, got an empty value")
        if not self._amount.fullmatch(raw):
            raise ValueProblem(
                f"expected {self.describe_amount()}, got {raw!r}; fix the template or set "
                f"{self.config_key}.decimal_separator / thousands_separator")
        # The pattern guarantees [sign]digits[.digits] once the separators are replaced.
        plain = raw.replace(self.thousands_separator, "") if self.thousands_separator else raw
        if self.decimal_separator != ".":
            plain = plain.replace(self.decimal_separator, ".")
        if significant_digits(plain) > MAX_DIGITS:
            raise ValueProblem(f"{raw!r} has more than {MAX_DIGITS} significant digits; "
                               f"no invoice amount is that long, fix the export")
        return Decimal(plain)

    def amount(self, text: str) -> tuple[Decimal, int]:
        """(money(text), its significant decimals): what the rules need per amount. The
        decimals come from the text (digits after the separator without trailing zeros),
        which is what ledger.money.decimals_of finds in the Decimal, without normalizing it.
        """
        raw = text.strip()
        match = self._amount.fullmatch(raw)
        if match is not None and self._plain and len(raw) <= MAX_DIGITS:
            fraction = match.group(1)  # [sign]digits[.digits], at most MAX_DIGITS digits
            return Decimal(raw), len(fraction.rstrip("0")) if fraction else 0
        value = self.money(raw)        # the general path; raises with the exact message
        fraction = match.group(1) if match is not None else None
        return value, len(fraction.rstrip("0")) if fraction else 0

    def plain_amounts(self, texts: list[str], units: int | None) -> list[Decimal] | None:
        """[money(t) for t in texts] when every text is a plain '[sign]digits[.digits]' of at
        most MAX_DIGITS characters with no more significant decimals than units (None: any);
        else None, and the caller reads them one by one with amount() for the exact messages.
        One regex call per invoice instead of one per amount: nearly every invoice is clean."""
        if not self._plain or not texts or max(map(len, texts)) > MAX_DIGITS:
            return None
        joined = "\n".join(texts)
        # A text holding the separator would pass as two amounts: counted out.
        if joined.count("\n") != len(texts) - 1 or not _plain_list(units).fullmatch(joined):
            return None
        return list(map(Decimal, texts))

    def iso_date(self, text: str) -> str | None:
        """date(text) of a stripped text, or None where date() raises."""
        return _strptime_iso(text, self.date_format)

    def date(self, text: str) -> str:
        """The ISO date (YYYY-MM-DD) of a date written in the configured format."""
        raw = text.strip()
        iso = self.iso_date(raw)
        if iso is not None:
            return iso
        try:
            example = f" (e.g. {_SAMPLE_DATE.strftime(self.date_format)!r})"
        except ValueError:
            example = ""
        raise ValueProblem(
            f"expected a valid date in the format {self.date_format!r}{example}, got "
            f"{raw!r}; fix the export, or set {self.config_key}.date_format if the "
            f"template writes dates differently")


@lru_cache(maxsize=4096)   # exports repeat the same few dates; strptime is slow
def _strptime_iso(text: str, date_format: str) -> str | None:
    try:
        return datetime.strptime(text, date_format).date().isoformat()
    except ValueError:
        return None


@lru_cache(maxsize=None)    # one per minor units value
def _plain_list(units: int | None) -> re.Pattern[str]:
    """Plain amounts, one a line, whose decimals without trailing zeros fit in units."""
    fraction = r"\d+" if units is None else rf"(?=\d)\d{{0,{units}}}0*"
    amount = rf"[+-]?\d+(?:\.{fraction})?"
    return re.compile(rf"{amount}(?:\n{amount})*", re.ASCII)


XML_FORMATS = Formats()                # XML carries xs:decimal and xs:date, whatever the CSV uses


def line_number(text: str) -> int:
    number = LINE_NUMBERS.get(text)
    if number is not None:
        return number
    raw = text.strip()
    if not _INT.fullmatch(raw) or int(raw) < 1:
        raise ValueProblem(f"expected a whole number 1, 2, ..., got {raw!r}")
    return int(raw)


def significant_digits(plain: str) -> int:
    """Digits of '[sign]digits[.digits]' without leading zeros and without trailing zeros
    after the decimal point."""
    whole, _, fraction = plain.lstrip("+-").partition(".")
    return len(whole.lstrip("0")) + len(fraction.rstrip("0")) if whole.lstrip("0") \
        else len(fraction.rstrip("0").lstrip("0"))
