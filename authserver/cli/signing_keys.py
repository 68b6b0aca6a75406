"""The command line: the server's own signing keys."""
from __future__ import annotations

import click

from .. import clock
from .output import with_app


@click.group("signing-key")
def signing_key():
    """The server's access-token signing keys."""


def _signing_key_json(entry: dict) -> dict:
    return {**entry, **{name: clock.isoformat(entry[name])
                        for name in ("created_at", "activates_at", "retired_at", "withdrawn_at")}}


@signing_key.command("list")
@with_app
def signing_key_list():
    """Every signing key, newest first: pending (published, not signing yet), signing, retired
    (published until its tokens expire), expired (unpublished) or withdrawn."""
    from ..services.signing_keys import list_signing_keys

    rows = [_signing_key_json(entry) for entry in list_signing_keys()]
    columns = ("kid", "alg", "state", "created_at", "activates_at", "retired_at", "withdrawn_at")
    table = [columns] + [tuple(r[c] or "-" for c in columns) for r in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(columns))]
    human = "\n".join("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
                      for line in table)
    return rows, human if rows else "No signing keys."


@signing_key.command("rotate")
@click.option("--now", "at_once", is_flag=True,
              help="The new key signs at once and every other key stops signing at once (a compromised key).")
@with_app
def signing_key_rotate(at_once):
    """Add a signing key. It is published at once and signs after AUTHSERVER_SIGNING_KEY_ACTIVATION_DELAY
    seconds (with --now: at once); older keys stay published until their tokens expire."""
    from flask import current_app

    from ..services.signing_keys import rotate_signing_key

    k = rotate_signing_key(now=at_once)
    settings = current_app.extensions["authserver.settings"]
    if at_once:
        when = (f"it signs now (every worker within {settings.signing_key_refresh} s) and every other key "
                "has stopped signing")
    else:
        when = f"it signs from {clock.isoformat(k.activates_at)}"
    return ({"kid": k.kid, "alg": k.alg},
            f"New signing key {k.kid} ({k.alg}): {when}; older keys stay published until their tokens expire.")


@signing_key.command("withdraw", context_settings={"ignore_unknown_options": True})  # a kid may begin with "-"
@click.argument("kid")
@with_app
def signing_key_withdraw(kid):
    """Withdraw a compromised key that no longer signs (after 'rotate --now'): it leaves the JWKS and
    every token it signed is inactive at once. Final."""
    from flask import current_app

    from ..services.signing_keys import signing_key_state, withdraw_signing_key

    key = withdraw_signing_key(kid)
    refresh = current_app.extensions["authserver.settings"].signing_key_refresh
    if key.retired_at is not None and key.withdrawn_at - key.retired_at < refresh:
        click.echo(f"warning: {kid} stopped signing {key.withdrawn_at - key.retired_at} s ago; workers re-read "
                   f"their signing key every {refresh} s, and a token a worker signs with it meanwhile is "
                   "inactive and unverifiable.", err=True)
    entry = _signing_key_json(signing_key_state(kid))
    return entry, (f"Signing key {kid} withdrawn: it is no longer published and every token it signed is inactive "
                   "at introspection. Resource servers that cache the JWKS drop it when their copy expires.")
