"""The ledger's evidence, wired by the composition root (runtime.py): the audit key from the
secrets store handed to the ledger so every event is MACed (ledger/signing.py), what `audit
verify` needs to check them, and the audit chain's guard (projections/audit_guard.py).

Nothing here prints a key: only key ids reach the ledger, logs and messages."""
from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from adapters.audit_keys import AuditKeyStore
from adapters.secrets import SecretsError, SecretStore
from ledger import audit_trail
from ledger.app import Ledger
from ledger.errors import LedgerError
from ledger.persistence import redact_url
from projections.audit import recompute
from projections.audit_guard import CHAIN, chain_state, last_failure, lost_chain
from projections.audit_macs import MacPolicy
from projections.audit_verify import VerifyResult, verify
from projections.runner import Projector
from projections.store import open_view_store

log = logging.getLogger("ml_connector.audit")


class Evidence:
    def __init__(self, secrets: SecretStore, ledger_url: str) -> None:
        self.keys = AuditKeyStore(secrets)
        self.name = redact_url(ledger_url)           # which ledger a key binding is for
        self.policy: MacPolicy | None = None         # None: the keys could not be read
        self.unavailable = ""
        self.chain_problem = ""
        self._chain_new = False
        self.warn_last_verify = True

    # ------------------------------------------------------------------ the key

    def attach(self, ledger: Ledger) -> None:
        """Give the ledger its audit key (see _attach_key); then one line on stderr if the
        last `audit verify` failed."""
        self._attach_key(ledger)
        if self.warn_last_verify:
            store = open_view_store(ledger.url)
            try:
                failure = last_failure(store)
            finally:
                store.close()
            if failure:
                log.warning(failure)

    def _attach_key(self, ledger: Ledger) -> None:
        """Made now if the install has none (an install from before MACs), bound to this
        ledger on its first use, and on record in the ledger."""
        try:
            ring, made = self.keys.create()
            binding = ring.ledgers.get(self.name)
            if binding is None:
                upto = ledger.recorder.max_notification_id() or 0
                ring = self.keys.bind(self.name, upto, recompute(ledger, upto)[1].hex())
                binding = ring.ledgers[self.name]
        except (SecretsError, OSError) as exc:       # OSError: the lock file's folder
            self.unavailable = f"the audit key cannot be read from the secrets store: {exc}"
            ledger.use_keys(None, refusal=self.unavailable)
            log.warning("%s; nothing can be recorded until it can", self.unavailable)
            return
        keys = ring.event_keys()
        ledger.use_keys(keys)
        self.policy = MacPolicy(keys, binding.unsigned_upto, binding.link)
        trail = audit_trail.load(ledger)
        if trail is not None and ring.current in trail.key_ids:
            return
        if made:
            log.info("created the audit key %s (secret audit.key): events after position %d"
                     " carry a MAC", ring.current, binding.unsigned_upto)
        origin = "first use" if made else "init" if trail is None else "recorded late"
        self._record(lambda: audit_trail.record_key(
            ledger, ring.current, origin=origin, unsigned_upto=binding.unsigned_upto))

    def rotate(self, ledger: Ledger, reason: str) -> tuple[str, str]:
        """A new key for new events; old MACs keep verifying with the old keys. Recorded."""
        if self.policy is None:
            raise LedgerError(self.unavailable)
        try:
            old, new = self.keys.rotate()
            ring = self.keys.load()
        except SecretsError as exc:
            raise LedgerError(str(exc)) from None
        assert ring is not None
        keys = ring.event_keys()
        ledger.use_keys(keys)
        self.policy = MacPolicy(keys, self.policy.unsigned_upto, self.policy.link)
        audit_trail.record_key(ledger, new, previous_key_id=old, origin="rotation",
                               reason=reason)
        return old, new

    # ------------------------------------------------------------------ the chain

    def guard(self, ledger: Ledger, projector: Projector) -> None:
        """At a projector's start: a chain whose tables were lost is left out and reported,
        not recomputed; a chain not yet on record in the ledger is recorded."""
        trail = audit_trail.load(ledger)
        started = trail.chain_started if trail is not None else None
        state = chain_state(projector.store)
        self.chain_problem = lost_chain(state, started)
        if self.chain_problem:
            projector.projections = [p for p in projector.projections if p.name != CHAIN]
            log.warning(self.chain_problem)
            return
        if state.head is not None and started is None:
            self._record(lambda: audit_trail.record_chain_started(ledger, state.head))
        self._chain_new = state.head is None

    def close(self, ledger: Ledger, projector: Projector) -> None:
        """A chain that began in this process goes on record."""
        if self._chain_new and self.policy is not None:
            head = chain_state(projector.store).head
            if head is not None:
                self._record(lambda: audit_trail.record_chain_started(ledger, head))

    def verify(self, ledger: Ledger, projector: Projector, digest: dict[str, Any] | None,
               progress: Callable[[int, int], None] | None = None) -> VerifyResult:
        if self.policy is None:
            raise LedgerError(f"cannot check the events' MACs: {self.unavailable}")
        return verify(ledger, digest, progress=progress, store=projector.store,
                      macs=self.policy)

    def rebuild_chain_allowed(self, ledger: Ledger, projector: Projector, *, force: bool,
                              reason: str) -> str:
        """Before re-deriving the chain: refuse while verify fails, unless forced; either
        way, the rebuild goes on record with who and why. Returns verify's failure ("")."""
        result = self.verify(ledger, projector, None)
        failure = "" if result.ok else (f"first break at position {result.first_break}:"
                                        f" {result.reason}")
        if failure and not force:
            raise LedgerError(f"refused to rebuild the audit chain: `audit verify` fails"
                              f" ({failure}). Rebuilding would adopt the events as they are"
                              " now; check them against a kept digest (`ml-connector audit"
                              " verify --digest FILE`), then give --force --reason TEXT to"
                              " rebuild anyway (recorded in the ledger)")
        audit_trail.record_chain_rebuilt(ledger, forced=force, reason=reason,
                                         verify_failure=failure)
        self.chain_problem = ""
        return failure

    @staticmethod
    def _record(write: Callable[[], None]) -> None:
        try:
            write()
        except LedgerError as exc:           # on record next time; never stops a command
            log.warning("could not record in the audit trail: %s", exc)
