"""Vendor exports (stampli-exports.md §4), CSV and XML.

Same two passes as the invoice readers: pass 1 streams and validates the whole file and spills
each record's raw text to a temporary spill file (so an unreadable file raises ExportFileError
before anything is yielded, with bounded memory); pass 2 turns each into a VendorRecord, or a
RejectedRow naming the line and field when a value is unusable (a vendor has no place to carry
violations, and syncing half-wrong master data to IFS is worse than skipping it).
"""
from __future__ import annotations

import re
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

from adapters.settings import VendorFileSettings
from adapters.stampli.csvfile import FIELD_LIMIT, one_per_record, spill_records
from adapters.stampli.spill import Spill, two_pass
from adapters.stampli.templates import VENDORS
from adapters.stampli.xmlfile import children, iter_records, text_of
from ledger.model import RejectedRow, VendorRecord
from ledger.money import is_currency

_COUNTRY = re.compile(r"[A-Z]{2}", re.ASCII)
# XML element per canonical field (children of <Vendor>; the id is an attribute).
XML_ELEMENTS = {
    "vendor_name": ("Name", "VendorName"), "tax_id": ("TaxID",),
    "address_line1": ("AddressLine1",), "city": ("City",), "postal_code": ("PostalCode",),
    "country": ("Country",), "currency": ("Currency",), "payment_terms": ("PaymentTerms",),
    "active": ("Active",),
}


def read_csv_vendors(path: Path, settings: VendorFileSettings
                     ) -> Iterator[VendorRecord | RejectedRow]:
    yield from two_pass(partial(spill_records, Path(path), settings, VENDORS), _emit)


def read_xml_vendors(path: Path, settings: VendorFileSettings
                     ) -> Iterator[VendorRecord | RejectedRow]:
    path = Path(path)
    labels = {"vendor_id": "Vendor@id", **{f: names[0] for f, names in XML_ELEMENTS.items()}}

    def pass_1(spill: Spill) -> dict[str, str]:
        for index, element, _root in iter_records(path, settings.encoding, "Vendor", "Vendor",
                                                  VENDORS.config_key):
            kids = children(element)
            values = {"vendor_id": (element.get("id") or text_of(kids.get("VendorID"))).strip()}
            for name, tags in XML_ELEMENTS.items():
                found = next((kids[t] for t in tags if t in kids), None)
                if found is not None:
                    values[name] = text_of(found)
            long = next((n for n, v in values.items() if len(v) > FIELD_LIMIT), None)
            if long:    # the CSV limit on one value; the record is not read, not cut
                spill.add(None, (index, None, f"<Vendor> #{index}: {labels[long]} holds "
                                 f"{len(values[long]):,} characters; the limit for one value "
                                 f"is {FIELD_LIMIT // 1024} KiB: shorten it in Stampli and "
                                 f"export again"))
                continue
            spill.add(None, (index, values))
        return labels

    yield from two_pass(pass_1, _emit)


def _emit(labels: dict[str, str], groups: Iterator[list[Any]]
          ) -> Iterator[VendorRecord | RejectedRow]:
    return one_per_record(groups, lambda line, values: vendor_record(line, values, labels))


def vendor_record(line: int, values: dict[str, str], labels: dict[str, str]
                  ) -> VendorRecord | RejectedRow:
    """A VendorRecord, or a RejectedRow for the first unusable value."""
    def reject(name: str, message: str) -> RejectedRow:
        return RejectedRow(line=line, field=name, message=f"{labels.get(name, name)} {message}")

    for name in ("vendor_id", "vendor_name"):
        if not values.get(name):
            return reject(name, "is empty; a vendor needs an id and a name")
    active = True
    if "active" in values:        # column/element present: it must say true or false
        text = values["active"].casefold()
        if text not in ("true", "false"):
            return reject("active", f"is {values['active']!r}; expected true or false")
        active = text == "true"
    country = values.get("country", "")
    if country and not _COUNTRY.fullmatch(country):
        return reject("country", f"is {country!r}; expected an ISO 3166 alpha-2 code such as "
                      f"US or DE")
    currency = values.get("currency", "")
    if currency and not is_currency(currency):
        return reject("currency", f"is {currency!r}; expected an ISO 4217 code such as USD")
    return VendorRecord(
        vendor_id=values["vendor_id"], name=values["vendor_name"],
        tax_id=values.get("tax_id", ""), address_line1=values.get("address_line1", ""),
        city=values.get("city", ""), postal_code=values.get("postal_code", ""),
        country=country, currency=currency, payment_terms=values.get("payment_terms", ""),
        active=active, source_line=line)
