"""Reading one supplier invoice by its InvoiceId: what `resolve` checks a hand-entered
document against. A read, never a write."""
from __future__ import annotations

from typing import Any

from adapters.ifs.endpoints import Endpoint, key_predicate
from adapters.ifs.odata import ODataClient
from ledger.ports import ErpDocument


async def read_invoice(odata: ODataClient, ep: Endpoint, company: str,
                       ifs_invoice_id: int) -> ErpDocument | None:
    path = ep.entity_set + key_predicate({"Company": company, "InvoiceId": int(ifs_invoice_id)})
    entity, _ = await odata.get_entity(
        ep.projection, path,
        what=f"reading supplier invoice {ifs_invoice_id} of company {company}")
    if entity is None:
        return None
    return as_document(entity)


def as_document(entity: dict[str, Any]) -> ErpDocument:
    def text(name: str) -> str:
        value = entity.get(name)
        return "" if value is None else str(value)

    return ErpDocument(ifs_invoice_id=text("InvoiceId"), company=text("Company"),
                       supplier_id=text("Identity"), invoice_number=text("InvoiceNo"),
                       invoice_type=text("InvoiceType"), currency=text("Currency"),
                       net=text("NetCurrAmount"), tax=text("VatCurrAmount"),
                       gross=text("GrossCurrAmount"), state=text("Objstate"),
                       external_ref=text("ExternalRef"))
