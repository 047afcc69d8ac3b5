"""Compare the effective endpoint map with a projection's `$metadata` (CSDL XML). Pure.

Real tenants differ by release: an entity set renamed, a key added, a field missing. `check`
names each difference so a person fixes `[ifs.endpoints]` before the first posting fails.
"""
from __future__ import annotations

from typing import Any

from defusedxml import ElementTree as SafeET

from adapters.ifs.endpoints import ACTIONS, Endpoint

Item = tuple[str, bool, str]


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


class Model:
    """Entity sets, entity types (keys, properties, navigations) and actions of one schema."""

    def __init__(self, xml: bytes | str) -> None:
        root = SafeET.fromstring(xml)
        self.sets: dict[str, str] = {}                 # entity set -> type name (unqualified)
        self.types: dict[str, dict[str, Any]] = {}
        self.actions: set[str] = set()                 # qualified: Namespace.Name
        # Capabilities.BatchSupport properties the service declares (e.g.
        # EtagReferencesSupported: whether If-Match may name `$n`), where it declares them.
        self.batch_support: dict[str, bool] = {}
        for term in (e for e in root.iter() if _local(e.tag) == "Annotation"
                     and e.get("Term", "").endswith("Capabilities.BatchSupport")):
            for value in (e for e in term.iter() if _local(e.tag) == "PropertyValue"):
                if value.get("Bool") in ("true", "false"):
                    self.batch_support[value.get("Property", "")] = value.get("Bool") == "true"
        for schema in (e for e in root.iter() if _local(e.tag) == "Schema"):
            namespace = schema.get("Namespace", "")
            for el in schema:
                kind = _local(el.tag)
                if kind == "EntityType":
                    keys = [p.get("Name") for k in el if _local(k.tag) == "Key"
                            for p in k if _local(p.tag) == "PropertyRef"]
                    props = {p.get("Name") for p in el if _local(p.tag) == "Property"}
                    navs = {p.get("Name"): _unwrap(p.get("Type", ""))
                            for p in el if _local(p.tag) == "NavigationProperty"}
                    self.types[el.get("Name", "")] = {"keys": keys, "props": props, "navs": navs}
                elif kind == "Action":
                    self.actions.add(f"{namespace}.{el.get('Name')}")
                elif kind == "EntityContainer":
                    for es in el:
                        if _local(es.tag) == "EntitySet":
                            self.sets[es.get("Name", "")] = _unwrap(es.get("EntityType", ""))


def _unwrap(type_name: str) -> str:
    """`Collection(IfsApp.X.Type)` / `IfsApp.X.Type` -> `Type`."""
    if type_name.startswith("Collection(") and type_name.endswith(")"):
        type_name = type_name[len("Collection("):-1]
    return type_name.rsplit(".", 1)[-1]


def compare(model: Model, endpoints: dict[str, Endpoint], projection: str) -> list[Item]:
    """One item per role of this projection: entity set (or navigation), keys, fields, action."""
    items: list[Item] = []
    for role, ep in endpoints.items():
        if ep.projection != projection:
            continue
        label = f"$metadata {role}: {ep.projection}/{ep.entity_set}"
        type_name = _type_of(model, endpoints, ep)
        if type_name is None:
            where = f"navigation {ep.entity_set} of {endpoints[ep.parent].entity_set}" \
                if ep.parent else f"entity set {ep.entity_set}"
            items.append((label, False, f"{where} not found in {projection}; known entity "
                          f"sets: {', '.join(sorted(model.sets)) or 'none'}; fix "
                          f"`[ifs.endpoints.{role}]`"))
            continue
        entity = model.types.get(type_name)
        if entity is None:
            items.append((label, False, f"type {type_name} is not declared in {projection}"))
            continue
        problems = []
        if list(ep.keys) != entity["keys"]:
            problems.append(f"keys are {', '.join(entity['keys'])}, the map says "
                            f"{', '.join(ep.keys)}")
        missing = [f for f in (*ep.keys, *ep.fields) if f not in entity["props"]]
        if missing:
            problems.append(f"fields missing: {', '.join(missing)}")
        action = ACTIONS.get(role)
        if action and action.format(projection=projection) not in model.actions:
            problems.append(f"bound action {action.format(projection=projection)} not found")
        items.append((label, not problems, "; ".join(problems) or
                      f"type {type_name}, keys {', '.join(entity['keys'])}"))
    return items


def _type_of(model: Model, endpoints: dict[str, Endpoint], ep: Endpoint) -> str | None:
    if not ep.parent:
        return model.sets.get(ep.entity_set)
    parent = endpoints[ep.parent]
    parent_type = _type_of(model, endpoints, parent) if parent.projection == ep.projection \
        else None
    if parent_type is None or parent_type not in model.types:
        return None
    return model.types[parent_type]["navs"].get(ep.entity_set)
