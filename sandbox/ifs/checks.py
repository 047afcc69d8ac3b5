"""Field coercion and reference-data checks shared by the document rules and the seed loader.

Amounts are Decimal end to end: JSON numbers are parsed as Decimal, strings converted exactly.
"""
from __future__ import annotations

import datetime as dt
from decimal import Decimal, InvalidOperation
from typing import Any

from .errors import bad_request, business
from .schema import CODE_PART_FIELDS, DATE, DECIMAL, ENUMS, INT, STRING, EntityDef
from .store import Store

# ISO 4217 minor units that differ from 2 (the ones IFS tenants meet in practice).
_MINOR_UNITS = {"JPY": 0, "KRW": 0, "ISK": 0, "CLP": 0, "VND": 0,
                "KWD": 3, "BHD": 3, "OMR": 3, "TND": 3, "JOD": 3, "IQD": 3, "LYD": 3}


def currency_decimals(currency: str) -> int:
    return _MINOR_UNITS.get(currency, 2)


# ---------------------------------------------------------------------- body coercion
def _value(edm: str, value: Any, name: str) -> Any:
    if value is None:
        return None
    bad = bad_request(f"Invalid value {value!r} for property '{name}' ({edm}).",
                      "ODP_DESERIALIZATION_ERROR")
    if edm == STRING:
        if not isinstance(value, str):
            raise bad
        return value
    if edm == INT:
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad
        return value
    if edm == DECIMAL:
        if isinstance(value, bool) or not isinstance(value, (str, int, Decimal)):
            raise bad
        try:
            number = Decimal(value)
        except InvalidOperation:
            raise bad from None
        if not number.is_finite():
            raise bad
        return number
    if edm == DATE:
        try:
            if not isinstance(value, str) or len(value) != 10:
                raise ValueError
            dt.date.fromisoformat(value)
        except ValueError:
            raise bad from None
        return value
    enum = ENUMS.get(edm)
    if enum is not None and isinstance(value, str) and value in enum.members:
        return value
    raise bad


def coerce(edef: EntityDef, body: Any, *, ignore: tuple[str, ...] = ()) -> dict[str, Any]:
    """Typed field values from a JSON body; unknown properties are a 400 as in IFS."""
    if not isinstance(body, dict):
        raise bad_request("The request body must be a JSON object.", "ODP_DESERIALIZATION_ERROR")
    out: dict[str, Any] = {}
    for name, value in body.items():
        if "@" in name or name in ignore or name in ("luname", "keyref"):
            continue
        edm = edef.edm_type(name)
        if edm is None:
            raise bad_request(f"The property '{name}' does not exist in type "
                              f"'IfsApp.{edef.projection}.{edef.type_name}'.",
                              "ODP_DESERIALIZATION_ERROR")
        out[name] = _value(edm, value, name)
    return out


def mandatory(data: dict[str, Any], *names: str) -> None:
    for name in names:
        if data.get(name) in (None, ""):
            raise business("FND_MANDATORY", f"Field [{name}] is mandatory.")


def blank(edef: EntityDef) -> dict[str, Any]:
    return {p: None for p in edef.props}


# ---------------------------------------------------------------------- reference checks
def company(store: Store, company: str) -> dict[str, Any]:
    comp = store.company(company)
    if comp is None:
        raise business("COMPANY_NOT_FOUND", f"Company {company} does not exist.")
    return comp


def _valid_on(rec: dict[str, Any], day: str) -> bool:
    return ((rec.get("ValidFrom") or "0000-01-01") <= day
            <= (rec.get("ValidUntil") or "9999-12-31"))


def check_account(store: Store, company: str, account: str, day: str) -> None:
    acc = store.get("account", (company, account))
    if acc is None:
        raise business("ACCOUNT_NOT_FOUND",
                       f"Account {account} does not exist in company {company}.")
    if not _valid_on(acc, day):
        raise business("ACCOUNT_NOT_VALID",
                       f"Account {account} in company {company} is not valid on {day} "
                       f"(valid from {acc.get('ValidFrom')} until {acc.get('ValidUntil')}).")


def check_code_parts(store: Store, company: str, rec: dict[str, Any], day: str) -> None:
    for field in CODE_PART_FIELDS:
        value = rec.get(field)
        if value in (None, ""):
            continue
        letter = field[-1]
        part = store.get(f"code_{letter}", (company, value))
        if part is None:
            raise business("CODE_PART_NOT_FOUND", f"Code part value {value} does not exist "
                           f"for code part {letter} in company {company}.")
        if not _valid_on(part, day):
            raise business("CODE_PART_NOT_VALID", f"Code part value {value} (code part "
                           f"{letter}) in company {company} is not valid on {day}.")


def check_decimals(currency: str, rec: dict[str, Any], *fields: str) -> None:
    allowed = currency_decimals(currency)
    for field in fields:
        value = rec.get(field)
        if value is None:
            continue
        exponent = value.normalize().as_tuple().exponent if value else 0
        if isinstance(exponent, int) and -exponent > allowed:
            raise business("CURRENCY_ROUNDING", f"{field} {value} has more decimals than "
                           f"currency {currency} allows ({allowed}).")


def check_supplier(store: Store, supplier: str, company: str) -> None:
    if store.get("supplier", (supplier,)) is None:
        raise business("SUPPLIER_NOT_FOUND", f"Supplier {supplier} does not exist.")
    if store.get("supplier_company", (supplier, company)) is None:
        raise business("SUPPLIER_NOT_CONNECTED",
                       f"Supplier {supplier} is not connected to company {company}.")


def check_currency(currency: str) -> None:
    if not (len(currency) == 3 and currency.isalpha() and currency.isupper()):
        raise business("CURRENCY_NOT_FOUND", f"Currency code {currency} does not exist.")
