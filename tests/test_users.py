"""Users in the ledger: administration and logins are events; passwords only as scrypt
hashes; five wrong passwords lock a user for a while. The same through the installed
`ml-connector users` command."""
from __future__ import annotations

import json

import pytest

from ledger.app import Ledger
from ledger.passwords import hash_password, verify_password
from ledger.users import (AuthenticationFailed, LockedOut, LoginPolicy, UserError, Users,
                          user_stream_id)
from tests.installed_cli import run_cli

SECRET = "correct horse battery"


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def ledger(tmp_path):
    ledger = Ledger(f"sqlite:///{tmp_path}/ledger.db")
    yield ledger
    ledger.close()


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def users(ledger, clock):
    return Users(ledger, LoginPolicy(max_failures=5, lockout_seconds=600, scrypt_n=2**10),
                 clock=clock)


def raw_events(ledger) -> bytes:
    """Everything the ledger stored, byte for byte."""
    rows = ledger.notification_rows(1, 10_000)
    return b"\n".join(r[4] for r in rows)


def test_password_hash_is_salted_scrypt_and_verifies():
    one, two = hash_password(SECRET, n=2**10), hash_password(SECRET, n=2**10)
    assert one.startswith("scrypt$1024$8$1$") and one != two          # a salt per hash
    assert verify_password(SECRET, one) and verify_password(SECRET, two)
    assert not verify_password(SECRET + "x", one)
    assert not verify_password(SECRET, "md5$whatever") and not verify_password(SECRET, "")


def test_administration_is_recorded_with_who_and_why_and_no_clear_password(users, ledger):
    users.add_user("ann", "admin", SECRET, by="root", reason="AP lead")
    users.add_user("bob", "viewer", "another long one", by="ann")
    users.change_role("bob", "operator", by="ann", reason="joins the AP team")
    users.change_password("bob", "a brand new secret", by="bob")
    users.disable_user("ann", by="bob", reason="left the company")
    listed = [u.to_dict() for u in users.list_users()]
    assert [(u["name"], u["role"], u["disabled"]) for u in listed] == [
        ("ann", "admin", True), ("bob", "operator", False)]
    history = ledger.history(user_stream_id("bob"))
    assert [e["type"] for e in history] == ["UserCreated", "RoleChanged", "PasswordChanged"]
    assert (history[1]["data"]["by"], history[1]["data"]["reason"],
            history[1]["data"]["previous_role"]) == ("ann", "joins the AP team", "viewer")
    stored = raw_events(ledger)
    for password in (SECRET, "another long one", "a brand new secret"):
        assert password.encode() not in stored
    assert b"scrypt$" in stored


def test_authenticate_returns_the_user_and_refuses_wrong_disabled_and_unknown(users):
    users.add_user("ann", "operator", SECRET, by="root")
    user = users.authenticate("ann", SECRET)
    assert (user.name, user.role) == ("ann", "operator")
    for name, password in (("ann", "wrong password"), ("nobody", SECRET), ("", SECRET)):
        with pytest.raises(AuthenticationFailed, match="^wrong user name or password$"):
            users.authenticate(name, password)
    users.disable_user("ann", by="root", reason="left")
    with pytest.raises(AuthenticationFailed, match="^wrong user name or password$"):
        users.authenticate("ann", SECRET)


def test_five_wrong_passwords_lock_the_user_for_a_while(users, ledger, clock):
    users.add_user("ann", "operator", SECRET, by="root")
    for _ in range(4):
        with pytest.raises(AuthenticationFailed) as failed:
            users.authenticate("ann", "guess")
        assert not isinstance(failed.value, LockedOut)
    with pytest.raises(LockedOut, match="locked after too many wrong passwords until"):
        users.authenticate("ann", "guess")
    with pytest.raises(LockedOut):                       # even the right password, for now
        users.authenticate("ann", SECRET)
    assert users.list_users()[0].locked_until is not None
    clock.now += 601
    assert users.authenticate("ann", SECRET).name == "ann"
    types = [e["type"] for e in ledger.history(user_stream_id("ann"))]
    assert types == ["UserCreated"] + ["LoginFailed"] * 5 + ["LockedOut", "LoginSucceeded"]
    with pytest.raises(AuthenticationFailed):             # the count starts again
        users.authenticate("ann", "guess")
    assert users.authenticate("ann", SECRET).name == "ann"


def test_a_new_password_lifts_a_lockout(users, clock):
    users.add_user("ann", "operator", SECRET, by="root")
    for _ in range(5):
        with pytest.raises(AuthenticationFailed):
            users.authenticate("ann", "guess")
    users.change_password("ann", "the reset password", by="root", reason="locked out")
    assert users.authenticate("ann", "the reset password").name == "ann"


@pytest.mark.parametrize("name, role, password, message", [
    ("ann", "superuser", SECRET, "role 'superuser' is not one of viewer, operator, admin"),
    ("an n", "viewer", SECRET, "user name 'an n' is not accepted"),
    ("ann", "viewer", "short", "use at least 10; nothing changed"),
    ("annabelle_x", "viewer", "ANNABELLE_X", "the password is the user name"),
])
def test_bad_administration_input_is_refused(users, name, role, password, message):
    with pytest.raises(UserError, match=message):
        users.add_user(name, role, password, by="root")
    assert users.list_users() == []


def test_a_user_is_added_once(users):
    users.add_user("ann", "viewer", SECRET, by="root")
    with pytest.raises(UserError, match="exists already"):
        users.add_user("ANN", "admin", SECRET, by="root")


# ---------------------------------------------------------------------- the installed CLI

@pytest.fixture
def project(tmp_path):
    (tmp_path / "ml-connector.toml").write_text(f"""
[connector]
company = "10"
ledger = "sqlite:///{tmp_path}/data/ledger.db"
data_dir = "{tmp_path}/data"
""")
    return tmp_path


def test_users_commands_through_the_installed_cli(project):
    def cli(*args, input=None):
        return run_cli("--config", str(project / "ml-connector.toml"), *args, cwd=project,
                       input=input)

    added = cli("users", "add", "ann", "--role", "operator", "--by", "root", input=SECRET + "\n")
    assert added.returncode == 0, added.stderr
    assert "added user ann (operator)" in added.stdout
    assert SECRET not in added.stdout + added.stderr
    weak = cli("users", "add", "bob", "--role", "viewer", input="short\n")
    assert weak.returncode == 2 and "use at least 10" in weak.stderr
    assert "short" not in weak.stderr.replace("use at least", "")
    bad_role = cli("users", "add", "bob", "--role", "root", input=SECRET + "\n")
    assert bad_role.returncode == 2 and "'root' is not one of" in bad_role.stderr
    assert cli("users", "passwd", "ann", input="the new password\n").returncode == 0
    assert cli("users", "disable", "ann", "--reason", "left").returncode == 0
    listed = json.loads(cli("users", "list", "--json").stdout)
    assert [(u["name"], u["role"], u["disabled"]) for u in listed] == [
        ("ann", "operator", True)]
    table = cli("users", "list").stdout
    assert "ann" in table and "disabled" in table
    unknown = cli("users", "passwd", "nobody", input=SECRET + "\n")
    assert unknown.returncode == 1 and "no user 'nobody'" in unknown.stderr
    exported = cli("audit", "export").stdout
    assert SECRET not in exported and "the new password" not in exported
    types = [json.loads(line)["type"] for line in exported.splitlines()]
    assert ["UserCreated", "PasswordChanged", "UserDisabled"] == [
        t for t in types if t in ("UserCreated", "PasswordChanged", "UserDisabled")]
