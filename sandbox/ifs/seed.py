"""Reference data: realms and clients, companies and periods, accounts, code parts, suppliers,
supplier-company links, purchase orders. From a TOML or JSON file, or a dict (tests that
generate data). Applying a seed upserts: it adds new rows and modifies existing ones."""
from __future__ import annotations

import datetime as dt
import json
import tomllib
from pathlib import Path
from typing import Any

from .auth import Auth
from .errors import ODataError
from .checks import coerce
from .schema import CODE_PART_LETTERS, ENTITIES
from .store import Store

DEFAULT_SEED = Path(__file__).resolve().parent.parent / "ifs_seed.toml"
_SECTIONS = ("clients", "realms", "companies", "accounts", "code_parts", "suppliers",
             "supplier_companies", "purchase_orders")


def load(source: str | Path | dict[str, Any] | None) -> dict[str, Any]:
    if source is None:
        return {}
    if isinstance(source, dict):
        return source
    path = Path(source)
    if path.suffix == ".json":
        return json.loads(path.read_text(encoding="utf-8"))
    with path.open("rb") as fh:
        return tomllib.load(fh)


def _plain(value: Any) -> Any:
    # TOML may give real dates; the store keeps ISO strings.
    return value.isoformat() if isinstance(value, dt.date) else value


def _row(name: str, raw: dict[str, Any], where: str) -> dict[str, Any]:
    edef = ENTITIES[name]
    try:
        data = coerce(edef, {k: _plain(v) for k, v in raw.items()})
    except ODataError as err:
        raise ValueError(f"seed {where}: {err.message}") from None
    missing = [k for k in edef.keys if data.get(k) in (None, "")]
    if missing:
        raise ValueError(f"seed {where}: missing {', '.join(missing)} in {raw}")
    return {**{p: None for p in edef.props}, **data}


def _upsert(store: Store, name: str, row: dict[str, Any]) -> None:
    old = store.get(name, store.key_of(ENTITIES[name], row))
    if old is not None:
        row = {**old, **{k: v for k, v in row.items() if v is not None}}
    store.put(name, row)


def _company(store: Store, code: str) -> None:
    # Rows may name a company the seed does not describe: create it with defaults.
    store.companies.setdefault(code, {"company": code, "name": code, "currency": "USD",
                                      "cost_center_code_part": "B", "open_periods": [],
                                      "closed_periods": []})


def apply(store: Store, auth: Auth, seed: dict[str, Any]) -> dict[str, int]:
    """Upsert everything in `seed`; returns how many rows each section touched."""
    unknown = set(seed) - set(_SECTIONS)
    if unknown:
        raise ValueError(f"seed: unknown section(s) {', '.join(sorted(unknown))}; "
                         f"expected {', '.join(_SECTIONS)}")
    counts = {s: len(seed.get(s, ())) for s in _SECTIONS if seed.get(s)}
    for realm in seed.get("realms", ()):
        auth.add_realm(realm)
    for c in seed.get("clients", ()):
        auth.add_client(c["realm"], c["client_id"], c["secret"],
                        bool(c.get("service_account", True)))
    for c in seed.get("companies", ()):
        code = str(c["company"])
        _company(store, code)
        comp = store.companies[code]
        for field in ("name", "currency", "cost_center_code_part"):
            if field in c:
                comp[field] = c[field]
        for field in ("open_periods", "closed_periods"):
            if field in c:
                comp[field] = [str(p) for p in c[field]]
    for i, raw in enumerate(seed.get("accounts", ())):
        row = _row("account", raw, f"accounts[{i}]")
        _company(store, row["Company"])
        _upsert(store, "account", row)
    for i, raw in enumerate(seed.get("code_parts", ())):
        raw = dict(raw)
        letter = str(raw.pop("CodePart", "B")).upper()
        if letter not in CODE_PART_LETTERS:
            raise ValueError(f"seed code_parts[{i}]: code part {letter} is not one of "
                             f"{CODE_PART_LETTERS}")
        raw[f"Code{letter}"] = raw.pop("Value", raw.get(f"Code{letter}"))
        row = _row(f"code_{letter}", raw, f"code_parts[{i}]")
        _company(store, row["Company"])
        _upsert(store, f"code_{letter}", row)
    for i, raw in enumerate(seed.get("suppliers", ())):
        row = _row("supplier", raw, f"suppliers[{i}]")
        row["CreationDate"] = row["CreationDate"] or dt.date.today().isoformat()
        _upsert(store, "supplier", row)
    for i, raw in enumerate(seed.get("supplier_companies", ())):
        row = _row("supplier_company", raw, f"supplier_companies[{i}]")
        if store.get("supplier", (row["SupplierId"],)) is None:
            raise ValueError(f"seed supplier_companies[{i}]: supplier {row['SupplierId']} "
                             "is not in the seed")
        _company(store, row["Company"])
        _upsert(store, "supplier_company", row)
    for i, raw in enumerate(seed.get("purchase_orders", ())):
        row = _row("purchase_order", {"Objstate": "Released", **raw}, f"purchase_orders[{i}]")
        _upsert(store, "purchase_order", row)
    return counts
