"""CSDL XML `$metadata` per projection, generated from the same schema the store uses."""
from __future__ import annotations

import functools
import xml.etree.ElementTree as ET

from .schema import DECIMAL, ENTITIES, ENUMS, EntityDef

EDMX = "http://docs.oasis-open.org/odata/ns/edmx"
EDM = "http://docs.oasis-open.org/odata/ns/edm"


def _entity_type(schema: ET.Element, namespace: str, edef: EntityDef) -> None:
    et = ET.SubElement(schema, "EntityType", Name=edef.type_name)
    key = ET.SubElement(et, "Key")
    for k in edef.keys:
        ET.SubElement(key, "PropertyRef", Name=k)
    ET.SubElement(et, "Property", Name="luname", Type="Edm.String")
    ET.SubElement(et, "Property", Name="keyref", Type="Edm.String")
    if edef.state:
        ET.SubElement(et, "Property", Name="Objstate", Type=edef.state.qualified,
                      Nullable="false")
    for name, edm in edef.props.items():
        attrs = {"Name": name, "Type": edm}
        if name in edef.keys:
            attrs["Nullable"] = "false"
        if edm == DECIMAL:
            attrs["Scale"] = "variable"
        ET.SubElement(et, "Property", **attrs)
    for nav, child in edef.children.items():
        ET.SubElement(et, "NavigationProperty", Name=nav, ContainsTarget="true",
                      Type=f"Collection({namespace}.{ENTITIES[child].type_name})")
    for nav, link in edef.to_one.items():
        ET.SubElement(et, "NavigationProperty", Name=nav,
                      Type=f"{namespace}.{ENTITIES[link.target].type_name}")


@functools.lru_cache(maxsize=None)
def render(projection: str) -> str:
    namespace = f"IfsApp.{projection}"
    ET.register_namespace("edmx", EDMX)
    root = ET.Element(f"{{{EDMX}}}Edmx", Version="4.0")
    services = ET.SubElement(root, f"{{{EDMX}}}DataServices")
    schema = ET.SubElement(services, "Schema", Namespace=namespace, xmlns=EDM)
    for enum in ENUMS.values():
        if enum.projection == projection:
            et = ET.SubElement(schema, "EnumType", Name=enum.name)
            for i, member in enumerate(enum.members):
                ET.SubElement(et, "Member", Name=member, Value=str(i))
    own = [d for d in ENTITIES.values() if d.projection == projection]
    # Types reached by to-one navigations are declared here too, as IFS projections do.
    referenced = {ENTITIES[link.target].name for d in own for link in d.to_one.values()}
    declared = {d.name for d in own}
    for edef in own + [ENTITIES[n] for n in sorted(referenced - declared)]:
        _entity_type(schema, namespace, edef)
    for edef in own:
        for action in edef.actions:
            el = ET.SubElement(schema, "Action", Name=action, IsBound="true")
            ET.SubElement(el, "Parameter", Name="it", Type=f"{namespace}.{edef.type_name}",
                          Nullable="false")
            ET.SubElement(el, "ReturnType", Type=f"{namespace}.{edef.type_name}")
    container = ET.SubElement(schema, "EntityContainer", Name="Main")
    for edef in own:
        if edef.parent is None:
            es = ET.SubElement(container, "EntitySet", Name=edef.set_name,
                               EntityType=f"{namespace}.{edef.type_name}")
            for nav, link in edef.to_one.items():
                target = ENTITIES[link.target]
                if target.projection == projection:
                    ET.SubElement(es, "NavigationPropertyBinding", Path=nav,
                                  Target=target.set_name)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode")
