"""`ml-connector users ...`: the people who may log in to the web workspace. Each change is an
event in the ledger naming who made it (`--by`, else the OS user). Passwords come from a
hidden prompt, or from stdin when it is not a terminal; they are never echoed or logged.
A refused change is a UserError, reported by cli.py like every ConnectorError."""
from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import click

from commands import output
from commands.actions import os_user
from commands.context import EXAMPLE, runtime, subgroup
from ledger.users import ROLES, UserInfo


def _password(name: str) -> str:
    if sys.stdin.isatty():
        return click.prompt(f"password for {name}", hide_input=True, confirmation_prompt=True)
    return sys.stdin.readline().rstrip("\r\n")


def _by_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    fn = click.option("--reason", default="", metavar="TEXT",
                      help="Why (recorded with the change).")(fn)
    return click.option("--by", "operator", metavar="NAME",
                        help="Who makes the change (default: your OS user name).")(fn)


def _row(user: UserInfo) -> dict[str, Any]:
    return user.to_dict()


def register(main: click.Group) -> None:
    users = subgroup(main, "users", "The people who may log in to the web workspace (viewer,"
                     " operator, admin); every change is recorded in the ledger." + EXAMPLE
                     + "ml-connector users add ann --role operator")

    @users.command("add", help="Add a user. The password comes from a hidden prompt, or from"
                   " stdin when it is not a terminal (at least 10 characters)." + EXAMPLE
                   + "ml-connector users add ann --role operator")
    @click.argument("name")
    @click.option("--role", required=True, type=click.Choice(ROLES, case_sensitive=True),
                  help="viewer: reads; operator: also retries, resolves, dismisses, reopens;"
                  " admin: also manages users.")
    @_by_options
    @click.pass_context
    def users_add(ctx: click.Context, name: str, role: str, operator: str | None,
                  reason: str) -> None:
        password = _password(name)
        user = runtime(ctx).users().add_user(name, role, password, by=operator or os_user(),
                                             reason=reason)
        click.echo(f"added user {output.printable(user.name)} ({user.role})")

    @users.command("passwd", help="Set a new password for a user (also lifts a lockout)."
                   + EXAMPLE + "ml-connector users passwd ann")
    @click.argument("name")
    @_by_options
    @click.pass_context
    def users_passwd(ctx: click.Context, name: str, operator: str | None, reason: str) -> None:
        rt = runtime(ctx)
        if rt.users().get_user(name) is None:   # before asking for a password
            raise click.ClickException(f"no user {name!r}; `ml-connector users list` shows"
                                       " them")
        password = _password(name)
        user = rt.users().change_password(name, password, by=operator or os_user(),
                                          reason=reason)
        click.echo(f"new password set for {output.printable(user.name)}")

    @users.command("role", help="Change a user's role." + EXAMPLE
                   + "ml-connector users role ann --role admin --reason 'new AP lead'")
    @click.argument("name")
    @click.option("--role", required=True, type=click.Choice(ROLES, case_sensitive=True))
    @_by_options
    @click.pass_context
    def users_role(ctx: click.Context, name: str, role: str, operator: str | None,
                   reason: str) -> None:
        user = runtime(ctx).users().change_role(name, role, by=operator or os_user(),
                                                reason=reason)
        click.echo(f"{output.printable(user.name)} is now {user.role}")

    @users.command("disable", help="Disable a user: no more logins; the history stays."
                   + EXAMPLE + "ml-connector users disable bob --reason 'left the company'")
    @click.argument("name")
    @_by_options
    @click.pass_context
    def users_disable(ctx: click.Context, name: str, operator: str | None,
                      reason: str) -> None:
        user = runtime(ctx).users().disable_user(name, by=operator or os_user(),
                                                 reason=reason)
        click.echo(f"disabled user {output.printable(user.name)}")

    @users.command("list", help="List the users, their roles and whether they are disabled"
                   " or locked." + EXAMPLE + "ml-connector users list --json")
    @click.option("--json", "as_json", is_flag=True)
    @click.pass_context
    def users_list(ctx: click.Context, as_json: bool) -> None:
        found = [_row(u) for u in runtime(ctx).users().list_users()]
        if as_json:
            click.echo(output.dumps(found))
        elif not found:
            click.echo("no users; `ml-connector users add NAME --role admin` adds one")
        else:
            click.echo(output.table(found, (
                ("NAME", lambda u: u["name"]), ("ROLE", lambda u: u["role"]),
                ("STATUS", lambda u: "disabled" if u["disabled"] else (
                    f"locked until {u['locked_until']}" if u["locked_until"] else "active")),
                ("ADDED", lambda u: u["created_at"][:19]))))
