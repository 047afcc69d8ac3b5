"""The workspace's aiohttp application: routes, templates, and the middlewares every request
passes (login required except /healthz, /metrics and /login; a CSRF token on every POST;
error pages instead of tracebacks)."""
from __future__ import annotations

import logging
from importlib import resources
from typing import Any

import aiohttp_jinja2
import jinja2
from aiohttp import web

from adapters.settings import parse_duration
from web import pages
from web.keys import COUNTERS, RT, SESSIONS
from web.guidance import KIND_LABELS, STATE_LABELS, short_time, short_time_s
from web.health import ProcessCounters, healthz, metrics
from web.session import Sessions, session_key

log = logging.getLogger("ml_connector.web")
PUBLIC = ("/login", "/healthz", "/metrics", "/static/", "/favicon.ico")


def build_app(rt: Any, schedule: Any = None) -> web.Application:
    app = web.Application(middlewares=[errors, authenticated], client_max_size=64 * 1024)
    app[RT] = rt
    app[SESSIONS] = Sessions(session_key(rt.secrets),
                               parse_duration(rt.settings.web.session_lifetime))
    app[COUNTERS] = counters = ProcessCounters()
    rt.cycle_observers.append(counters.observe)
    env = aiohttp_jinja2.setup(app, loader=jinja2.PackageLoader("web", "templates"),
                               autoescape=jinja2.select_autoescape(default=True))
    env.filters["when"] = short_time
    env.filters["when_s"] = short_time_s
    env.filters["sentence"] = lambda text: str(text)[:1].upper() + str(text)[1:]
    env.globals.update(KIND_LABELS=KIND_LABELS, STATE_LABELS=STATE_LABELS)
    static = resources.files("web").joinpath("static")
    app.router.add_static("/static/", str(static), append_version=True)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/favicon.ico", no_icon)
    pages.add_routes(app)
    app.on_response_prepare.append(_safety_headers)
    return app


async def _safety_headers(request: web.Request, response: web.StreamResponse) -> None:
    """No framing, no scripts or styles from elsewhere, no caching of pages with data."""
    response.headers.setdefault("Content-Security-Policy", "default-src 'self';"
                                " frame-ancestors 'none'; form-action 'self'; base-uri 'none'")
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    if not request.path.startswith("/static/"):
        response.headers.setdefault("Cache-Control", "no-store")


async def no_icon(request: web.Request) -> web.Response:
    return web.Response(status=204)


async def start_server(rt: Any, schedule: Any = None) -> web.AppRunner:
    app = build_app(rt, schedule)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    web_settings = rt.settings.web
    site = web.TCPSite(runner, web_settings.host, web_settings.port)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        raise OSError(exc.errno, f"cannot listen on {web_settings.host}:{web_settings.port}"
                      f" ({exc.strerror}); set another [web] port or stop what uses it") \
            from None
    log.info("workspace on http://%s:%s/", web_settings.host, web_settings.port)
    return runner


def _page(request: web.Request, status: int, title: str, message: str) -> web.Response:
    try:
        return aiohttp_jinja2.render_template(
            "message.html", request, {"title": title, "message": message, "request": request,
                                      "session": request.get("session")}, status=status)
    except Exception:               # the page about a failure must not fail itself
        log.exception("error page for %s failed", request.path)
        return web.Response(status=status, text=f"{title}: {message}\n")


@web.middleware
async def errors(request: web.Request, handler: Any) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPNotFound:
        return _page(request, 404, "Not found", f"There is nothing at {request.path}. Use the"
                     " menu above, or search the exceptions list.")
    except web.HTTPForbidden as exc:
        return _page(request, 403, "Not allowed", exc.text or "You may not do this.")
    except web.HTTPMethodNotAllowed:
        return _page(request, 405, "Not allowed", "This address does not take that request.")
    except web.HTTPException:
        raise
    except Exception as exc:        # one line for the person, the traceback in the log
        log.exception("page %s failed", request.path)
        return _page(request, 500, "Something went wrong",
                     f"{type(exc).__name__}: {exc}. Nothing was changed by this page. The"
                     " service log has the details.")


@web.middleware
async def authenticated(request: web.Request, handler: Any) -> web.StreamResponse:
    if request.path.startswith(PUBLIC):
        return await handler(request)
    session = request.app[SESSIONS].read(request)
    if session is None:
        if request.method == "GET":
            raise web.HTTPFound(f"/login?next={request.path_qs}"
                                if request.path != "/" else "/login")
        raise web.HTTPForbidden(text="Your session has ended: log in again.")
    request["session"] = session
    if request.method == "POST":
        form = await request.post()
        if not Sessions.csrf_ok(session, str(form.get("csrf", ""))):
            raise web.HTTPForbidden(text="This form did not come from this workspace page (or"
                                    " it is too old). Reload the page and try again; nothing"
                                    " was changed.")
    return await handler(request)
