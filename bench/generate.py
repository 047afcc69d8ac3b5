"""Seeded, reproducible Stampli exports and matching IFS reference data, for benchmarks and
load tests. Nothing generated is committed: the same seed gives the same bytes.

Invoices have 1-5 lines, a share of credit notes, and several currencies (minor units
respected: JPY 0 decimals, KWD 3). Rows are written as they are generated, so a 1 GB export
costs no memory.
"""
from __future__ import annotations

import csv
import random
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

HEADER = ["CompanyID", "StampliInvoiceID", "DocumentType", "InvoiceNumber", "VendorID",
          "VendorName", "InvoiceDate", "DueDate", "Currency", "InvoiceNet", "InvoiceTax",
          "InvoiceTotal", "ApprovalStatus", "ApprovedAt", "ApprovedBy", "PONumber",
          "LineNumber", "LineDescription", "GLAccount", "CostCenter", "LineNet", "TaxCode",
          "LineTax", "ExportedAt"]
ACCOUNTS = ["6100", "6540"]
COST_CENTERS = ["CC210", "CC220", "CC300"]
CURRENCIES = {"USD": 2, "EUR": 2, "JPY": 0}
TAX_RATE = Decimal("0.08")


def vendor_ids(count: int) -> list[str]:
    return [f"G{n:05d}" for n in range(1, count + 1)]


def _amount(rng: random.Random, digits: int) -> Decimal:
    cents = rng.randint(100, 500_000)
    return (Decimal(cents) / 100).quantize(Decimal(1).scaleb(-digits))


def invoice_rows(count: int, *, seed: int = 42, vendors: int = 50, credit_share: float = 0.05,
                 currencies: dict[str, int] | None = None, prefix: str = "GEN",
                 start: int = 0) -> Iterator[list[str]]:
    """Rows of `count` invoices numbered prefix-(start+1)..; 1-5 lines each."""
    rng = random.Random(seed)
    currencies = currencies or CURRENCIES
    codes = list(currencies)
    vendor_list = vendor_ids(vendors)
    for n in range(start + 1, start + count + 1):
        currency = codes[n % len(codes)]
        digits = currencies[currency]
        credit = rng.random() < credit_share
        sign = Decimal(-1) if credit else Decimal(1)
        lines = []
        for _ in range(rng.randint(1, 5)):
            net = _amount(rng, digits) * sign
            tax = (net * TAX_RATE).quantize(Decimal(1).scaleb(-digits))
            lines.append((net, tax))
        net = sum((l[0] for l in lines), Decimal(0))
        tax = sum((l[1] for l in lines), Decimal(0))
        vendor = vendor_list[n % len(vendor_list)]
        head = ["C1042", str(900000 + n), "CreditNote" if credit else "Invoice",
                f"{prefix}-{n:07d}", vendor, f"Generated Vendor {vendor}", "2026-11-04",
                "2026-12-04", currency, str(net), str(tax), str(net + tax), "Approved",
                "2026-11-06T15:22:10Z", "bench", ""]
        for i, (line_net, line_tax) in enumerate(lines, start=1):
            yield head + [str(i), f"item {i}", ACCOUNTS[i % 2], COST_CENTERS[i % 3],
                          str(line_net), "TX8", str(line_tax), "2026-11-06T15:25:00Z"]


def write_invoices_csv(path: Path, count: int, **options) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADER)
        writer.writerows(invoice_rows(count, **options))
    return Path(path)


def write_vendors_csv(path: Path, vendors: int) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["VendorID", "VendorName", "TaxID", "AddressLine1", "City",
                         "PostalCode", "Country", "Currency", "PaymentTerms", "Active"])
        for vendor in vendor_ids(vendors):
            writer.writerow([vendor, f"Generated Vendor {vendor}", f"TAX-{vendor}", "1 Road",
                             "Dayton", "45402", "US", "USD", "NET30", "true"])
    return Path(path)


def ifs_seed(vendors: int, *, base: dict | None = None) -> dict:
    """The emulator seed extended with the generated vendors as suppliers linked to company
    10, so steady-state posting needs no supplier creation."""
    import tomllib
    from importlib import resources

    seed = base or tomllib.loads(
        resources.files("sandbox").joinpath("ifs_seed.toml").read_text())
    seed = dict(seed)
    suppliers = list(seed.get("suppliers", []))
    links = list(seed.get("supplier_companies", []))
    for vendor in vendor_ids(vendors):
        suppliers.append({"SupplierId": vendor, "Name": f"Generated Vendor {vendor}",
                          "Country": "US", "DefaultLanguage": "en", "AssociationNo": "",
                          "CreationDate": "2026-01-01"})
        links.append({"SupplierId": vendor, "Company": "10", "PayTermId": "NET30",
                      "Currency": "USD"})
    seed["suppliers"], seed["supplier_companies"] = suppliers, links
    return seed


def write_invoices_csv_fast_until(path: Path, target_bytes: int, *, seed: int = 42,
                                  vendors: int = 50, block: int = 10_000,
                                  prefix: str = "GEN") -> int:
    """Invoices until the file reaches target_bytes, for huge files (the 1 GB memory benchmark): one block of
    `block` seeded invoices is rendered once and written again and again with new invoice
    numbers and Stampli ids, so writing runs at disk speed instead of Decimal-arithmetic speed.
    Content repeats every `block` invoices; identities never do. Returns how many invoices."""
    import io

    templates: list[str] = []
    current: list[str] = []
    last = None
    for row in invoice_rows(block, seed=seed, vendors=vendors, prefix=prefix):
        number = row[3]
        if number != last and current:
            templates.append("".join(current))
            current = []
        last = number
        row = list(row)
        # The two fields that make an invoice unique become format slots ({{ }} never occurs:
        # generated text has no braces).
        row[1], row[3] = "{sid}", f"{prefix}-{{num:07d}}"
        out = io.StringIO()
        csv.writer(out).writerow(row)
        current.append(out.getvalue())
    templates.append("".join(current))
    written = 0
    with open(path, "w", newline="", encoding="utf-8") as handle:
        out = io.StringIO()
        csv.writer(out).writerow(HEADER)
        handle.write(out.getvalue())
        while handle.tell() < target_bytes:
            handle.write("".join(t.format(sid=900000 + written + i, num=written + i)
                                 for i, t in enumerate(templates, start=1)))
            written += len(templates)
    return written
