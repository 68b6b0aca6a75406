"""The command line: accounts: service accounts and users."""
from __future__ import annotations

import sys

import click

from .. import clock
from .output import with_app


@click.group()
def account():
    """Accounts: service identities and users."""


def _account_json(a) -> dict:
    return {"account_id": a.account_id, "org_id": a.org_id, "name": a.name, "kind": a.kind, "email": a.email,
            "admin": a.is_admin, "disabled": a.disabled_at is not None, "created_at": clock.isoformat(a.created_at)}


@account.command("create")
@click.argument("org_id")
@click.argument("name")
@click.option("--kind", type=click.Choice(["service", "user"]), required=True)
@click.option("--email", default=None)
@click.option("--admin", is_flag=True, help="An organization admin (users only).")
@click.option("--password-stdin", is_flag=True, help="Read the user's password from standard input.")
@with_app
def account_create(org_id, name, kind, email, admin, password_stdin):
    """Create a service account (a machine identity) or a user (email, password; --admin for the console)."""
    from ..services.accounts import create_account

    password = sys.stdin.readline().rstrip("\r\n") if password_stdin else None
    a = create_account(org_id, name, kind, email=email, password=password, is_admin=admin)
    return {"account_id": a.account_id}, a.account_id


@account.command("disable")
@click.argument("account_id")
@with_app
def account_disable(account_id):
    """Disable an account: no new tokens, its live tokens introspect inactive (not the last admin)."""
    from ..services.accounts import disable_account

    a = disable_account(account_id)
    return _account_json(a), f"Account {a.account_id} disabled."


@account.command("enable")
@click.argument("account_id")
@with_app
def account_enable(account_id):
    """Enable a disabled account (its tokens from before stay revoked)."""
    from ..services.accounts import enable_account

    a = enable_account(account_id)
    return _account_json(a), f"Account {a.account_id} enabled."


@account.command("set-password")
@click.argument("account_id")
@click.option("--password-stdin", is_flag=True, required=True, help="Read the new password from standard input.")
@with_app
def account_set_password(account_id, password_stdin):
    """Set a user's password (the operator's reset), read from standard input."""
    from ..services.accounts import set_password

    a = set_password(account_id, sys.stdin.readline().rstrip("\r\n"))
    return {"account_id": a.account_id, "password_set": True}, f"Password of {a.account_id} set."


@account.command("list")
@click.argument("org_id")
@with_app
def account_list(org_id):
    """List an organization's accounts with their kind and status."""
    from ..services.accounts import list_accounts
    from ..services.organizations import get_organization

    get_organization(org_id)
    rows = [_account_json(a) for a in list_accounts(org_id)]
    return rows, "\n".join(f"{r['account_id']}  {r['kind']:7}  {'disabled' if r['disabled'] else 'active':8}  "
                           f"{'admin  ' if r['admin'] else ''}{r['name']}" for r in rows) or "No accounts."


# --- clients --------------------------------------------------------------------------------
