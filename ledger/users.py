"""The people who use the web workspace: one User aggregate per user name, so that creating a
user, changing a role or a password, disabling a user, and wrong passwords and lockouts are
events in the ledger like everything else (an auditor reads user administration in
`audit export`, under the same hash chain). A small UserDirectory stream lists the names.

Passwords are kept only as scrypt hashes (ledger/passwords.py). `Users` is the application
API: add_user, change_password, change_role, disable_user, list_users, authenticate.
"""
from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from eventsourcing.domain import Aggregate

from ledger.aggregate import VersionStamped
from ledger.app import Ledger
from ledger.errors import ConcurrentChange, LedgerError
from ledger.passwords import (SCRYPT_N, WeakPassword, burn_time, check_strength,
                              hash_password, verify_password)

ROLES = ("viewer", "operator", "admin")          # each may do what the ones before it may
USER_NAMESPACE = uuid.UUID("5d1e7c3a-9b2f-5a64-8e0d-3c7f1a2b4e96")
DIRECTORY_ID = uuid.uuid5(USER_NAMESPACE, "directory")
NAME_MAX = 64


def user_stream_id(name: str) -> uuid.UUID:
    return uuid.uuid5(USER_NAMESPACE, "user:" + name.strip().casefold())


def can_act(role: str) -> bool:
    """Operators and admins may retry, resolve, dismiss and reopen; viewers only look."""
    return role in ("operator", "admin")


class UserError(LedgerError):
    """A user administration request that was not carried out (nothing recorded).
    `bad_input`: the name, role, password or operator given was not acceptable."""

    def __init__(self, message: str, *, bad_input: bool = False) -> None:
        super().__init__(message)
        self.bad_input = bad_input


class AuthenticationFailed(LedgerError):
    """Wrong name or password, or a disabled user: one message for all, so that a login form
    does not tell which names exist."""

    def __init__(self, message: str = "wrong user name or password") -> None:
        super().__init__(message)


class LockedOut(AuthenticationFailed):
    def __init__(self, name: str, until: str) -> None:
        super().__init__(f"user {name} is locked after too many wrong passwords until"
                         f" {until}; try again then, or ask an admin to set a new password")
        self.until = until


@dataclass(frozen=True)
class UserInfo:
    name: str
    role: str
    disabled: bool
    locked_until: str | None
    created_at: str

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "role": self.role, "disabled": self.disabled,
                "locked_until": self.locked_until, "created_at": self.created_at}


class User(VersionStamped, Aggregate):
    TOPIC = "ml_connector.User"

    class Event(Aggregate.Event):
        connector_version: str

        def apply(self, aggregate: User) -> None:
            aggregate.on(type(self).__name__, vars(self))

    class Created(Event, Aggregate.Created):
        TOPIC = "ml_connector.user.Created"

    class UserCreated(Created):
        TOPIC = "ml_connector.user.UserCreated"
        name: str
        role: str
        password_hash: str
        by: str
        reason: str

    class RoleChanged(Event):
        TOPIC = "ml_connector.user.RoleChanged"
        role: str
        previous_role: str
        by: str
        reason: str

    class PasswordChanged(Event):
        TOPIC = "ml_connector.user.PasswordChanged"
        password_hash: str
        by: str
        reason: str

    class UserDisabled(Event):
        TOPIC = "ml_connector.user.UserDisabled"
        by: str
        reason: str

    class LoginFailed(Event):
        TOPIC = "ml_connector.user.LoginFailed"
        failures: int                  # wrong passwords in a row, this one included

    class LockedOut(Event):
        TOPIC = "ml_connector.user.LockedOut"
        until: str

    class LoginSucceeded(Event):
        """Recorded only after wrong passwords: it ends their run."""
        TOPIC = "ml_connector.user.LoginSucceeded"

    def __init__(self, name: str, role: str, password_hash: str, by: str, reason: str,
                 connector_version: str) -> None:
        self.name, self.role, self.password_hash = name, role, password_hash
        self.disabled = False
        self.failures = 0
        self.locked_until: str | None = None

    def on(self, event: str, data: dict[str, Any]) -> None:
        if event == "RoleChanged":
            self.role = data["role"]
        elif event == "PasswordChanged":      # a new password also lifts a lockout
            self.password_hash = data["password_hash"]
            self.failures, self.locked_until = 0, None
        elif event == "UserDisabled":
            self.disabled = True
        elif event == "LoginFailed":
            self.failures = data["failures"]
        elif event == "LockedOut":
            self.locked_until, self.failures = data["until"], 0
        elif event == "LoginSucceeded":
            self.failures, self.locked_until = 0, None

    @classmethod
    def create(cls, name: str, role: str, password_hash: str, by: str, reason: str) -> User:
        return cls._create(cls.UserCreated, id=user_stream_id(name), name=name, role=role,
                           password_hash=password_hash, by=by, reason=reason)

    def record(self, event_class: type[Event], **data: Any) -> None:
        self.trigger_event(event_class, **data)

    def info(self, now: str) -> UserInfo:
        locked = self.locked_until if self.locked_until and self.locked_until > now else None
        return UserInfo(self.name, self.role, self.disabled, locked,
                        self.created_on.isoformat())


class UserDirectory(VersionStamped, Aggregate):
    """The user names, in the order they were added: what `users list` reads."""
    TOPIC = "ml_connector.UserDirectory"

    class Event(Aggregate.Event):
        connector_version: str

    class Created(Event, Aggregate.Created):
        TOPIC = "ml_connector.user_directory.Created"

    class Started(Created):
        TOPIC = "ml_connector.user_directory.Started"

    class UserListed(Event):
        TOPIC = "ml_connector.user_directory.UserListed"
        name: str

        def apply(self, aggregate: UserDirectory) -> None:
            aggregate.names.append(self.name)

    def __init__(self, connector_version: str) -> None:
        self.names: list[str] = []

    @classmethod
    def start(cls) -> UserDirectory:
        return cls._create(cls.Started, id=DIRECTORY_ID)

    def list_user(self, name: str) -> None:
        self.trigger_event(self.UserListed, name=name)


@dataclass
class LoginPolicy:
    max_failures: int = 5              # wrong passwords in a row before a lockout
    lockout_seconds: float = 900.0
    scrypt_n: int = SCRYPT_N           # tests lower it; the hash keeps its own


class Users:
    """User administration and login, on the ledger. `by` is who acts (an admin's name, or
    the OS user at the command line); `reason` is optional for administration."""

    def __init__(self, ledger: Ledger, policy: LoginPolicy | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.ledger, self.policy, self.clock = ledger, policy or LoginPolicy(), clock

    def _now(self) -> str:
        return datetime.fromtimestamp(self.clock(), timezone.utc).isoformat(timespec="seconds")

    def _find(self, name: str) -> User | None:
        return self.ledger.find(user_stream_id(name))

    def _get(self, name: str) -> User:
        user = self._find(name)
        if user is None:
            raise UserError(f"no user {name!r}; `ml-connector users list` shows them")
        return user

    # ------------------------------------------------------------------ administration

    def add_user(self, name: str, role: str, password: str, *, by: str,
                 reason: str = "") -> UserInfo:
        name = _check_name(name)
        _check_role(role)
        _check_by(by)
        _strong(password, name)
        if self._find(name) is not None:
            raise UserError(f"user {name!r} exists already; `users passwd` sets a new password")
        user = User.create(name, role, hash_password(password, n=self.policy.scrypt_n),
                           by.strip(), reason.strip())
        directory = self.ledger.find(DIRECTORY_ID) or UserDirectory.start()
        directory.list_user(name)
        try:
            self.ledger.save_all([user, directory])
        except ConcurrentChange:
            raise UserError(f"someone else changed the users at the same moment; add {name!r}"
                            " again") from None
        return user.info(self._now())

    def change_password(self, name: str, password: str, *, by: str,
                        reason: str = "") -> UserInfo:
        user = self._get(name)
        _check_by(by)
        _strong(password, user.name)
        user.record(User.PasswordChanged, password_hash=hash_password(
            password, n=self.policy.scrypt_n), by=by.strip(), reason=reason.strip())
        self.ledger.save_all([user])
        return user.info(self._now())

    def change_role(self, name: str, role: str, *, by: str, reason: str = "") -> UserInfo:
        user = self._get(name)
        _check_role(role)
        _check_by(by)
        if role != user.role:
            user.record(User.RoleChanged, role=role, previous_role=user.role, by=by.strip(),
                        reason=reason.strip())
            self.ledger.save_all([user])
        return user.info(self._now())

    def disable_user(self, name: str, *, by: str, reason: str = "") -> UserInfo:
        user = self._get(name)
        _check_by(by)
        if not user.disabled:
            user.record(User.UserDisabled, by=by.strip(), reason=reason.strip())
            self.ledger.save_all([user])
        return user.info(self._now())

    def list_users(self) -> list[UserInfo]:
        directory = self.ledger.find(DIRECTORY_ID)
        now = self._now()
        return [self._get(name).info(now) for name in (directory.names if directory else [])]

    def get_user(self, name: str) -> UserInfo | None:
        """The user as of now (for a session: still there, still enabled, which role)."""
        user = self._find(name)
        return None if user is None else user.info(self._now())

    # ------------------------------------------------------------------ login

    def authenticate(self, name: str, password: str) -> UserInfo:
        """The user, or AuthenticationFailed (LockedOut while locked). Every wrong password
        is recorded; `max_failures` in a row lock the user for `lockout_seconds`."""
        for _ in range(3):                 # another login of the same user may save first
            try:
                return self._authenticate(name, password)
            except ConcurrentChange:
                continue
        raise AuthenticationFailed("too many logins at once for this user; try again")

    def _authenticate(self, name: str, password: str) -> UserInfo:
        user = self._find(name) if name and len(name) <= NAME_MAX else None
        now = self._now()
        if user is None or user.disabled:
            burn_time(password, n=self.policy.scrypt_n)
            raise AuthenticationFailed()
        if user.locked_until and user.locked_until > now:
            raise LockedOut(user.name, user.locked_until)
        if not verify_password(password, user.password_hash):
            failures = user.failures + 1
            user.record(User.LoginFailed, failures=failures)
            if failures >= self.policy.max_failures:
                until = datetime.fromtimestamp(self.clock() + self.policy.lockout_seconds,
                                               timezone.utc).isoformat(timespec="seconds")
                user.record(User.LockedOut, until=until)
                self.ledger.save_all([user])
                raise LockedOut(user.name, until)
            self.ledger.save_all([user])
            raise AuthenticationFailed()
        if user.failures or user.locked_until:
            user.record(User.LoginSucceeded)
            self.ledger.save_all([user])
        return user.info(now)


def _check_name(name: str) -> str:
    name = (name or "").strip()
    if not name or len(name) > NAME_MAX or not all(c.isalnum() or c in "._-@" for c in name):
        raise UserError(f"user name {name[:NAME_MAX]!r} is not accepted: 1 to {NAME_MAX}"
                        " letters, digits, '.', '_', '-' or '@'", bad_input=True)
    return name


def _check_role(role: str) -> None:
    if role not in ROLES:
        raise UserError(f"role {role!r} is not one of {', '.join(ROLES)}", bad_input=True)


def _check_by(by: str) -> None:
    if not (by or "").strip():
        raise UserError("no operator: say who acts (--by NAME)", bad_input=True)


def _strong(password: str, name: str) -> None:
    try:
        check_strength(password, name)
    except WeakPassword as exc:
        raise UserError(f"{exc}; nothing changed", bad_input=True) from None
