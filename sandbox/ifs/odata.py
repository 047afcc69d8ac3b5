"""One OData operation: route a path inside a projection to a read, a write or an action.

Used for plain HTTP requests and for each operation inside a `$batch`, so both behave the same.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from yarl import URL

from . import metadata, rules
from .errors import ODataError, bad_request, not_allowed, not_found
from .query import apply_orderby, compile_filter, parse_expand, parse_orderby, parse_select
from .schema import ENTITIES, PROJECTIONS, EntityDef
from .store import Store
from .urlpath import key_predicate, parse_key, parse_segment, split_segments

JSON_TYPE = "application/json;odata.metadata=minimal;IEEE754Compatible=true"
JSON_NUMBERS_TYPE = "application/json;odata.metadata=minimal;IEEE754Compatible=false"
MAX_PAGE = 5000                      # IFS's hard page limit
_UNSUPPORTED_OPTIONS = {"$search", "$apply", "$compute", "$levels"}


@dataclass
class Op:
    """One request, as HTTP gave it or as a $batch part carried it."""
    method: str
    projection: str
    path: str                        # after `{Projection}.svc/`, decoded, no query
    query: dict[str, str]
    headers: dict[str, str]          # lower-case names
    body: bytes
    service_root: str                # absolute, ends with `.svc/`


@dataclass
class Result:
    status: int
    body: Any = None                 # dict -> JSON, str -> text
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = JSON_TYPE
    entity_path: str | None = None   # what `$n` refers to inside a changeset
    etag: str | None = None
    ieee754: bool = True             # decimals as strings (the client asked for it)

    @property
    def wrote(self) -> bool:
        return self.status < 300


def error_result(err: ODataError) -> Result:
    return Result(err.status, err.body(), dict(err.headers))


def entity_path(edef: EntityDef, key: tuple) -> str:
    if edef.parent is None:
        return edef.set_name + key_predicate(edef, key)
    parent = ENTITIES[edef.parent]
    return (entity_path(parent, key[:len(parent.keys)]) + "/" + edef.set_name
            + key_predicate(edef, key))


def parse_body(raw: bytes) -> Any:
    if not raw.strip():
        return {}
    try:
        return json.loads(raw, parse_float=Decimal)   # never float: amounts stay exact
    except (ValueError, UnicodeDecodeError):
        raise bad_request("Error while de-serializing contents.",
                          "ODP_DESERIALIZATION_ERROR") from None


def check_if_match(op: Op, rec: dict[str, Any]) -> None:
    value = op.headers.get("if-match")
    if value is None:
        raise ODataError(428, "ODP_MISSING_PRECONDITION",
                         "The request must be conditional: send If-Match with the ETag.")
    if value.strip() == "*":
        return
    tags = [t.strip() for t in value.split(",")]     # base64 ETags contain no commas
    if rec["@odata.etag"] not in tags:
        raise ODataError(412, "ODP_PRECONDITION_FAILED",
                         "The ETag does not match: the record was changed by another user.")


class OData:
    def __init__(self, store: Store, settings: Any) -> None:
        self.store = store
        self.settings = settings     # .page_size, .next_links (changeable at runtime)

    def handle(self, op: Op) -> Result:
        try:
            result = self._route(op)
        except ODataError as err:
            return error_result(err)
        # OData JSON: decimals are strings only when the client sent IEEE754Compatible=true.
        accept = op.headers.get("accept", "").replace(" ", "").lower()
        if "ieee754compatible=true" not in accept and result.content_type == JSON_TYPE:
            result.ieee754, result.content_type = False, JSON_NUMBERS_TYPE
        return result

    # ------------------------------------------------------------------ routing
    def _route(self, op: Op) -> Result:
        sets = PROJECTIONS.get(op.projection)
        if sets is None:
            raise not_found(f"projection {op.projection}")
        segs = split_segments(op.path)
        if not segs:
            return Result(200, {"@odata.context": op.service_root + "$metadata", "value": [
                {"name": n, "kind": "EntitySet", "url": n} for n in sets]})
        if segs == ["$metadata"]:
            return Result(200, metadata.render(op.projection), content_type="application/xml")
        name, pred = parse_segment(segs[0])
        edef = sets.get(name)
        if edef is None:
            raise not_found(f"{name} in {op.projection}")
        if pred is None:
            if len(segs) == 1:
                return self._collection(op, edef, None)
            if segs[1:] == ["$count"] and op.method == "GET":
                return Result(200, str(len(self._filtered(op, edef, None))),
                              content_type="text/plain")
            raise not_found(op.path)
        key = parse_key(edef, pred)
        rec = self._get(edef, key)
        if len(segs) == 1:
            return self._entity(op, edef, rec)
        nav, child_pred = parse_segment(segs[1])
        if len(segs) == 2 and nav in edef.children:
            child = ENTITIES[edef.children[nav]]
            if child_pred is None:
                return self._collection(op, child, rec)
            ckey = parse_key(child, child_pred, dict(zip(edef.keys, key)))
            return self._entity(op, child, self._get(child, ckey))
        short = nav.rsplit(".", 1)[-1]
        if len(segs) == 2 and short in edef.actions and nav == edef.action_name(short):
            if op.method != "POST":
                raise not_allowed(f"{nav} is an action: use POST.")
            check_if_match(op, rec)
            return self._written(op, edef, rules.ACTIONS[short](self.store, rec), 200)
        if len(segs) == 2 and nav in edef.to_one and child_pred is None and op.method == "GET":
            target = self._to_one(edef, nav, rec)
            if target is None:
                return Result(204)
            return self._entity(op, ENTITIES[edef.to_one[nav].target], target)
        raise not_found(op.path)

    def _get(self, edef: EntityDef, key: tuple) -> dict[str, Any]:
        rec = self.store.get(edef.name, key)
        if rec is None:
            raise not_found(entity_path(edef, key))
        return rec

    def _to_one(self, edef: EntityDef, nav: str, rec: dict[str, Any]) -> dict | None:
        link = edef.to_one[nav]
        target = ENTITIES[link.target]
        values = dict((tk, rec.get(f)) for tk, f in link.key_map)
        return self.store.get(target.name, tuple(values[k] for k in target.keys))

    # ------------------------------------------------------------------ single entity
    def _entity(self, op: Op, edef: EntityDef, rec: dict[str, Any]) -> Result:
        if op.method == "GET":
            body = self._shape(op, edef, rec)
            body = {"@odata.context": f"{op.service_root}$metadata#{_set_of(edef)}/$entity",
                    **body}
            return Result(200, body, {"ETag": rec["@odata.etag"]}, etag=rec["@odata.etag"],
                          entity_path=entity_path(edef, self.store.key_of(edef, rec)))
        if op.method in ("PATCH", "MERGE"):
            if not edef.updatable:
                raise not_allowed(f"{edef.set_name} cannot be modified.")
            check_if_match(op, rec)
            return self._written(op, edef, rules.patch(self.store, edef.name, rec,
                                                       parse_body(op.body)), 200)
        if op.method == "DELETE":
            if not edef.deletable:
                raise not_allowed(f"{edef.set_name} entities cannot be deleted.")
            check_if_match(op, rec)
            rules.delete(self.store, edef.name, rec)
            return Result(204)
        raise not_allowed(f"{op.method} is not allowed on a single {edef.type_name}.")

    def _written(self, op: Op, edef: EntityDef, rec: dict[str, Any], status: int) -> Result:
        etag = rec["@odata.etag"]
        path = entity_path(edef, self.store.key_of(edef, rec))
        headers = {"ETag": etag}
        if status == 201:
            headers["Location"] = op.service_root + path
        if "return=minimal" in op.headers.get("prefer", ""):
            headers.update({"OData-EntityId": op.service_root + path,
                            "Preference-Applied": "return=minimal"})
            return Result(204, None, headers, entity_path=path, etag=etag)
        body = {"@odata.context": f"{op.service_root}$metadata#{_set_of(edef)}/$entity",
                **self.store.render(edef.name, rec)}
        return Result(status, body, headers, entity_path=path, etag=etag)

    def _deep_create(self, op: Op, edef: EntityDef, body: dict[str, Any]) -> Result:
        """A deep insert (OData 4.0 §11.4.2.2): the header with its children inline, all or
        nothing; the answer holds the children as created (an IFS tenant that refuses it keeps
        `deep_insert` off: the navigation property is then an unknown property, a 400)."""
        inline = _inline(edef, body)
        with self.store.transaction():
            rec = rules.CREATE[edef.name](self.store, {k: v for k, v in body.items()
                                                       if k not in inline})
            made = {nav: [rules.ADD_CHILD[edef.children[nav]](self.store, rec, child)
                          for child in items] for nav, items in inline.items()}
        result = self._written(op, edef, rec, 201)
        if isinstance(result.body, dict):
            result.body.update({nav: [self.store.render(edef.children[nav], child)
                                      for child in children]
                                for nav, children in made.items()})
        return result

    # ------------------------------------------------------------------ collections
    def _collection(self, op: Op, edef: EntityDef, parent: dict | None) -> Result:
        if op.method == "POST":
            body = parse_body(op.body)
            if parent is not None:
                check_if_match(op, parent)
                rec = rules.ADD_CHILD[edef.name](self.store, parent, body)
            elif edef.creatable and _inline(edef, body) and self.settings.deep_insert:
                return self._deep_create(op, edef, body)
            elif edef.creatable:
                rec = rules.CREATE[edef.name](self.store, body)
            else:
                raise not_allowed(f"{edef.set_name} is read only.")
            return self._written(op, edef, rec, 201)
        if op.method != "GET":
            raise not_allowed(f"{op.method} is not allowed on {edef.set_name}.")
        q = op.query
        for option in q:
            if option in _UNSUPPORTED_OPTIONS:
                raise ODataError(501, "ODP_NOT_IMPLEMENTED", f"{option} is not supported.")
        rows = self._filtered(op, edef, parent)
        total = len(rows)
        if "$orderby" in q:
            rows = apply_orderby(rows, parse_orderby(edef, q["$orderby"]))
        skip, top = _int_option(q, "$skip"), _int_option(q, "$top")
        rows = rows[skip or 0:]
        wanted = len(rows) if top is None else min(top, len(rows))
        limit = max(1, min(int(self.settings.page_size), MAX_PAGE))
        page = rows[:min(wanted, limit)]
        body: dict[str, Any] = {"@odata.context": self._context(op, edef)}
        if q.get("$count") == "true":
            body["@odata.count"] = total
        body["value"] = [self._shape(op, edef, r) for r in page]
        if wanted > len(page) and self.settings.next_links:
            nxt = dict(q, **{"$skip": str((skip or 0) + len(page))})
            if top is not None:
                nxt["$top"] = str(top - len(page))
            body["@odata.nextLink"] = str(URL(op.service_root + op.path).with_query(nxt))
        return Result(200, body)

    def _filtered(self, op: Op, edef: EntityDef, parent: dict | None) -> list[dict]:
        if parent is None:
            rows = self.store.all(edef.name)
        else:
            rows = self.store.children(edef.name, self.store.key_of(ENTITIES[edef.parent or ""],
                                                                     parent))
        text = op.query.get("$filter")
        if text:
            pred = compile_filter(edef, text)
            rows = [r for r in rows if pred(r)]
        return rows

    def _shape(self, op: Op, edef: EntityDef, rec: dict[str, Any]) -> dict[str, Any]:
        """The rendered entity narrowed by $select and widened by $expand."""
        full = self.store.render(edef.name, rec)
        q = op.query
        out = full
        if q.get("$select"):
            out = {"@odata.etag": full["@odata.etag"]}
            out.update((p, full.get(p)) for p in parse_select(edef, q["$select"]))
        for nav in parse_expand(edef, q["$expand"]) if q.get("$expand") else ():
            target = self._to_one(edef, nav, rec)
            out[nav] = None if target is None else self.store.render(
                edef.to_one[nav].target, target)
        return out

    @staticmethod
    def _context(op: Op, edef: EntityDef) -> str:
        return f"{op.service_root}$metadata#{op.path.strip('/')}"


def _inline(edef: EntityDef, body: Any) -> dict[str, list[Any]]:
    """The children a create carries inline, by navigation name (none unless a list)."""
    if not isinstance(body, dict):
        return {}
    inline = {nav: body[nav] for nav in edef.children if nav in body}
    for nav, items in inline.items():
        if not isinstance(items, list):
            raise bad_request(f"The navigation property '{nav}' must be a collection of "
                              f"{ENTITIES[edef.children[nav]].type_name}.",
                              "ODP_DESERIALIZATION_ERROR")
    return inline


def _set_of(edef: EntityDef) -> str:
    return edef.set_name if edef.parent is None else \
        f"{ENTITIES[edef.parent].set_name}/{edef.set_name}"


def _int_option(q: dict[str, str], name: str) -> int | None:
    if name not in q:
        return None
    value = q[name]
    if not value.isdigit():
        raise bad_request(f"{name} must be a non-negative integer, got {value!r}.",
                          "ODP_INVALID_QUERY")
    return int(value)
