"""The one place where the workspace calls the ledger's operator actions and user store:
retry, resolve by hand, dismiss, reopen (ledger/actions.py through the Runtime) and
authenticate (ledger/users.py, through the Runtime). Pages speak only to this module."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ledger.errors import ConnectorError
from ledger.invoice import REASON_MAX     # the ledger's limit: longer is refused, not cut
from ledger.status import allowed_actions as _allowed

ACTIONS = ("retry", "resolve", "dismiss", "reopen")


class ActionError(Exception):
    """An action that was not recorded; the message says why, for the page."""


@dataclass
class Login:
    ok: bool
    role: str = ""
    message: str = ""


def allowed_actions(state: str) -> list[str]:
    return [a for a in _allowed(state) if a in ACTIONS]


def check_reason(reason: str) -> str:
    reason = reason.strip()
    if not reason:
        raise ActionError("give a reason: it is recorded with your name in the ledger")
    if len(reason) > REASON_MAX:
        raise ActionError(f"the reason is {len(reason)} characters long; keep it under"
                          f" {REASON_MAX} (nothing was recorded)")
    return reason


async def act(rt: Any, action: str, invoice_id: str, operator: str, reason: str,
              ifs_invoice_id: str = "", force: bool = False) -> dict[str, Any]:
    """Record one operator action; ActionError (nothing recorded) when it is refused."""
    from ledger.actions import parse_ifs_invoice_id

    reason = check_reason(reason)
    try:
        if action == "retry":
            return rt.retry(invoice_id, operator, reason)
        if action == "resolve":
            parse_ifs_invoice_id(ifs_invoice_id)
            return await rt.resolve_manually_async(invoice_id, ifs_invoice_id, operator,
                                                   reason, force=force)
        if action == "dismiss":
            return rt.dismiss(invoice_id, operator, reason)
        if action == "reopen":
            return rt.reopen(invoice_id, operator, reason)
    except ConnectorError as exc:          # ActionRefused, an unknown ref, no [ifs] section
        raise ActionError(f"{exc}") from None
    raise ActionError(f"unknown action {action!r}; one of {', '.join(ACTIONS)}")


def authenticate(rt: Any, name: str, password: str) -> Login:
    """Checks the password against the users in the ledger (wrong ones are recorded; five in
    a row lock the user for a while)."""
    from ledger.users import AuthenticationFailed

    try:
        user = rt.users().authenticate(name, password)
    except AuthenticationFailed as exc:        # LockedOut included: it says until when
        return Login(False, message=str(exc))
    return Login(True, role=user.role)


def current_role(rt: Any, name: str) -> str | None:
    """The user's role now (None: unknown or disabled): a session outlives a role change
    or a disable only until its next action."""
    user = rt.users().get_user(name)
    if user is None or user.disabled:
        return None
    return user.role


def may_act(role: str | None) -> bool:
    from ledger.users import can_act

    return bool(role) and can_act(role)
