"""Bulk work with the cyclic garbage collector paused.

Ingest and projection rebuilds allocate millions of small acyclic objects (decoded JSON,
event payloads, view rows); reference counting frees every one of them. The cyclic collector
still walks the growing heap each few hundred allocations, which measured 15-25% of a
rebuild's time (bench/rebuild.py). That work makes no reference cycles (gc.collect() found
none after a 100k-invoice ingest, nor after rebuilding every projection from 300k events), so
pausing the collector for one bulk operation frees nothing later; it is back on afterwards.
"""
from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def gc_paused() -> Iterator[None]:
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
