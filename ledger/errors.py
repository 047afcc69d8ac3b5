"""The ledger's errors: what a caller of the ledger catches, apart from where it is stored."""
from __future__ import annotations


class LedgerError(Exception):
    """A request the ledger cannot carry out; the message says why and what to do."""


class ConcurrentChange(LedgerError):
    """Another process recorded an event on the same stream first (the optimistic lock)."""
