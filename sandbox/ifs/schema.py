"""The entity model the emulator serves: projections, entity sets, keys, typed properties.

One table drives the store, the `$filter` type checks and `$metadata`, so they cannot drift.
Names are the contract's default endpoint map (ifs-contract.md §2).
"""
from __future__ import annotations

from dataclasses import dataclass, field

STRING, INT, DECIMAL, DATE = "Edm.String", "Edm.Int32", "Edm.Decimal", "Edm.Date"
CODE_PART_LETTERS = "BCDEFGHIJ"        # IFS code parts B..J; A is the account itself
CODE_PART_FIELDS = tuple(f"Code{letter}" for letter in CODE_PART_LETTERS)


@dataclass(frozen=True)
class EnumType:
    projection: str
    name: str
    members: tuple[str, ...]

    @property
    def qualified(self) -> str:
        return f"IfsApp.{self.projection}.{self.name}"


@dataclass(frozen=True)
class ToOne:
    """A to-one navigation ($expand-able): target entity and how our fields map to its keys."""
    target: str
    key_map: tuple[tuple[str, str], ...]   # (target key, our field)


@dataclass
class EntityDef:
    name: str                          # internal name, e.g. "invoice"
    projection: str
    set_name: str                      # entity set, or navigation name for a child
    type_name: str
    luname: str
    keys: tuple[str, ...]
    props: dict[str, str]              # name -> Edm type or enum qualified name
    state: EnumType | None = None
    parent: str | None = None          # internal name of the parent (children only)
    children: dict[str, str] = field(default_factory=dict)   # nav name -> child internal name
    to_one: dict[str, ToOne] = field(default_factory=dict)
    actions: tuple[str, ...] = ()      # bound action short names
    creatable: bool = False
    updatable: tuple[str, ...] = ()    # fields a PATCH may change
    deletable: bool = False

    def edm_type(self, prop: str) -> str | None:
        if prop == "Objstate" and self.state:
            return self.state.qualified
        return self.props.get(prop)

    def action_name(self, short: str) -> str:
        return f"IfsApp.{self.projection}.{short}"


def _props(*pairs: tuple[str, str]) -> dict[str, str]:
    return dict(pairs)


_RANGE = (("Description", STRING), ("ValidFrom", DATE), ("ValidUntil", DATE))
_CODE_PARTS = tuple((f, STRING) for f in CODE_PART_FIELDS)

INVOICE_STATE = EnumType("ManualSupplierInvoiceHandling", "PostingProposalHeadState",
                         ("Preliminary", "Posted", "Cancelled"))
VOUCHER_STATE = EnumType("VoucherHandling", "VoucherState", ("Waiting", "Approved", "Cancelled"))
PO_STATE = EnumType("PurchaseOrderHandling", "PurchaseOrderState",
                    ("Planned", "Released", "Confirmed", "Received", "Closed", "Cancelled"))


def _build() -> dict[str, EntityDef]:
    defs = [
        EntityDef("account", "AccountsHandling", "AccountSet", "Account", "Account",
                  ("Company", "Account"), _props(("Company", STRING), ("Account", STRING), *_RANGE)),
        EntityDef("supplier", "SupplierHandling", "SupplierInfoGeneralSet", "SupplierInfoGeneral",
                  "SupplierInfoGeneral", ("SupplierId",),
                  _props(("SupplierId", STRING), ("Name", STRING), ("Country", STRING),
                         ("DefaultLanguage", STRING), ("AssociationNo", STRING),
                         ("CreationDate", DATE)),
                  children={"SupplierInvoiceCompanies": "supplier_company"}, creatable=True,
                  updatable=("Name", "Country", "DefaultLanguage", "AssociationNo")),
        EntityDef("supplier_company", "SupplierHandling", "SupplierInvoiceCompanies",
                  "SupplierInvoiceCompany", "IdentityInvoiceInfo", ("SupplierId", "Company"),
                  _props(("SupplierId", STRING), ("Company", STRING), ("PayTermId", STRING),
                         ("Currency", STRING)),
                  parent="supplier", creatable=True, updatable=("PayTermId", "Currency"),
                  deletable=True),
        EntityDef("purchase_order", "PurchaseOrderHandling", "PurchaseOrderSet", "PurchaseOrder",
                  "PurchaseOrder", ("OrderNo",),
                  _props(("OrderNo", STRING), ("Company", STRING), ("VendorNo", STRING),
                         ("CurrencyCode", STRING)),
                  state=PO_STATE,
                  to_one={"VendorRef": ToOne("supplier", (("SupplierId", "VendorNo"),))}),
        EntityDef("invoice", "ManualSupplierInvoiceHandling", "PostingProposalHeadSet",
                  "PostingProposalHead", "ManSuppInvoice", ("Company", "InvoiceId"),
                  _props(("Company", STRING), ("InvoiceId", INT), ("Identity", STRING),
                         ("InvoiceNo", STRING), ("InvoiceType", STRING), ("InvoiceDate", DATE),
                         ("DueDate", DATE), ("Currency", STRING), ("NetCurrAmount", DECIMAL),
                         ("VatCurrAmount", DECIMAL), ("GrossCurrAmount", DECIMAL),
                         ("PurchaseOrderRef", STRING), ("ExternalRef", STRING)),
                  state=INVOICE_STATE, children={"Lines": "invoice_line"},
                  to_one={"IdentityRef": ToOne("supplier", (("SupplierId", "Identity"),))},
                  actions=("PostingProposalHead_Post",), creatable=True, deletable=True,
                  updatable=("InvoiceDate", "DueDate", "NetCurrAmount", "VatCurrAmount",
                             "GrossCurrAmount", "PurchaseOrderRef", "ExternalRef")),
        EntityDef("invoice_line", "ManualSupplierInvoiceHandling", "Lines", "PostingProposalLine",
                  "ManSuppInvoicePostingLine", ("Company", "InvoiceId", "RowNo"),
                  _props(("Company", STRING), ("InvoiceId", INT), ("RowNo", INT),
                         ("Account", STRING), *_CODE_PARTS, ("CurrAmount", DECIMAL),
                         ("TaxCode", STRING), ("TaxCurrAmount", DECIMAL), ("Text", STRING)),
                  parent="invoice", creatable=True, deletable=True,
                  to_one={"AccountRef": ToOne("account", (("Company", "Company"),
                                                          ("Account", "Account")))},
                  updatable=("Account", *CODE_PART_FIELDS, "CurrAmount", "TaxCode",
                             "TaxCurrAmount", "Text")),
        EntityDef("voucher", "VoucherHandling", "VoucherSet", "Voucher", "Voucher",
                  ("Company", "AccountingYear", "VoucherType", "VoucherNo"),
                  _props(("Company", STRING), ("AccountingYear", INT), ("VoucherType", STRING),
                         ("VoucherNo", INT), ("VoucherDate", DATE), ("Currency", STRING),
                         ("Text", STRING), ("ExternalRef", STRING)),
                  state=VOUCHER_STATE, children={"Rows": "voucher_row"},
                  actions=("Voucher_Approve",), creatable=True, deletable=True,
                  updatable=("Text", "ExternalRef")),
        EntityDef("voucher_row", "VoucherHandling", "Rows", "VoucherRow", "VoucherRow",
                  ("Company", "AccountingYear", "VoucherType", "VoucherNo", "RowNo"),
                  _props(("Company", STRING), ("AccountingYear", INT), ("VoucherType", STRING),
                         ("VoucherNo", INT), ("RowNo", INT), ("Account", STRING), *_CODE_PARTS,
                         ("CurrencyDebitAmount", DECIMAL), ("CurrencyCreditAmount", DECIMAL),
                         ("Text", STRING)),
                  parent="voucher", creatable=True, deletable=True,
                  to_one={"AccountRef": ToOne("account", (("Company", "Company"),
                                                          ("Account", "Account")))},
                  updatable=("Account", *CODE_PART_FIELDS, "CurrencyDebitAmount",
                             "CurrencyCreditAmount", "Text")),
    ]
    for letter in CODE_PART_LETTERS:   # the cost-center code part letter is configurable
        code = f"Code{letter}"
        defs.append(EntityDef(f"code_{letter}", f"{code}Handling", f"{code}Set", code,
                              f"Accounting{code}", ("Company", code),
                              _props(("Company", STRING), (code, STRING), *_RANGE)))
    return {d.name: d for d in defs}


ENTITIES: dict[str, EntityDef] = _build()
ENUMS: dict[str, EnumType] = {e.qualified: e for e in (INVOICE_STATE, VOUCHER_STATE, PO_STATE)}


def projections() -> dict[str, dict[str, EntityDef]]:
    """Projection -> entity set name -> definition (top-level sets only)."""
    out: dict[str, dict[str, EntityDef]] = {}
    for d in ENTITIES.values():
        out.setdefault(d.projection, {})
        if d.parent is None:
            out[d.projection][d.set_name] = d
    return out


PROJECTIONS = projections()


def parent_key_fields(child: EntityDef) -> tuple[str, ...]:
    """The leading key fields a child shares with its parent."""
    assert child.parent is not None
    return ENTITIES[child.parent].keys
