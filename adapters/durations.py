"""Durations as the configuration writes them ("30s", "15m", "2h", "500ms"), read by the settings
and the schedule alike (a module of its own so that neither imports the other for it)."""
from __future__ import annotations

import functools
import re

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}


@functools.lru_cache(maxsize=512)
def parse_duration(text: str) -> float:
    """'30s', '15m', '2h', '500ms' -> seconds. Every duration of the config is decoded (and
    checked against RANGES) when it loads; the uses after that are cache hits."""
    match = _DURATION.match(str(text))
    if not match:
        raise ValueError(f"expected a duration like 30s, 15m or 2h, got {text!r}")
    return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
