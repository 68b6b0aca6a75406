"""The command line: aPIs (resource servers), their scopes and their own clients."""
from __future__ import annotations

import json

import click

from .. import clock
from .output import with_app


@click.group()
def api():
    """APIs (resource servers): the audiences of access tokens, with their scopes."""


def api_json(a) -> dict:
    from ..services.apis import bound_clients, opened_to, scopes_of

    return {"api_id": a.api_id, "name": a.name, "identifier": a.identifier,
            "owner": a.org_id or "platform", "org_id": a.org_id, "open_to_all": a.open_to_all,
            "opened_to": opened_to(a) if a.org_id is None else [], "builtin": a.builtin,
            "scopes": [{"name": s.name, "description": s.description} for s in scopes_of(a)],
            "clients": bound_clients(a), "created_at": clock.isoformat(a.created_at),
            "updated_at": clock.isoformat(a.updated_at)}


def _scope_option(values) -> list[tuple[str, str]]:
    return [tuple(v.split("=", 1)) if "=" in v else (v, "") for v in values]


@api.command("create")
@click.argument("name")
@click.argument("identifier")
@click.option("--org", "org_id", default=None, help="The organization that owns the API.")
@click.option("--platform", is_flag=True, help="A platform API (no owner), for the organizations it is opened to.")
@click.option("--open", "open_to_all", is_flag=True, help="Platform APIs: open to every organization.")
@click.option(
    "--scope", "scopes", multiple=True, metavar="NAME[=DESCRIPTION]", help="A scope the API defines (repeatable)."
)
@with_app
def api_create(name, identifier, org_id, platform, open_to_all, scopes):
    """Register an API: IDENTIFIER is an absolute URI (RFC 8707), the `aud` of its tokens; unique on the server."""
    from ..errors import InvalidInput
    from ..services.apis import create_api

    if bool(org_id) == bool(platform):
        raise InvalidInput("Give exactly one owner: --org ORG_ID or --platform.")
    if open_to_all and not platform:
        raise InvalidInput("--open applies to platform APIs only.")
    a = create_api(name, identifier, org_id=org_id, scopes=_scope_option(scopes), open_to_all=open_to_all)
    return {"api_id": a.api_id}, a.api_id


@api.command("list")
@click.option(
    "--org", "org_id", default=None, help="Only the APIs this organization may use (its own and open platform APIs)."
)
@with_app
def api_list(org_id):
    """List APIs."""
    from ..services.apis import list_apis
    from ..services.organizations import get_organization

    if org_id is not None:
        get_organization(org_id)
    rows = [api_json(a) for a in list_apis(org_id)]
    return rows, "\n".join(
        f"{r['api_id']}  {r['owner']:24}  {r['identifier']}  ({' '.join(s['name'] for s in r['scopes'])})" for r in rows
    ) or "No APIs."


@api.command("show")
@click.argument("api_id")
@with_app
def api_show(api_id):
    """Show an API with its scopes, owner and bound clients."""
    from ..services.apis import find_api

    data = api_json(find_api(api_id))
    return data, json.dumps(data, indent=2, sort_keys=True)


@api.command("update")
@click.argument("api_id")
@click.option("--name", default=None, help="A new name.")
@click.option(
    "--open/--closed",
    "open_to_all",
    default=None,
    help="Platform APIs: open to every organization, or only to chosen ones.",
)
@with_app
def api_update(api_id, name, open_to_all):
    """Rename an API or open a platform API to every organization (the identifier never changes)."""
    from ..services.apis import update_api

    changes = {}
    if name is not None:
        changes["name"] = name
    if open_to_all is not None:
        changes["open_to_all"] = open_to_all
    a = update_api(api_id, **changes)
    return api_json(a), f"API {a.api_id} updated."


@api.command("delete")
@click.argument("api_id")
@click.option("--force", is_flag=True, help="Also remove every client's access to the API.")
@with_app
def api_delete(api_id, force):
    """Delete an API: refused while clients hold access to it unless --force. Its live tokens are revoked."""
    from ..services.apis import delete_api

    impact = delete_api(api_id, force=force)
    data = {"deleted": api_id, "removed_grants": impact.client_ids, "revoked_tokens": impact.live_tokens}
    return data, (f"API {api_id} deleted; access removed from {len(impact.client_ids)} client(s), "
                  f"{impact.live_tokens} live token(s) revoked.")


@api.command("open")
@click.argument("api_id")
@click.argument("org_id")
@with_app
def api_open(api_id, org_id):
    """Open a platform API to one organization."""
    from ..services.apis import open_api

    return api_json(open_api(api_id, org_id)), f"API {api_id} is open to {org_id}."


@api.command("close")
@click.argument("api_id")
@click.argument("org_id")
@with_app
def api_close(api_id, org_id):
    """Close a platform API to one organization: its clients' access to it stops at once."""
    from ..services.apis import close_api

    return api_json(close_api(api_id, org_id)), f"API {api_id} is closed to {org_id}."


@api.group("scope")
def api_scope():
    """The scopes an API defines."""


@api_scope.command("add")
@click.argument("api_id")
@click.argument("name")
@click.option("--description", default=None)
@with_app
def api_scope_add(api_id, name, description):
    """Define a scope (RFC 6749 section 3.3 scope-token)."""
    from ..services.apis import add_scope

    row = add_scope(api_id, name, description)
    return {"api_id": api_id, "name": row.name, "description": row.description}, f"Scope {row.name} added."


@api_scope.command("delete")
@click.argument("api_id")
@click.argument("name")
@with_app
def api_scope_delete(api_id, name):
    """Remove a scope from an API and from every client's access to it."""
    from ..services.apis import remove_scope

    remove_scope(api_id, name)
    return {"api_id": api_id, "deleted": name}, f"Scope {name} removed."


@api.command("bind-client")
@click.argument("api_id")
@click.argument("client_id")
@with_app
def api_bind_client(api_id, client_id):
    """Make CLIENT_ID the API's own client: it may introspect the tokens issued for the API."""
    from ..services.apis import bind_client

    bind_client(api_id, client_id)
    return {"api_id": api_id, "client_id": client_id}, f"Client {client_id} introspects for API {api_id}."


@api.command("unbind-client")
@click.argument("api_id")
@click.argument("client_id")
@with_app
def api_unbind_client(api_id, client_id):
    """Stop CLIENT_ID introspecting for the API."""
    from ..services.apis import unbind_client

    unbind_client(api_id, client_id)
    return {"api_id": api_id, "unbound": client_id}, f"Client {client_id} no longer introspects for API {api_id}."


# --- secrets --------------------------------------------------------------------------------
