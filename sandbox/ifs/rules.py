"""Business rules IFS enforces on supplier invoices, GL vouchers and suppliers (contract §4).

Each write validates first and then calls `store.put`, so a refused write changes nothing.
Amounts are Decimal end to end: JSON numbers are parsed as Decimal, strings converted exactly.
"""
from __future__ import annotations

import datetime as dt
from decimal import Decimal, InvalidOperation
from typing import Any

from .errors import ODataError, bad_request, business
from .schema import (CODE_PART_FIELDS, DATE, DECIMAL, ENTITIES, ENUMS, INT, STRING, EntityDef)
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


def _mandatory(data: dict[str, Any], *names: str) -> None:
    for name in names:
        if data.get(name) in (None, ""):
            raise business("FND_MANDATORY", f"Field [{name}] is mandatory.")


def _blank(edef: EntityDef) -> dict[str, Any]:
    return {p: None for p in edef.props}


# ---------------------------------------------------------------------- reference checks
def _company(store: Store, company: str) -> dict[str, Any]:
    comp = store.company(company)
    if comp is None:
        raise business("FND_RECORD_NOT_EXIST", f"Company {company} does not exist.")
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
        raise business("ACCOUNT_NOT_FOUND",
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
            raise business("CODE_PART_NOT_FOUND", f"Code part value {value} (code part "
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
        raise business("SUPPLIER_NOT_CONNECTED", f"Supplier {supplier} does not exist.")
    if store.get("supplier_company", (supplier, company)) is None:
        raise business("SUPPLIER_NOT_CONNECTED",
                       f"Supplier {supplier} is not connected to company {company}.")


def _check_currency(currency: str) -> None:
    if not (len(currency) == 3 and currency.isalpha() and currency.isupper()):
        raise business("FND_RECORD_NOT_EXIST", f"Currency code {currency} does not exist.")


# ---------------------------------------------------------------------- suppliers
def create_supplier(store: Store, body: Any) -> dict[str, Any]:
    data = coerce(ENTITIES["supplier"], body, ignore=("CreationDate",))
    _mandatory(data, "SupplierId", "Name")
    if store.get("supplier", (data["SupplierId"],)) is not None:
        raise business("FND_RECORD_EXIST", f"The Supplier {data['SupplierId']} already exists.")
    rec = {**_blank(ENTITIES["supplier"]), **data, "CreationDate": dt.date.today().isoformat()}
    return store.put("supplier", rec)


def add_supplier_company(store: Store, parent: dict[str, Any], body: Any) -> dict[str, Any]:
    data = coerce(ENTITIES["supplier_company"], body, ignore=("SupplierId",))
    _mandatory(data, "Company")
    _company(store, data["Company"])
    key = (parent["SupplierId"], data["Company"])
    if store.get("supplier_company", key) is not None:
        raise business("FND_RECORD_EXIST", f"Supplier {key[0]} is already connected to "
                       f"company {key[1]}.")
    if data.get("Currency"):
        _check_currency(data["Currency"])
    rec = {**_blank(ENTITIES["supplier_company"]), **data, "SupplierId": parent["SupplierId"]}
    return store.put("supplier_company", rec)


# ---------------------------------------------------------------------- supplier invoices
def create_invoice(store: Store, body: Any) -> dict[str, Any]:
    edef = ENTITIES["invoice"]
    data = coerce(edef, body, ignore=("InvoiceId", "Objstate"))
    _mandatory(data, "Company", "Identity", "InvoiceNo", "InvoiceDate", "Currency")
    _company(store, data["Company"])
    data.setdefault("InvoiceType", "INVOICE")
    if data["InvoiceType"] not in ("INVOICE", "CREDIT"):
        raise business("FND_RECORD_NOT_EXIST",
                       f"Invoice type {data['InvoiceType']} does not exist.")
    _check_currency(data["Currency"])
    check_supplier(store, data["Identity"], data["Company"])
    for field in ("NetCurrAmount", "VatCurrAmount", "GrossCurrAmount"):
        data[field] = data.get(field) if data.get(field) is not None else Decimal(0)
    check_decimals(data["Currency"], data, "NetCurrAmount", "VatCurrAmount", "GrossCurrAmount")
    duplicate = store.find_unique("invoice", (data["Company"], data["Identity"],
                                              data["InvoiceNo"]))
    if duplicate is not None:
        raise business("FND_RECORD_EXIST", f"Invoice {data['InvoiceNo']} from supplier "
                       f"{data['Identity']} already exists in company {data['Company']} "
                       f"(invoice id {duplicate['InvoiceId']}).")
    rec = {**_blank(edef), **data, "InvoiceId": store.next_invoice_id(),
           "Objstate": "Preliminary"}
    return store.put("invoice", rec)


def _require_state(rec: dict[str, Any], state: str, what: str) -> None:
    if rec.get("Objstate") != state:
        raise business("FND_STATE_NOT_ALLOWED", f"The {what} is in state {rec.get('Objstate')}"
                       f"; this is only allowed in state {state}.")


def _validate_line(store: Store, invoice: dict[str, Any], rec: dict[str, Any]) -> None:
    _mandatory(rec, "Account", "CurrAmount")
    check_account(store, invoice["Company"], rec["Account"], invoice["InvoiceDate"])
    check_code_parts(store, invoice["Company"], rec, invoice["InvoiceDate"])
    check_decimals(invoice["Currency"], rec, "CurrAmount", "TaxCurrAmount")


def add_line(store: Store, invoice: dict[str, Any], body: Any) -> dict[str, Any]:
    edef = ENTITIES["invoice_line"]
    _require_state(invoice, "Preliminary", "supplier invoice")
    data = coerce(edef, body, ignore=("Company", "InvoiceId"))
    rec = {**_blank(edef), **data, "Company": invoice["Company"],
           "InvoiceId": invoice["InvoiceId"]}
    _validate_line(store, invoice, rec)
    return store.put("invoice_line", _row_no(store, "invoice_line", edef, rec, invoice))


def post_invoice(store: Store, invoice: dict[str, Any]) -> dict[str, Any]:
    _require_state(invoice, "Preliminary", "supplier invoice")
    lines = store.children("invoice_line", (invoice["Company"], invoice["InvoiceId"]))
    ref = f"Invoice {invoice['InvoiceNo']} (id {invoice['InvoiceId']})"
    if not lines:
        raise business("NOT_BALANCED", f"{ref} has no posting lines.")
    net = sum((ln["CurrAmount"] for ln in lines), Decimal(0))
    vat = sum((ln["TaxCurrAmount"] or Decimal(0) for ln in lines), Decimal(0))
    if net != invoice["NetCurrAmount"]:
        raise business("NOT_BALANCED", f"{ref}: the posting lines sum to {net}, the net "
                       f"amount is {invoice['NetCurrAmount']}.")
    if vat != invoice["VatCurrAmount"]:
        raise business("NOT_BALANCED", f"{ref}: the line tax amounts sum to {vat}, the tax "
                       f"amount is {invoice['VatCurrAmount']}.")
    if invoice["NetCurrAmount"] + invoice["VatCurrAmount"] != invoice["GrossCurrAmount"]:
        raise business("NOT_BALANCED", f"{ref}: net + tax is not the gross amount "
                       f"{invoice['GrossCurrAmount']}.")
    return store.put("invoice", {**invoice, "Objstate": "Posted"})


# ---------------------------------------------------------------------- GL vouchers
def create_voucher(store: Store, body: Any) -> dict[str, Any]:
    edef = ENTITIES["voucher"]
    data = coerce(edef, body, ignore=("VoucherNo", "Objstate"))
    _mandatory(data, "Company", "VoucherType", "VoucherDate")
    comp = _company(store, data["Company"])
    year = int(data["VoucherDate"][:4])
    if data.get("AccountingYear") not in (None, year):
        raise business("FND_RECORD_NOT_EXIST", f"Accounting year {data['AccountingYear']} "
                       f"does not match voucher date {data['VoucherDate']}.")
    data["Currency"] = data.get("Currency") or comp.get("currency") or "USD"
    _check_currency(data["Currency"])
    rec = {**_blank(edef), **data, "AccountingYear": year, "Objstate": "Waiting",
           "VoucherNo": store.next_voucher_no(data["Company"], year, data["VoucherType"])}
    return store.put("voucher", rec)


def _validate_row(store: Store, voucher: dict[str, Any], rec: dict[str, Any]) -> None:
    _mandatory(rec, "Account")
    if rec.get("CurrencyDebitAmount") is None and rec.get("CurrencyCreditAmount") is None:
        raise business("FND_MANDATORY", "A voucher row needs a debit or a credit amount.")
    check_account(store, voucher["Company"], rec["Account"], voucher["VoucherDate"])
    check_code_parts(store, voucher["Company"], rec, voucher["VoucherDate"])
    check_decimals(voucher["Currency"], rec, "CurrencyDebitAmount", "CurrencyCreditAmount")


def add_row(store: Store, voucher: dict[str, Any], body: Any) -> dict[str, Any]:
    edef = ENTITIES["voucher_row"]
    _require_state(voucher, "Waiting", "voucher")
    data = coerce(edef, body, ignore=edef.keys[:4])
    rec = {**_blank(edef), **data,
           **{k: voucher[k] for k in ("Company", "AccountingYear", "VoucherType", "VoucherNo")}}
    _validate_row(store, voucher, rec)
    return store.put("voucher_row", _row_no(store, "voucher_row", edef, rec, voucher))


def approve_voucher(store: Store, voucher: dict[str, Any]) -> dict[str, Any]:
    _require_state(voucher, "Waiting", "voucher")
    rows = store.children("voucher_row", store.key_of(ENTITIES["voucher"], voucher))
    ref = f"Voucher {voucher['VoucherType']} {voucher['VoucherNo']}"
    if len(rows) < 2:
        raise business("NOT_BALANCED", f"{ref} needs at least two rows, it has {len(rows)}.")
    debit = sum((r["CurrencyDebitAmount"] or Decimal(0) for r in rows), Decimal(0))
    credit = sum((r["CurrencyCreditAmount"] or Decimal(0) for r in rows), Decimal(0))
    if debit != credit:
        raise business("NOT_BALANCED", f"{ref} is not balanced: debit {debit}, "
                       f"credit {credit}.")
    if not store.period_open(voucher["Company"], voucher["VoucherDate"]):
        raise business("PERIOD_CLOSED", f"The period of {voucher['VoucherDate']} is not open "
                       f"in company {voucher['Company']}.")
    return store.put("voucher", {**voucher, "Objstate": "Approved"})


def _row_no(store: Store, name: str, edef: EntityDef, rec: dict[str, Any],
            parent: dict[str, Any]) -> dict[str, Any]:
    """Assign the next RowNo unless the client chose one (then it must be free)."""
    parent_def = ENTITIES[edef.parent or ""]
    siblings = store.children(name, store.key_of(parent_def, parent))
    if rec.get("RowNo") is None:
        rec["RowNo"] = max((s["RowNo"] for s in siblings), default=0) + 1
    elif store.get(name, store.key_of(edef, rec)) is not None:
        raise business("FND_RECORD_EXIST", f"Row {rec['RowNo']} already exists.")
    return rec


# ---------------------------------------------------------------------- PATCH and DELETE
_EDITABLE_IN = {"invoice": ("invoice", "Preliminary"), "invoice_line": ("invoice", "Preliminary"),
                "voucher": ("voucher", "Waiting"), "voucher_row": ("voucher", "Waiting")}


def _editable(store: Store, name: str, rec: dict[str, Any]) -> dict[str, Any] | None:
    """The document head that must still be in its initial state for `rec` to change."""
    if name not in _EDITABLE_IN:
        return None
    head_name, state = _EDITABLE_IN[name]
    head_def = ENTITIES[head_name]
    head = rec if name == head_name else store.get(
        head_name, tuple(rec[k] for k in head_def.keys))
    assert head is not None
    _require_state(head, state, "supplier invoice" if head_name == "invoice" else "voucher")
    return head


def patch(store: Store, name: str, rec: dict[str, Any], body: Any) -> dict[str, Any]:
    edef = ENTITIES[name]
    data = coerce(edef, body)
    for field, value in data.items():
        if field not in edef.updatable and value != rec.get(field):
            raise bad_request(f"The property '{field}' cannot be updated.", "ODP_READ_ONLY")
    head = _editable(store, name, rec)
    new = {**rec, **data}
    if name == "invoice":
        check_decimals(new["Currency"], new, "NetCurrAmount", "VatCurrAmount", "GrossCurrAmount")
    elif name == "invoice_line" and head is not None:
        _validate_line(store, head, new)
    elif name == "voucher_row" and head is not None:
        _validate_row(store, head, new)
    elif name == "supplier_company" and new.get("Currency"):
        _check_currency(new["Currency"])
    return store.put(name, new)


def delete(store: Store, name: str, rec: dict[str, Any]) -> None:
    _editable(store, name, rec)
    store.delete(name, store.key_of(ENTITIES[name], rec))


CREATE = {"supplier": create_supplier, "invoice": create_invoice, "voucher": create_voucher}
ADD_CHILD = {"supplier_company": add_supplier_company, "invoice_line": add_line,
             "voucher_row": add_row}
ACTIONS = {"PostingProposalHead_Post": post_invoice, "Voucher_Approve": approve_voucher}

__all__ = ["ODataError", "CREATE", "ADD_CHILD", "ACTIONS", "patch", "delete", "coerce"]
