"""The command line: client secrets."""
from __future__ import annotations

import click

from .. import clock
from .output import with_app


@click.group()
def secret():
    """Client secrets (shown once, stored as hashes)."""


@secret.command("add")
@click.argument("client_id")
@click.option("--expires-in", "expires_in", metavar="DAYS",
              help="Days until the secret stops authenticating (1 to 3650).")
@click.option("--expires-at", "expires_at", metavar="ISO-8601-TIME",
              help="When the secret stops authenticating, e.g. 2030-01-31T12:00:00Z (a date alone: midnight UTC).")
@click.option("--label", metavar="TEXT", help="Words to tell this secret apart in listings (up to 100 characters).")
@with_app
def secret_add(client_id, expires_in, expires_at, label):
    """Generate a client secret: shown once here, stored only as a hash.

    Without --expires-in or --expires-at it expires after AUTHSERVER_SECRET_DEFAULT_TTL_DAYS (0: never)."""
    from ..services.client_secrets import add_secret, hint_text

    new = add_secret(client_id, expires_at=expires_at, expires_in_days=expires_in, label=label)
    expiry = clock.isoformat(new.expires_at)
    human = (f"secret_id:     {new.secret_id}\nclient_secret: {new.client_secret}\n"
             f"hint:          {hint_text(new.hint)}\n"
             f"label:         {new.label or '(none)'}\nexpires_at:    {expiry or 'never'}\n"
             "This secret is shown once and cannot be retrieved again. Store it now.")
    return ({"secret_id": new.secret_id, "client_secret": new.client_secret, "hint": new.hint, "label": new.label,
             "expires_at": expiry}, human)


def secret_json(s) -> dict:
    return {"secret_id": s.secret_id, "hint": s.hint, "label": s.label, "created_at": clock.isoformat(s.created_at),
            "last_used_at": clock.isoformat(s.last_used_at), "expires_at": clock.isoformat(s.expires_at),
            "leaked_at": clock.isoformat(s.leaked_at)}


def secret_line(s) -> str:
    """One secret for people: its times, and a warning when it no longer works or soon will not."""
    from ..services.client_secrets import (
        STATE_EXPIRED,
        STATE_EXPIRING,
        STATE_LEAKED,
        days_left,
        hint_text,
        secret_state,
    )

    row = secret_json(s)
    label = f"  \"{s.label}\"" if s.label else ""
    line = (f"{row['secret_id']}  {hint_text(s.hint)}{label}  created {row['created_at']}"
            f"  last used {row['last_used_at'] or 'never'}  expires {row['expires_at'] or 'never'}")
    state = secret_state(s)
    if state == STATE_LEAKED:
        line += f"  ! REPORTED LEAKED at {row['leaked_at']}: disabled, add a new secret and delete this one"
    elif state == STATE_EXPIRED:
        line += "  ! EXPIRED: no longer authenticates"
    elif state == STATE_EXPIRING:
        days = days_left(s)
        line += f"  ! expires in {days} day{'s' if days != 1 else ''}: add a new secret and switch to it"
    return line


@secret.command("list")
@click.argument("client_id")
@with_app
def secret_list(client_id):
    """List a client's secrets (ids, times and expiry, never the secrets)."""
    from ..services.client_secrets import list_secrets

    secrets_ = list_secrets(client_id)
    return [secret_json(s) for s in secrets_], "\n".join(secret_line(s) for s in secrets_) or "No secrets."


@secret.command("delete")
@click.argument("client_id")
@click.argument("secret_id")
@with_app
def secret_delete(client_id, secret_id):
    """Delete a secret: refused on the very next request; tokens it obtained stay valid."""
    from ..services.client_secrets import delete_secret

    delete_secret(client_id, secret_id)
    return {"deleted": secret_id}, f"Secret {secret_id} deleted."


# --- keys -----------------------------------------------------------------------------------
