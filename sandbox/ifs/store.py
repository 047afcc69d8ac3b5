"""In-memory tables, ETags, keys and undoable writes.

Every write goes through `put`/`delete`, which keep an undo log while a transaction is open:
that is what makes a `$batch` changeset all-or-nothing. The event loop is single-threaded and
handlers never await while they write, so no locking is needed.
"""
from __future__ import annotations

import base64
import itertools
from contextlib import contextmanager
from decimal import Decimal
from typing import Any, Iterator

from .schema import DECIMAL, ENTITIES, EntityDef, parent_key_fields
from .urlpath import keyref

Key = tuple


class Dec(str):
    """A decimal rendered for JSON: a string under IEEE754Compatible=true, else a bare number
    (the encoder writes it without quotes). Never a float on the way."""
# Unique business keys besides the entity key: IFS refuses a second supplier invoice with the
# same (Company, Identity, InvoiceNo) even though InvoiceId differs.
UNIQUE = {"invoice": ("Company", "Identity", "InvoiceNo")}


def _etag(rowid: int, version: int) -> str:
    # IFS ETags are weak and opaque: base64 of a row id and a row version.
    raw = f"AAAP{rowid:08X}AAB:{version}".encode()
    return 'W/"' + base64.b64encode(raw).decode() + '"'


class Store:
    def __init__(self) -> None:
        self.clear()

    def clear(self) -> None:
        self.rows: dict[str, dict[Key, dict[str, Any]]] = {n: {} for n in ENTITIES}
        self.kids: dict[str, dict[Key, dict[Key, None]]] = {
            n: {} for n, d in ENTITIES.items() if d.parent}
        self.companies: dict[str, dict[str, Any]] = {}
        self._undo: list[tuple] | None = None
        self._rowids = itertools.count(1)
        self._invoice_ids = itertools.count(1001)
        self._voucher_nos: dict[tuple, int] = {}
        self.row_numbers: dict[tuple, int] = {}      # (child set, parent key) -> last RowNo
        self.unique: dict[str, dict[tuple, Key]] = {n: {} for n in UNIQUE}

    # ------------------------------------------------------------------ keys and ids
    @staticmethod
    def key_of(edef: EntityDef, rec: dict[str, Any]) -> Key:
        return tuple(rec[k] for k in edef.keys)

    def next_invoice_id(self) -> int:
        # A database sequence: not given back when a changeset rolls back.
        return next(self._invoice_ids)

    def next_voucher_no(self, company: str, year: int, vtype: str) -> int:
        seq = (company, year, vtype)
        self._voucher_nos[seq] = self._voucher_nos.get(seq, year * 10000) + 1
        return self._voucher_nos[seq]

    # ------------------------------------------------------------------ reads
    def get(self, name: str, key: Key) -> dict[str, Any] | None:
        return self.rows[name].get(key)

    def all(self, name: str) -> list[dict[str, Any]]:
        table = self.rows[name]
        return [table[k] for k in sorted(table, key=_sort_key)]

    def find_unique(self, name: str, values: tuple) -> dict[str, Any] | None:
        key = self.unique[name].get(values)
        return None if key is None else self.rows[name].get(key)

    def children(self, name: str, parent_key: Key) -> list[dict[str, Any]]:
        keys = self.kids[name].get(parent_key, {})
        table = self.rows[name]
        return [table[k] for k in sorted(keys, key=_sort_key)]

    # ------------------------------------------------------------------ writes
    def put(self, name: str, rec: dict[str, Any], *, touch: bool = True) -> dict[str, Any]:
        """Insert or replace. `touch` gives the row a new ETag (every real modification)."""
        edef = ENTITIES[name]
        key = self.key_of(edef, rec)
        old = self.rows[name].get(key)
        new = dict(rec)
        if old is None:
            new["_rowid"], new["_ver"] = next(self._rowids), 1
        elif touch:
            new["_rowid"], new["_ver"] = old["_rowid"], old["_ver"] + 1
        else:
            new["_rowid"], new["_ver"] = old["_rowid"], old["_ver"]
        new["@odata.etag"] = _etag(new["_rowid"], new["_ver"])
        self._log(("put", name, key, old))
        self._unindex(name, old)
        self.rows[name][key] = new
        self._index(name, new)
        if edef.parent and old is None:
            pk = key[:len(parent_key_fields(edef))]
            self.kids[name].setdefault(pk, {})[key] = None
        return new

    def delete(self, name: str, key: Key) -> None:
        edef = ENTITIES[name]
        for child in edef.children.values():
            for rec in self.children(child, key):
                self.delete(child, self.key_of(ENTITIES[child], rec))
        old = self.rows[name].pop(key)
        self._unindex(name, old)
        self._log(("del", name, key, old))
        if edef.parent:
            self.kids[name][key[:len(parent_key_fields(edef))]].pop(key, None)

    def _index(self, name: str, rec: dict[str, Any] | None) -> None:
        if rec is not None and name in UNIQUE:
            self.unique[name][tuple(rec.get(f) for f in UNIQUE[name])] = \
                self.key_of(ENTITIES[name], rec)

    def _unindex(self, name: str, rec: dict[str, Any] | None) -> None:
        if rec is not None and name in UNIQUE:
            self.unique[name].pop(tuple(rec.get(f) for f in UNIQUE[name]), None)

    def _log(self, entry: tuple) -> None:
        if self._undo is not None:
            self._undo.append(entry)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """All writes inside succeed together or are undone together (a changeset)."""
        if self._undo is not None:     # nested: part of the outer transaction
            yield
            return
        self._undo = []
        try:
            yield
        except BaseException:
            self._rollback()
            raise
        finally:
            self._undo = None

    def _rollback(self) -> None:
        assert self._undo is not None
        for op, name, key, old in reversed(self._undo):
            edef = ENTITIES[name]
            pk = key[:len(parent_key_fields(edef))] if edef.parent else None
            self._unindex(name, self.rows[name].get(key))
            if op == "put" and old is None:
                del self.rows[name][key]
                if pk is not None:
                    self.kids[name][pk].pop(key, None)
            else:
                self.rows[name][key] = old
                self._index(name, old)
                if pk is not None:
                    self.kids[name].setdefault(pk, {})[key] = None
        self._undo = []

    # ------------------------------------------------------------------ companies, periods
    def company(self, code: str) -> dict[str, Any] | None:
        return self.companies.get(code)

    def period_open(self, company: str, day: str) -> bool:
        """Open when its month or year is listed open and neither is listed closed."""
        comp = self.companies.get(company) or {}
        year, month = day[:4], day[:7]
        opened, closed = set(comp.get("open_periods", ())), set(comp.get("closed_periods", ()))
        if month in closed:
            return False
        if month in opened:
            return True
        return year in opened and year not in closed

    # ------------------------------------------------------------------ rendering
    def render(self, name: str, rec: dict[str, Any]) -> dict[str, Any]:
        """The entity as IFS sends it: etag, fields (decimals as strings), luname, keyref."""
        edef = ENTITIES[name]
        out: dict[str, Any] = {"@odata.etag": rec["@odata.etag"]}
        for prop, edm in edef.props.items():
            value = rec.get(prop)
            out[prop] = Dec(value) if (edm == DECIMAL and value is not None) else value
        if edef.state:
            out["Objstate"] = rec.get("Objstate")
        out["luname"] = edef.luname
        out["keyref"] = keyref(edef, self.key_of(edef, rec))
        return out

    def dump(self) -> dict[str, Any]:
        """Everything, for GET /_emulator/state."""
        def rendered(name: str) -> list[dict[str, Any]]:
            return [self.render(name, r) for r in self.all(name)]

        def with_children(name: str, nav: str, child: str) -> list[dict[str, Any]]:
            out = []
            for rec in self.all(name):
                doc = self.render(name, rec)
                doc[nav] = [self.render(child, c)
                            for c in self.children(child, self.key_of(ENTITIES[name], rec))]
                out.append(doc)
            return out

        code_parts = {d.name[-1]: rendered(d.name) for d in ENTITIES.values()
                      if d.name.startswith("code_") and self.rows[d.name]}
        return {
            "companies": [dict(c) for c in self.companies.values()],
            "accounts": rendered("account"),
            "code_parts": code_parts,
            "suppliers": with_children("supplier", "SupplierInvoiceCompanies", "supplier_company"),
            "purchase_orders": rendered("purchase_order"),
            "invoices": with_children("invoice", "Lines", "invoice_line"),
            "vouchers": with_children("voucher", "Rows", "voucher_row"),
        }


def _sort_key(key: Key) -> tuple:
    # Keys mix str and int per position consistently; None never occurs in keys.
    return tuple((0, v, "") if isinstance(v, (int, Decimal)) else (1, 0, v) for v in key)
