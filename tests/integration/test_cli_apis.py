"""The command line for APIs and API access (SPEC §6, §9): each command with --json, its refusals
(stderr, non-zero exit, nothing stored) and the audit trail."""
from __future__ import annotations

import json

from sqlalchemy import select

from authserver.extensions import db
from authserver.models import Api, ApiClient, ApiScope, AuditEvent, ClientGrant

from .test_cli import Cli, _rows

ORDERS = "https://api.acme.test/orders"
SEARCH = "https://platform.example.test/search"


def _org_with_client(cli: Cli, name: str = "Acme") -> tuple[str, str]:
    org_id = cli.json("org", "create", name)["org_id"]
    return org_id, cli.json("client", "create", org_id, f"{name} backend")["client_id"]


def test_org_api_create_show_list_and_scopes(cli):
    org_id, _ = _org_with_client(cli)
    api_id = cli.json("api", "create", "--org", org_id, "Orders", ORDERS, "--scope", "orders:read=Read orders",
                      "--scope", "orders:write")["api_id"]
    shown = cli.json("api", "show", api_id)
    assert shown["identifier"] == ORDERS and shown["owner"] == org_id and shown["name"] == "Orders"
    assert shown["scopes"] == [{"name": "orders:read", "description": "Read orders"},
                               {"name": "orders:write", "description": ""}]
    assert cli.json("api", "show", ORDERS)["api_id"] == api_id  # by identifier too
    cli.json("api", "scope", "add", api_id, "orders:admin", "--description", "Everything")
    cli.json("api", "scope", "delete", api_id, "orders:write")
    assert [s["name"] for s in cli.json("api", "show", api_id)["scopes"]] == ["orders:admin", "orders:read"]
    listed = cli.json("api", "list", "--org", org_id)
    # The organization sees its own API and the platform APIs open to all (management, default).
    assert {a["identifier"] for a in listed} >= {ORDERS} and {a["owner"] for a in listed} == {org_id, "platform"}
    other_org = cli.json("org", "create", "Globex")["org_id"]
    assert ORDERS not in {a["identifier"] for a in cli.json("api", "list", "--org", other_org)}
    actions = [e.action for e in _rows(cli.app(), AuditEvent, AuditEvent.object_id == api_id)]
    assert actions == ["api.created", "api.scope_added", "api.scope_removed"]


def test_refusals_store_nothing(cli):
    org_id, client_id = _org_with_client(cli)
    before = len(_rows(cli.app(), Api))
    cli.fails("api", "create", "Orders", ORDERS, needle="--org")                    # no owner
    cli.fails("api", "create", "--org", org_id, "--platform", "Orders", ORDERS, needle="exactly one")
    cli.fails("api", "create", "--org", org_id, "--open", "Orders", ORDERS, needle="platform")
    cli.fails("api", "create", "--org", org_id, "Orders", "orders", needle="absolute URI")
    cli.fails("api", "create", "--org", org_id, "Orders", ORDERS + "#x", needle="fragment")
    cli.fails("api", "create", "--org", org_id, "Orders", ORDERS, "--scope", "a b", needle="scope")
    cli.fails("api", "create", "--org", org_id, "Mine", "http://localhost/api/v2", needle="reserved")
    assert len(_rows(cli.app(), Api)) == before
    api_id = cli.json("api", "create", "--org", org_id, "Orders", ORDERS, "--scope", "orders:read")["api_id"]
    result = cli.run("api", "create", "--org", org_id, "Again", ORDERS, "--json")
    assert result.exit_code == 4 and "already exists" in result.stderr and result.stdout == ""
    cli.fails("client", "grant", client_id, ORDERS, "--scope", "orders:write", needle="does not define")
    cli.fails("client", "grant", client_id, "https://api.nowhere.test", "--scope", "x", needle="not found")
    assert _rows(cli.app(), ClientGrant) == []
    other_org, other_client = _org_with_client(cli, "Globex")
    cli.fails("client", "grant", other_client, ORDERS, "--scope", "orders:read", needle="cannot use")
    cli.fails("api", "bind-client", api_id, other_client, needle="organization")
    assert _rows(cli.app(), ClientGrant) == [] and _rows(cli.app(), ApiClient) == []


def test_grant_default_ungrant_and_show(cli):
    org_id, client_id = _org_with_client(cli)
    cli.json("api", "create", "--org", org_id, "Orders", ORDERS, "--scope", "orders:read", "--scope", "orders:write")
    first = cli.json("client", "grant", client_id, ORDERS, "--scope", "orders:write orders:read")
    assert first == {
        "api_id": first["api_id"],
        "identifier": ORDERS,
        "scope": "orders:read orders:write",
        "default": True,
    }
    # The default API moves with --default; --no-default keeps a grant from becoming one.
    default_api = next(a for a in cli.json("api", "list") if a["builtin"] == "default")
    cli.json("client", "grant", client_id, default_api["identifier"], "--scope", "read", "--default")
    grants = {g["identifier"]: g["default"] for g in cli.json("client", "show", client_id)["grants"]}
    assert grants == {ORDERS: False, default_api["identifier"]: True}
    assert cli.json("client", "ungrant", client_id, ORDERS)["ungranted"] == ORDERS
    assert [g["identifier"] for g in cli.json("client", "show", client_id)["grants"]] == [default_api["identifier"]]
    cli.fails("client", "ungrant", client_id, ORDERS, needle="no access")


def test_platform_api_open_close_and_delete_with_force(cli):
    org_id, client_id = _org_with_client(cli)
    api_id = cli.json("api", "create", "--platform", "Search", SEARCH, "--scope", "search")["api_id"]
    cli.fails("client", "grant", client_id, SEARCH, "--scope", "search", needle="cannot use")
    opened = cli.json("api", "open", api_id, org_id)
    assert opened["opened_to"] == [org_id] and opened["open_to_all"] is False and opened["owner"] == "platform"
    cli.json("client", "grant", client_id, SEARCH, "--scope", "search")
    rs_client = cli.json("client", "create", org_id, "Search server")["client_id"]
    cli.json("api", "bind-client", api_id, rs_client)
    assert cli.json("api", "show", api_id)["clients"] == [rs_client]
    cli.fails("api", "delete", api_id, needle="hold access")
    assert len(_rows(cli.app(), Api, Api.api_id == api_id)) == 1
    deleted = cli.json("api", "delete", api_id, "--force")
    assert deleted == {"deleted": api_id, "removed_grants": [client_id], "revoked_tokens": 0}
    app = cli.app()
    for model in (Api, ApiScope, ApiClient, ClientGrant):
        assert _rows(app, model, model.api_id == api_id) == [], model.__name__
    events = _rows(app, AuditEvent, AuditEvent.object_id == api_id)
    assert [e.action for e in events][-1] == "api.deleted"
    assert json.loads(events[-1].details)["removed_grants"] == [client_id]


def test_the_management_api_cannot_be_deleted_nor_lose_its_scope(cli):
    management = next(a for a in cli.json("api", "list") if a["builtin"] == "management")
    assert management["identifier"] == "http://localhost/api/v1" and [s["name"] for s in management["scopes"]] == [
        "manage"
    ]
    cli.fails("api", "delete", management["api_id"], "--force", needle="cannot be deleted")
    cli.fails("api", "scope", "delete", management["api_id"], "manage", needle="cannot be removed")
    with cli.app().app_context():
        assert db.session.scalar(select(Api.identifier).where(Api.builtin == "management")) == management["identifier"]
        db.session.remove()
        db.engine.dispose()
