"""The audit chain's digest: its head, brought up to date by the projector first."""
from __future__ import annotations

from typing import Any

from projections.audit import CHAIN_ID, AuditChainProjection, load_head, now_iso, recompute
from projections.runner import Projector
from projections.store import ViewStore, open_view_store


def current_digest(ledger: Any, store: ViewStore | None = None, *,
                   catch_up: bool = True) -> dict[str, Any]:
    """The chain's head as a small document to keep outside the system. With catch_up the
    audit projection is brought up to date first (created if need be); without it, or if it
    cannot be read, the chain is recomputed from the events."""
    own = store is None
    store = store or open_view_store(ledger.url)
    try:
        head = None
        if catch_up:
            Projector(ledger, store, [AuditChainProjection()]).catch_up()
        head = load_head(store)
        if head is not None:
            position, link_hex, count = head.position, head.link_hex, head.events
        else:
            position, link, count = recompute(ledger)
            link_hex = link.hex()
    finally:
        if own:
            store.close()
    return {"chain": CHAIN_ID, "position": position, "hash": link_hex, "events": count,
            "time": now_iso()}
