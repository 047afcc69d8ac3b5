"""Keeping the audit chain honest between verifications: noticing that its tables were dropped
or emptied (instead of quietly chaining again from whatever the events now say), and
remembering the last `audit verify` verdict so every command can warn while it failed."""
from __future__ import annotations

from typing import Any, NamedTuple

from projections.audit import HEAD, now_iso, read_head, table_exists
from projections.base import POSITIONS
from projections.store import ViewStore

VERDICT = "mlc_audit_verdict"
CHAIN = "audit_chain"


class ChainState(NamedTuple):
    head: int | None                   # the head's position; None: no head row (or table)
    tracked: int                       # the projector's recorded position for the chain


def chain_state(store: ViewStore) -> ChainState:
    with store.transaction() as cur:
        head = read_head(cur) if table_exists(store, cur, HEAD) else None
        row = (cur.execute(f"SELECT position FROM {POSITIONS} WHERE name = ?", (CHAIN,))
               .fetchone() if table_exists(store, cur, POSITIONS) else None)
    return ChainState(head.position if head is not None else None, int(row[0]) if row else 0)


def lost_chain(state: ChainState, started: int | None) -> str:
    """Why the chain's tables cannot be trusted to continue ("" when they can). `started`: the
    position the ledger records the chain covering (ledger/audit_trail.py), if any."""
    if state.head is None and (started is not None or state.tracked > 0):
        covered = max(started or 0, state.tracked)
        return (f"the audit chain's tables were dropped or emptied (it had covered the ledger"
                f" up to position {covered}); it is not rebuilt silently: run `ml-connector"
                " audit verify --digest KEPT_DIGEST`, then `ml-connector projections rebuild"
                " --include-audit-chain --force --reason ...`")
    if state.head is not None and started is not None and state.head < started:
        return (f"the audit chain's tables were replaced: they end at position {state.head}"
                f" but the ledger records the chain covering position {started}; run"
                " `ml-connector audit verify`")
    return ""


# ---------------------------------------------------------------------- the last verdict

def save_verdict(store: ViewStore, result: Any) -> None:
    with store.transaction() as cur:
        cur.execute(f"CREATE TABLE IF NOT EXISTS {VERDICT} (id INTEGER PRIMARY KEY,"
                    " ok INTEGER NOT NULL, checked_at TEXT NOT NULL, first_break BIGINT,"
                    " reason TEXT NOT NULL)")
        cur.execute(f"INSERT INTO {VERDICT} (id, ok, checked_at, first_break, reason)"
                    " VALUES (1, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET ok = excluded.ok,"
                    " checked_at = excluded.checked_at, first_break = excluded.first_break,"
                    " reason = excluded.reason",
                    (1 if result.ok else 0, now_iso(), result.first_break, result.reason))


def last_failure(store: ViewStore) -> str:
    """One line about the last `audit verify` if it failed, else ""."""
    with store.transaction() as cur:
        if not table_exists(store, cur, VERDICT):
            return ""
        row = cur.execute(f"SELECT ok, checked_at, first_break, reason FROM {VERDICT}"
                          " WHERE id = 1").fetchone()
    if row is None or row[0]:
        return ""
    reason = row[3] if len(row[3]) <= 200 else row[3][:197] + "..."
    return (f"the last `ml-connector audit verify` ({row[1]}) found the ledger does NOT hold:"
            f" first break at position {row[2]}: {reason}")
