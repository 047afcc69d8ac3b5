"""Purchase-order CSV (stampli-exports.md §4): one row per PO line.

Pass 1 streams and validates the whole file (ExportFileError before anything is yielded) and
spills each row to a temporary spill file; pass 2 turns each into a PurchaseOrderLine, or a
RejectedRow naming the line and field when a value is unusable. Quantities and prices use the
configured decimal/thousands separators and are Decimal, never float.
"""
from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any

from adapters.settings import PurchaseOrderFileSettings
from adapters.stampli.csvfile import one_per_record, spill_records
from adapters.stampli.spill import two_pass
from adapters.stampli.templates import PURCHASE_ORDERS
from adapters.stampli.values import Formats, ValueProblem, line_number
from ledger.model import PurchaseOrderLine, RejectedRow
from ledger.money import fits_currency, is_currency, minor_units


def read_csv_purchase_orders(path: Path, settings: PurchaseOrderFileSettings
                             ) -> Iterator[PurchaseOrderLine | RejectedRow]:
    path = Path(path)
    formats = Formats.of(settings, PURCHASE_ORDERS.config_key, path.name)

    def pass_2(labels: dict[str, str], groups: Iterator[list[Any]]
               ) -> Iterator[PurchaseOrderLine | RejectedRow]:
        return one_per_record(groups, lambda line, values: _po_line(line, values, labels,
                                                                     formats))

    yield from two_pass(partial(spill_records, path, settings, PURCHASE_ORDERS), pass_2)


def _po_line(line: int, values: dict[str, str], labels: dict[str, str], formats: Formats
             ) -> PurchaseOrderLine | RejectedRow:
    def reject(name: str, message: str) -> RejectedRow:
        """message follows the column name: 'is empty ...' or ': expected ...'."""
        sep = "" if message.startswith(":") else " "
        return RejectedRow(line=line, field=name,
                           message=f"{labels.get(name, name)}{sep}{message}")

    for name in ("po_number", "vendor_id", "line_number"):
        if not values.get(name):
            return reject(name, "is empty; a purchase-order line needs a PO number, a vendor "
                          "and a line number")
    try:
        number = line_number(values["line_number"])
    except ValueProblem as exc:
        return reject("line_number", f": {exc}")
    currency = values.get("currency", "")
    if currency and not is_currency(currency):
        return reject("currency", f"is {currency!r}; expected an ISO 4217 code such as USD")
    amounts: dict[str, Decimal | None] = {}
    for name in ("quantity", "unit_price", "amount"):
        text = values.get(name, "")
        if not text:
            amounts[name] = None
            continue
        try:
            amounts[name] = formats.money(text)
        except ValueProblem as exc:
            return reject(name, f": {exc}")
    amount = amounts["amount"]
    if amount is not None and currency and not fits_currency(amount, currency):
        # Unit prices may carry more decimals; a line amount is money in the currency.
        return reject("amount", f"{values['amount']!r} has more decimals than {currency} "
                      f"allows ({minor_units(currency)})")
    return PurchaseOrderLine(
        po_number=values["po_number"], vendor_id=values["vendor_id"], line_number=number,
        description=values.get("description", ""), quantity=amounts["quantity"],
        unit_price=amounts["unit_price"], amount=amount, currency=currency,
        status=values.get("status", ""), source_line=line)
