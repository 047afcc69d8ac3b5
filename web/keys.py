"""The application's shared objects, under typed keys."""
from __future__ import annotations

from aiohttp import web

RT = web.AppKey("rt", object)                 # the Runtime: ledger, views, actions
SESSIONS = web.AppKey("sessions", object)     # web.session.Sessions
COUNTERS = web.AppKey("counters", object)     # web.health.ProcessCounters
