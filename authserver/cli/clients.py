"""The command line: client applications and their access to APIs."""
from __future__ import annotations

import json

import click

from .. import clock
from .output import with_app


@click.group()
def client():
    """Client applications."""


def client_json(c) -> dict:
    from ..services.apis import list_grants

    return {"client_id": c.client_id, "org_id": c.org_id, "name": c.name, "description": c.description,
            "has_icon": c.icon is not None, "created_at": clock.isoformat(c.created_at),
            "grants": [grant_json(g, a) for g, a in list_grants(c.client_id)]}


def grant_json(g, a) -> dict:
    return {"api_id": a.api_id, "identifier": a.identifier, "scope": g.scope, "default": g.is_default}


@client.command("create")
@click.argument("org_id")
@click.argument("name")
@click.option("--description", default=None)
@click.option("--icon", type=click.Path(dir_okay=False), default=None, help="PNG, JPEG, GIF or WebP, at most 256 KiB.")
@click.option("--type", "client_type", default="confidential", help="Only 'confidential' is supported.")
@with_app
def client_create(org_id, name, description, icon, client_type):
    """Register a confidential client application; give it API access with 'client grant'."""
    from ..errors import InvalidInput
    from ..services.clients import register_client

    icon_bytes = None
    if icon is not None:
        try:
            with open(icon, "rb") as fh:
                icon_bytes = fh.read(300 * 1024)
        except OSError as exc:
            raise InvalidInput(f"cannot read icon file: {exc.strerror}") from None
    c = register_client(org_id, name, description=description, icon=icon_bytes, client_type=client_type)
    return {"client_id": c.client_id}, c.client_id


@client.command("update")
@click.argument("client_id")
@click.option("--name", default=None)
@click.option("--description", default=None, help="Empty to clear.")
@click.option("--icon", type=click.Path(dir_okay=False), default=None, help="PNG, JPEG, GIF or WebP, at most 256 KiB.")
@click.option("--no-icon", is_flag=True, help="Remove the icon.")
@with_app
def client_update(client_id, name, description, icon, no_icon):
    """Change a client's name, description or icon."""
    from ..errors import InvalidInput
    from ..services.clients import update_client

    changes = {}
    if name is not None:
        changes["name"] = name
    if description is not None:
        changes["description"] = description
    if icon is not None and no_icon:
        raise InvalidInput("Give --icon or --no-icon, not both.")
    if no_icon:
        changes["icon"] = None
    elif icon is not None:
        try:
            with open(icon, "rb") as fh:
                changes["icon"] = fh.read(300 * 1024)
        except OSError as exc:
            raise InvalidInput(f"cannot read icon file: {exc.strerror}") from None
    c = update_client(client_id, **changes)
    return client_json(c), f"Client {c.client_id} updated."


@client.command("list")
@click.argument("org_id")
@with_app
def client_list(org_id):
    """List an organization's client applications."""
    from ..services.clients import list_clients
    from ..services.organizations import get_organization

    get_organization(org_id)
    rows = [client_json(c) for c in list_clients(org_id)]
    return rows, "\n".join(f"{r['client_id']}  {r['name']}" for r in rows) or "No clients."


@client.command("show")
@click.argument("client_id")
@with_app
def client_show(client_id):
    """Show a client application with its API access."""
    from ..services.clients import get_client

    data = client_json(get_client(client_id))
    return data, json.dumps(data, indent=2, sort_keys=True)


@client.command("delete")
@click.argument("client_id")
@with_app
def client_delete(client_id):
    """Delete a client with its secrets, keys and API access; its tokens become inactive at once."""
    from ..services.clients import delete_client

    delete_client(client_id)
    return {"deleted": client_id}, f"Client {client_id} deleted; its tokens are inactive."


@client.command("grant")
@click.argument("client_id")
@click.argument("api")
@click.option(
    "--scope", default="", help='The scopes of the API the client may ask for, space-delimited, e.g. "orders:read".'
)
@click.option("--default/--no-default", "default", default=None,
              help="Make this the client's default API (used when a token request names no resource). "
                   "Without either flag a client's first grant becomes its default.")
@with_app
def client_grant(client_id, api, scope, default):
    """Give a client access to an API (by identifier or api_id) with these scopes; replaces an earlier grant."""
    from ..services.apis import find_api, grant_client

    g = grant_client(client_id, api, scope, default=default)
    data = grant_json(g, find_api(g.api_id))
    return data, f"Client {client_id} may ask for {data['identifier']} with scope '{data['scope']}'" + (
        " (its default API)." if data["default"] else ".")


@client.command("ungrant")
@click.argument("client_id")
@click.argument("api")
@with_app
def client_ungrant(client_id, api):
    """Take a client's access to an API (by identifier or api_id) away; tokens already issued stay valid."""
    from ..services.apis import ungrant_client

    ungrant_client(client_id, api)
    return {"client_id": client_id, "ungranted": api}, f"Client {client_id} no longer has access to {api}."


# --- APIs -----------------------------------------------------------------------------------
