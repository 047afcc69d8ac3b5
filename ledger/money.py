"""Money as Decimal with ISO 4217 minor units. Never float."""
from __future__ import annotations

from decimal import Decimal

# ISO 4217 minor units for currencies that do not use 2 decimals; every other valid code uses 2.
_MINOR_UNITS_EXCEPTIONS = {
    # zero decimals
    "BIF": 0, "CLP": 0, "DJF": 0, "GNF": 0, "ISK": 0, "JPY": 0, "KMF": 0, "KRW": 0,
    "PYG": 0, "RWF": 0, "UGX": 0, "UYI": 0, "VND": 0, "VUV": 0, "XAF": 0, "XOF": 0, "XPF": 0,
    # three decimals
    "BHD": 3, "IQD": 3, "JOD": 3, "KWD": 3, "LYD": 3, "OMR": 3, "TND": 3,
    # four decimals
    "CLF": 4, "UYW": 4,
}

# Active ISO 4217 codes (2024 list); a code outside it is a data error, not a guess.
ISO_4217 = frozenset("""
AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BOV BRL BSD BTN
BWP BYN BZD CAD CDF CHE CHF CHW CLF CLP CNY COP COU CRC CUP CVE CZK DJF DKK DOP DZD EGP ERN
ETB EUR FJD FKP GBP GEL GHS GIP GMD GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD IRR ISK JMD
JOD JPY KES KGS KHR KMF KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT
MOP MRU MUR MVR MWK MXN MXV MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG
QAR RON RSD RUB RWF SAR SBD SCR SDG SEK SGD SHP SLE SLL SOS SRD SSP STN SVC SYP SZL THB TJS
TMT TND TOP TRY TTD TWD TZS UAH UGX USD USN UYI UYU UYW UZS VED VES VND VUV WST XAF XCD XCG
XOF XPF YER ZAR ZMW ZWG ZWL
""".split())


class MoneyError(ValueError):
    """An amount or currency that cannot be used as money."""


def is_currency(code: str) -> bool:
    return code in ISO_4217


def minor_units(currency: str) -> int:
    if currency not in ISO_4217:
        raise MoneyError(f"{currency!r} is not an ISO 4217 currency code")
    return _MINOR_UNITS_EXCEPTIONS.get(currency, 2)


def decimals_of(amount: Decimal) -> int:
    """Significant decimals: "1250.00" has none, "0.125" three (trailing zeros are exact)."""
    exponent = amount.normalize().as_tuple().exponent if amount else 0
    return max(0, -exponent) if isinstance(exponent, int) else 0


def fits_currency(amount: Decimal, currency: str) -> bool:
    """True when the amount has no more significant decimals than the currency allows."""
    return decimals_of(amount) <= minor_units(currency)


def quantize(amount: Decimal, currency: str) -> Decimal:
    """The amount written with exactly the currency's minor units (it must already fit)."""
    return amount.quantize(Decimal(1).scaleb(-minor_units(currency)))


def to_wire(amount: Decimal) -> str:
    """Decimals travel as strings (IEEE754Compatible)."""
    return format(amount, "f")
