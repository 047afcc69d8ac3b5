"""The endpoint map: where each IFS entity lives (ifs-contract.md §2), overridable per tenant.

Entity-set and field names vary by IFS release and projection, so every role below can be
overridden with `[ifs.endpoints.<role>]`; `IfsErp.check()` compares the effective map with the
tenant's `$metadata`. Child roles (`supplier_company`, `invoice_line`, `voucher_row`) name a
navigation property of their parent in `entity_set`.
"""
from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING

import msgspec

if TYPE_CHECKING:      # settings.py checks the roles at load; a runtime import would be a cycle
    from adapters.settings import IfsSettings


class Endpoint(msgspec.Struct, frozen=True):
    role: str
    projection: str
    entity_set: str
    keys: tuple[str, ...]
    parent: str = ""                   # role of the parent for a child collection
    fields: tuple[str, ...] = ()       # fields the connector reads or writes (for `check`)


# Bound actions, by role: (namespace-qualified action name as used in the URL).
ACTIONS = {
    "invoice": "IfsApp.{projection}.PostingProposalHead_Post",
    "voucher": "IfsApp.{projection}.Voucher_Approve",
}


def default_map(code_part: str = "B") -> dict[str, Endpoint]:
    """One Endpoint per role, in settings.ENDPOINT_ROLES order (tests/ifs/test_check.py)."""
    code = f"Code{code_part.strip().upper()}"
    return {e.role: e for e in (
        Endpoint("account", "AccountsHandling", "AccountSet", ("Company", "Account"),
                 fields=("Description", "ValidFrom", "ValidUntil")),
        Endpoint("cost_center", f"{code}Handling", f"{code}Set", ("Company", code),
                 fields=("Description", "ValidFrom", "ValidUntil")),
        Endpoint("supplier", "SupplierHandling", "SupplierInfoGeneralSet", ("SupplierId",),
                 fields=("Name", "Country", "DefaultLanguage", "AssociationNo")),
        Endpoint("supplier_company", "SupplierHandling", "SupplierInvoiceCompanies",
                 ("SupplierId", "Company"), parent="supplier", fields=("Currency",)),
        Endpoint("purchase_order", "PurchaseOrderHandling", "PurchaseOrderSet", ("OrderNo",),
                 fields=("Company", "VendorNo", "CurrencyCode", "Objstate")),
        Endpoint("invoice", "ManualSupplierInvoiceHandling", "PostingProposalHeadSet",
                 ("Company", "InvoiceId"),
                 fields=("Identity", "InvoiceNo", "InvoiceType", "InvoiceDate", "Currency",
                         "NetCurrAmount", "VatCurrAmount", "GrossCurrAmount", "ExternalRef",
                         "Objstate")),
        Endpoint("invoice_line", "ManualSupplierInvoiceHandling", "Lines",
                 ("Company", "InvoiceId", "RowNo"), parent="invoice",
                 fields=("Account", code, "CurrAmount", "TaxCode", "TaxCurrAmount", "Text")),
        Endpoint("voucher", "VoucherHandling", "VoucherSet",
                 ("Company", "AccountingYear", "VoucherType", "VoucherNo"),
                 fields=("VoucherDate", "Currency", "Text", "ExternalRef", "Objstate")),
        Endpoint("voucher_row", "VoucherHandling", "Rows",
                 ("Company", "AccountingYear", "VoucherType", "VoucherNo", "RowNo"),
                 parent="voucher",
                 fields=("Account", code, "CurrencyDebitAmount", "CurrencyCreditAmount",
                         "Text")),
    )}


def effective_map(settings: IfsSettings) -> dict[str, Endpoint]:
    """The default map with the configured overrides applied. An override of an unknown role
    is a configuration error: say which roles exist."""
    endpoints = default_map(settings.posting.cost_center_code_part)
    for role, override in settings.endpoints.items():
        if role not in endpoints:
            raise ValueError(f"`ifs.endpoints.{role}`: unknown role; known roles: "
                             f"{', '.join(sorted(endpoints))}")
        base = endpoints[role]
        endpoints[role] = msgspec.structs.replace(
            base, projection=override.projection, entity_set=override.entity_set,
            keys=tuple(override.keys) or base.keys)
    return endpoints


def key_predicate(values: dict[str, object]) -> str:
    """`(Company='10',InvoiceId=4711)`: strings quoted with `'` doubled, numbers bare."""
    parts = []
    for name, value in values.items():
        parts.append(f"{name}={literal(value)}")
    return "(" + ",".join(parts) + ")"


def literal(value: object) -> str:
    """An OData literal for a key predicate or a $filter."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, Decimal)):
        return str(value)
    if isinstance(value, float):           # never for money; only ids that came back as float
        return repr(int(value)) if value.is_integer() else repr(value)
    text = str(value).replace("'", "''")
    return f"'{text}'"
