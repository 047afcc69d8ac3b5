"""Business rules IFS enforces on supplier invoices, GL vouchers and suppliers (contract §4).

Each write validates first and then calls `store.put`, so a refused write changes nothing.
"""
from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from .checks import (blank, check_account, check_code_parts, check_currency, check_decimals,
                     check_supplier, coerce, company, mandatory)
from .errors import bad_request, business
from .schema import ENTITIES, EntityDef
from .store import Store

# ---------------------------------------------------------------------- suppliers
def create_supplier(store: Store, body: Any) -> dict[str, Any]:
    data = coerce(ENTITIES["supplier"], body, ignore=("CreationDate",))
    mandatory(data, "SupplierId", "Name")
    if store.get("supplier", (data["SupplierId"],)) is not None:
        raise business("FND_RECORD_EXIST", f"The Supplier {data['SupplierId']} already exists.")
    rec = {**blank(ENTITIES["supplier"]), **data, "CreationDate": dt.date.today().isoformat()}
    return store.put("supplier", rec)


def add_supplier_company(store: Store, parent: dict[str, Any],
                         body: Any) -> dict[str, Any]:
    data = coerce(ENTITIES["supplier_company"], body, ignore=("SupplierId",))
    mandatory(data, "Company")
    company(store, data["Company"])
    key = (parent["SupplierId"], data["Company"])
    if store.get("supplier_company", key) is not None:
        raise business("FND_RECORD_EXIST", f"Supplier {key[0]} is already connected to "
                       f"company {key[1]}.")
    if data.get("Currency"):
        check_currency(data["Currency"])
    rec = {**blank(ENTITIES["supplier_company"]), **data, "SupplierId": parent["SupplierId"]}
    return store.put("supplier_company", rec)


# ---------------------------------------------------------------------- supplier invoices
def create_invoice(store: Store, body: Any) -> dict[str, Any]:
    edef = ENTITIES["invoice"]
    data = coerce(edef, body, ignore=("InvoiceId", "Objstate"))
    mandatory(data, "Company", "Identity", "InvoiceNo", "InvoiceDate", "Currency")
    company(store, data["Company"])
    data.setdefault("InvoiceType", "INVOICE")
    if data["InvoiceType"] not in ("INVOICE", "CREDIT"):
        raise business("INVALID_INVOICE_TYPE", f"Invoice type {data['InvoiceType']} does not "
                       "exist (INVOICE or CREDIT).")
    check_currency(data["Currency"])
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
    rec = {**blank(edef), **data, "InvoiceId": store.next_invoice_id(),
           "Objstate": "Preliminary"}
    return store.put("invoice", rec)


def _require_state(rec: dict[str, Any], state: str, what: str) -> None:
    if rec.get("Objstate") != state:
        raise business("FND_STATE_NOT_ALLOWED", f"The {what} is in state {rec.get('Objstate')}"
                       f"; this is only allowed in state {state}.")


def _validate_line(store: Store, invoice: dict[str, Any], rec: dict[str, Any]) -> None:
    mandatory(rec, "Account", "CurrAmount")
    check_account(store, invoice["Company"], rec["Account"], invoice["InvoiceDate"])
    check_code_parts(store, invoice["Company"], rec, invoice["InvoiceDate"])
    check_decimals(invoice["Currency"], rec, "CurrAmount", "TaxCurrAmount")


def add_line(store: Store, invoice: dict[str, Any], body: Any) -> dict[str, Any]:
    edef = ENTITIES["invoice_line"]
    _require_state(invoice, "Preliminary", "supplier invoice")
    data = coerce(edef, body, ignore=("Company", "InvoiceId"))
    rec = {**blank(edef), **data, "Company": invoice["Company"],
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
    mandatory(data, "Company", "VoucherType", "VoucherDate")
    comp = company(store, data["Company"])
    year = int(data["VoucherDate"][:4])
    if data.get("AccountingYear") not in (None, year):
        raise business("INVALID_ACCOUNTING_YEAR", f"Accounting year {data['AccountingYear']} "
                       f"does not match voucher date {data['VoucherDate']}.")
    data["Currency"] = data.get("Currency") or comp.get("currency") or "USD"
    check_currency(data["Currency"])
    rec = {**blank(edef), **data, "AccountingYear": year, "Objstate": "Waiting",
           "VoucherNo": store.next_voucher_no(data["Company"], year, data["VoucherType"])}
    return store.put("voucher", rec)


def _validate_row(store: Store, voucher: dict[str, Any], rec: dict[str, Any]) -> None:
    mandatory(rec, "Account")
    if rec.get("CurrencyDebitAmount") is None and rec.get("CurrencyCreditAmount") is None:
        raise business("FND_MANDATORY", "A voucher row needs a debit or a credit amount.")
    check_account(store, voucher["Company"], rec["Account"], voucher["VoucherDate"])
    check_code_parts(store, voucher["Company"], rec, voucher["VoucherDate"])
    check_decimals(voucher["Currency"], rec, "CurrencyDebitAmount", "CurrencyCreditAmount")


def add_row(store: Store, voucher: dict[str, Any], body: Any) -> dict[str, Any]:
    edef = ENTITIES["voucher_row"]
    _require_state(voucher, "Waiting", "voucher")
    data = coerce(edef, body, ignore=edef.keys[:4])
    rec = {**blank(edef), **data,
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
    parent_key = (name, store.key_of(parent_def, parent))
    if rec.get("RowNo") is None:
        # A per-parent sequence (never given back, like IFS's): a 10,000-line document
        # does not rescan its siblings for every line.
        rec["RowNo"] = store.row_numbers.get(parent_key, 0) + 1
    elif store.get(name, store.key_of(edef, rec)) is not None:
        raise business("FND_RECORD_EXIST", f"Row {rec['RowNo']} already exists.")
    store.row_numbers[parent_key] = max(store.row_numbers.get(parent_key, 0), int(rec["RowNo"]))
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
        check_currency(new["Currency"])
    return store.put(name, new)


def delete(store: Store, name: str, rec: dict[str, Any]) -> None:
    _editable(store, name, rec)
    store.delete(name, store.key_of(ENTITIES[name], rec))


CREATE = {"supplier": create_supplier, "invoice": create_invoice, "voucher": create_voucher}
ADD_CHILD = {"supplier_company": add_supplier_company, "invoice_line": add_line,
             "voucher_row": add_row}
ACTIONS = {"PostingProposalHead_Post": post_invoice, "Voucher_Approve": approve_voucher}
