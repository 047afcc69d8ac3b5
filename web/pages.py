"""The workspace's pages: overview, exceptions, invoice (with its actions), files, login."""
from __future__ import annotations

import asyncio
import math
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import urlencode
from uuid import UUID

import aiohttp_jinja2
from aiohttp import web

from adapters.cycle_record import next_run, read_cycle
from adapters.schedule import Schedule
from adapters.settings import parse_duration
from ledger.errors import LedgerError
from projections import workspace as views
from web import actions
from web.guidance import kind_of, next_step, problem_excerpt
from web.invoice_view import invoice_context
from web.keys import RT, SESSIONS

KINDS = ("data", "reference", "transient", "rejected", "conflict", "approval")
AGES = {"": "any age", "1d": "older than 1 day", "3d": "older than 3 days",
        "7d": "older than a week", "30d": "older than 30 days"}


def add_routes(app: web.Application) -> None:
    app.router.add_get("/", overview)
    app.router.add_get("/exceptions", exceptions)
    app.router.add_get("/invoice/{id}", invoice)
    app.router.add_post("/invoice/{id}/{action}", invoice_action)
    app.router.add_get("/files", files)
    app.router.add_get("/files/{id}", file_page)
    app.router.add_get("/login", login_form)
    app.router.add_post("/login", login)
    app.router.add_post("/logout", logout)


def _render(request: web.Request, template: str, context: dict[str, Any],
            status: int = 200) -> web.Response:
    context = {"session": request.get("session"), "request": request, **context}
    return aiohttp_jinja2.render_template(template, request, context, status=status)


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _approval_before(rt: Any) -> str:
    return (_now() - timedelta(seconds=parse_duration(rt.settings.web.approval_age))).isoformat()


def _views(rt: Any):
    rt.projector.catch_up()
    return rt.projector.store.transaction()


# ---------------------------------------------------------------------------- overview

async def overview(request: web.Request) -> web.Response:
    rt = request.app[RT]
    now = _now()
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    week = today - timedelta(days=today.weekday())
    with _views(rt) as cur:
        data = views.overview(cur, today.isoformat(), week.isoformat(), _approval_before(rt))
        runs = views.poll_runs(cur, 1)
    cycle = read_cycle(rt.settings.data_dir)
    schedule = Schedule(rt.settings.connector.schedule, rt.settings.connector.timezone)
    planned = next_run(cycle, schedule.next_after, now)
    oldest = data["oldest"]
    return _render(request, "overview.html", {
        **data, "cycle": cycle, "next_run": planned.isoformat() if planned else "",
        "schedule": rt.settings.connector.schedule, "last_poll": runs[0] if runs else None,
        "oldest_step": next_step(oldest) if oldest else ""})


# ---------------------------------------------------------------------------- exceptions

def _filter(request: web.Request, page_size: int) -> views.ExceptionFilter:
    q = request.query
    try:
        page = max(1, int(q.get("page", "1")))
    except ValueError:
        page = 1
    age = q.get("age", "")
    older = (_now() - timedelta(seconds=parse_duration(age))).isoformat() \
        if age in AGES and age else ""
    return views.ExceptionFilter(kind=q.get("kind", "")[:40], company=q.get("company", "")[:40],
                                 vendor=q.get("vendor", "")[:80], older_than=older,
                                 search=q.get("q", "").strip()[:100], page=page,
                                 page_size=page_size)


async def exceptions(request: web.Request) -> web.Response:
    rt = request.app[RT]
    f = _filter(request, rt.settings.web.page_size)
    before = _approval_before(rt)
    with _views(rt) as cur:
        rows, total = views.exceptions(cur, f, before)
    for row in rows:
        row["kind"], row["next_step"] = kind_of(row), next_step(row)
        problem = problem_excerpt(row)
        row["problem"] = "" if problem and problem in row["next_step"] else problem
    pages = max(1, math.ceil(total / f.page_size))
    kept = {k: v for k, v in request.query.items() if k != "page" and v}

    def page_link(n: int) -> str:
        return "/exceptions?" + urlencode({**kept, "page": n})

    return _render(request, "exceptions.html", {
        "rows": rows, "total": total, "f": f, "query": request.query,
        "kinds": KINDS, "companies": _companies(rt),
        "ages": AGES, "page": f.page, "pages": pages, "page_link": page_link,
        "approval_age": rt.settings.web.approval_age})


def _companies(rt: Any) -> list[str]:
    """The IFS companies the config maps to (no scan of the view for a filter list)."""
    st = rt.settings.stampli
    mapped = st.companies.values() if st is not None else ()
    return sorted({rt.settings.connector.company, *mapped})


# ---------------------------------------------------------------------------- invoice

def _invoice_id(request: web.Request) -> str:
    try:
        return str(UUID(request.match_info["id"]))
    except ValueError:
        raise web.HTTPNotFound() from None


async def invoice(request: web.Request, *, status: int = 200, error: str = "",
                  form: dict[str, str] | None = None) -> web.Response:
    rt = request.app[RT]
    invoice_id = _invoice_id(request)
    context = invoice_context(rt, invoice_id)
    if context is None:
        raise web.HTTPNotFound()
    role = request["session"]["role"]
    context["actions"] = actions.allowed_actions(context["row"]["state"]) \
        if actions.may_act(role) else []
    done = request.query.get("done", "")
    context.update(error=error, form=form or {}, reason_max=actions.REASON_MAX,
                   done=done if done in actions.ACTIONS else "")
    return _render(request, "invoice.html", context, status=status)


async def invoice_action(request: web.Request) -> web.StreamResponse:
    rt = request.app[RT]
    session = request["session"]
    invoice_id = _invoice_id(request)
    action = request.match_info["action"]
    role = actions.current_role(rt, session["user"])
    if not actions.may_act(role):
        raise web.HTTPForbidden(text=f"{session['user']} may look but not act (role"
                                f" {role or 'none'}); ask an admin for the operator role.")
    form = await request.post()
    fields = {k: str(form.get(k, "")) for k in ("reason", "ifs_invoice_id", "force")}
    if action not in actions.ACTIONS:
        raise web.HTTPNotFound()
    try:
        await actions.act(rt, action, invoice_id, session["user"], fields["reason"],
                          fields["ifs_invoice_id"], force=fields["force"] == "yes")
    except actions.ActionError as exc:
        return await invoice(request, status=409, error=f"{action.capitalize()} was not"
                             f" recorded: {exc}", form={**fields, "action": action})
    except LedgerError:
        raise web.HTTPNotFound() from None
    raise web.HTTPSeeOther(f"/invoice/{invoice_id}?done={action}")


# ---------------------------------------------------------------------------- files

async def files(request: web.Request) -> web.Response:
    rt = request.app[RT]
    with _views(rt) as cur:
        export_files = views.export_files(cur, 200)
        runs = views.poll_runs(cur, 20, eventful=True)
        last = views.poll_runs(cur, 1)
    return _render(request, "files.html", {"files": export_files, "runs": runs,
                                           "last_poll": last[0] if last else None})


async def file_page(request: web.Request) -> web.Response:
    rt = request.app[RT]
    with _views(rt) as cur:
        found = views.export_file(cur, request.match_info["id"])
        invoices = views.invoices_of_file(cur, found["name"]) if found else []
    if found is None:
        raise web.HTTPNotFound()
    for row in invoices:
        row["next_step"] = next_step(row)
    return _render(request, "file.html", {"file": found, "invoices": invoices})


# ---------------------------------------------------------------------------- login

def _safe_next(value: str) -> str:
    # Only a path on this site: never a redirect elsewhere.
    return value if value.startswith("/") and not value.startswith("//") else "/"


async def login_form(request: web.Request, *, status: int = 200,
                     error: str = "") -> web.Response:
    sessions = request.app[SESSIONS]
    token, signed = sessions.new_login_token(request)
    response = _render(request, "login.html", {
        "error": error, "next": _safe_next(request.query.get("next", "/")), "csrf": token},
        status=status)
    sessions.set_login_cookie(response, request, signed)
    return response


def _see_other(location: str) -> web.Response:
    return web.Response(status=303, headers={"Location": location})


async def login(request: web.Request) -> web.StreamResponse:
    sessions = request.app[SESSIONS]
    form = await request.post()
    if not sessions.login_token_ok(request, str(form.get("csrf", ""))):
        raise web.HTTPForbidden(text="The login form was too old or did not come from this"
                                " workspace: open the login page again.")
    name, password = str(form.get("username", "")).strip(), str(form.get("password", ""))
    # scrypt takes a third of a second: off the loop, so pages and cycles go on meanwhile
    result = await asyncio.to_thread(actions.authenticate, request.app[RT], name, password)
    if not result.ok:
        return await login_form(request, status=401, error=result.message)
    response = _see_other(_safe_next(str(form.get("next", "/"))))
    sessions.start(response, request, name, result.role)
    return response


async def logout(request: web.Request) -> web.StreamResponse:
    response = _see_other("/login")
    request.app[SESSIONS].end(response)
    return response
