"""The command line: clients' public keys, pasted or by URL."""
from __future__ import annotations

from pathlib import Path

import click

from .. import clock
from .output import with_app


@click.group()
def key():
    """Public keys that verify a client's assertions."""


def key_json(k) -> dict:
    return {"kid": k.kid, "key_type": k.key_type, "created_at": clock.isoformat(k.created_at)}


@key.command("add")
@click.argument("client_id")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--kid", default=None, help="Key id (default: the JWK's kid or the RFC 7638 thumbprint).")
@with_app
def key_add(client_id, file, kid):
    """Register a public key (PEM or JWK) that verifies the client's assertions."""
    from ..errors import InvalidInput
    from ..services.client_keys import add_key

    try:
        text = Path(file).read_bytes()[:65536]
    except OSError as exc:
        raise InvalidInput(f"cannot read key file: {exc.strerror}") from None
    k = add_key(client_id, text, kid=kid)
    return {"kid": k.kid}, k.kid


def key_url_json(status) -> dict:
    return {
        "jwks_uri": status.jwks_uri,
        "created_at": clock.isoformat(status.added_at),
        "key_ids": list(status.key_ids),
        "last_fetch_at": clock.isoformat(status.last_fetch_at),
        "next_fetch_at": clock.isoformat(status.next_fetch_at),
        "last_error": status.last_error,
        "last_error_at": clock.isoformat(status.last_error_at),
    }


def key_url_human(entry: dict) -> str:
    fetched = (f"last fetched {entry['last_fetch_at']}, keys: {', '.join(entry['key_ids']) or 'none'}"
               if entry["last_fetch_at"] else "never fetched")
    error = f"\n  last error ({entry['last_error_at']}): {entry['last_error']}" if entry["last_error"] else ""
    return f"URL {entry['jwks_uri']}  added {entry['created_at']}  {fetched}{error}"


@key.command("add-url")
@click.argument("client_id")
@click.argument("url")
@with_app
def key_add_url(client_id, url):
    """Register the URL of a JWK Set whose keys verify the client's assertions (one per client; a new
    one replaces the old). It must answer now with at least one usable signing key."""
    from ..services.client_keys import set_key_url

    entry = key_url_json(set_key_url(client_id, url))
    return entry, key_url_human(entry)


@key.command("list")
@click.argument("client_id")
@with_app
def key_list(client_id):
    """List a client's public keys, and its key URL with the keys fetched from it and the last error."""
    from ..services.client_keys import key_url_status, list_keys

    rows = [key_json(k) for k in list_keys(client_id)]
    lines = [f"{r['kid']}  {r['key_type']}  created {r['created_at']}" for r in rows]
    status = key_url_status(client_id)
    if status is not None:
        entry = key_url_json(status)
        rows.append(entry)
        lines.append(key_url_human(entry))
    return rows, "\n".join(lines) or "No keys."


@key.command("delete")
@click.argument("client_id")
@click.argument("kid")
@with_app
def key_delete(client_id, kid):
    """Delete a public key (by its KID), or the key URL (give the URL): assertions signed with its keys
    are refused at once."""
    from ..errors import NotFound
    from ..services.client_keys import delete_key, delete_key_url
    from ..services.clients import get_client

    try:
        delete_key(client_id, kid)
    except NotFound:
        if get_client(client_id).jwks_uri != kid:
            raise
        delete_key_url(client_id)
        return {"deleted": kid}, f"Key URL {kid} deleted."
    return {"deleted": kid}, f"Key {kid} deleted."


# --- server keys and housekeeping -----------------------------------------------------------
