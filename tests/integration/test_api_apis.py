"""/apis and /clients/{client_id}/grants (SPEC §7, §9): an organization registers its APIs and their
scopes, binds its own clients to them, gives its clients access; platform APIs are visible read-only
when open to it; every bad input is a problem that writes nothing; every change is audited."""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import select

from authserver import create_app
from authserver.extensions import db
from authserver.models import Api, ApiClient, ApiScope, AuditEvent, ClientGrant
from authserver.services import apis as api_service
from authserver.services.client_secrets import add_secret
from authserver.services.clients import register_client

from ..conftest import ISSUER, MANAGEMENT_API, basic, get_token
from .api_support import API, assert_problem
from .helpers import unverified_claims

ORDERS = "https://api.acme.test/orders"
ORDERS_SCOPES = [{"name": "orders:read", "description": "Read orders"}, {"name": "orders:write"}]


# --- helpers ----------------------------------------------------------------------------------

def stored_apis(org_id: str) -> list[tuple]:
    """The organization's APIs as stored: (identifier, name, {scope: description})."""
    db.session.expire_all()
    rows = db.session.scalars(select(Api).where(Api.org_id == org_id).order_by(Api.identifier)).all()
    return [(a.identifier, a.name, {s.name: s.description for s in
                                    db.session.scalars(select(ApiScope).where(ApiScope.api_id == a.api_id))})
            for a in rows]


def stored_grants(client_id: str) -> dict:
    db.session.expire_all()
    return {g.api_id: (g.scope, g.is_default)
            for g in db.session.scalars(select(ClientGrant).where(ClientGrant.client_id == client_id))}


def events(org_id: str, action: str | None = None) -> list[AuditEvent]:
    db.session.expire_all()
    query = select(AuditEvent).where(AuditEvent.org_id == org_id)
    if action:
        query = query.where(AuditEvent.action == action)
    return list(db.session.scalars(query.order_by(AuditEvent.id)))


def create(http, manager, identifier: str = ORDERS, name: str = "Orders", scopes=None, **extra) -> dict:
    body = {"name": name, "identifier": identifier, **extra}
    if scopes is not None:
        body["scopes"] = scopes
    response = http.post(f"{API}/apis", json=body, headers=manager.headers())
    assert response.status_code == 201, response.get_data(as_text=True)
    return response.get_json()


def platform_api(kind: str = api_service.BUILTIN_MANAGEMENT) -> Api:
    return api_service.builtin_api(kind)


def introspect(http, token: str, headers: dict) -> dict:
    response = http.post("/oauth/introspect", data={"token": token}, headers=headers)
    assert response.status_code == 200
    return response.get_json()


# --- APIs -------------------------------------------------------------------------------------

def test_register_show_list_rename_delete(http, manager):
    h = manager.headers()
    response = http.post(f"{API}/apis", json={"name": "  Orders  ", "identifier": ORDERS, "scopes": ORDERS_SCOPES},
                         headers=h)
    assert response.status_code == 201, response.get_data(as_text=True)
    body = response.get_json()
    api_id = body["api_id"]
    assert response.headers["Location"] == f"{API}/apis/{api_id}"
    assert body["name"] == "Orders" and body["identifier"] == ORDERS
    assert body["owner"] == manager.org_id and body["editable"] is True and body["clients"] == []
    assert body["scopes"] == [{"name": "orders:read", "description": "Read orders"},
                              {"name": "orders:write", "description": ""}]
    assert stored_apis(manager.org_id) == [(ORDERS, "Orders", {"orders:read": "Read orders", "orders:write": ""})]

    assert http.get(f"{API}/apis/{api_id}", headers=h).get_json() == body
    listed = http.get(f"{API}/apis", headers=h).get_json()["items"]
    assert body in listed
    platform = {item["identifier"]: item for item in listed if item["owner"] == "platform"}
    assert set(platform) == {MANAGEMENT_API, ISSUER}  # the management API and the `default` one, open to all
    assert all(item["editable"] is False and item["clients"] == [] for item in platform.values())
    assert platform[MANAGEMENT_API]["scopes"][0]["name"] == "manage"

    renamed = http.patch(f"{API}/apis/{api_id}", json={"name": "Order service"}, headers=h)
    assert renamed.status_code == 200
    assert renamed.get_json()["name"] == "Order service"
    assert renamed.get_json()["scopes"] == body["scopes"]  # left out, left alone
    assert stored_apis(manager.org_id)[0][:2] == (ORDERS, "Order service")

    deleted = http.delete(f"{API}/apis/{api_id}", headers=h)
    assert deleted.status_code == 204 and deleted.data == b""
    assert stored_apis(manager.org_id) == []
    assert_problem(http.get(f"{API}/apis/{api_id}", headers=h), 404)
    assert_problem(http.delete(f"{API}/apis/{api_id}", headers=h), 404)


def test_an_api_without_scopes_and_scopes_added_and_removed_one_by_one(http, manager):
    h = manager.headers()
    api_id = create(http, manager)["api_id"]
    added = http.post(f"{API}/apis/{api_id}/scopes", json={"name": "orders/read", "description": "Read"}, headers=h)
    assert added.status_code == 201 and added.get_json() == {"name": "orders/read", "description": "Read"}
    assert http.post(f"{API}/apis/{api_id}/scopes", json={"name": "x"}, headers=h).status_code == 201
    assert stored_apis(manager.org_id)[0][2] == {"orders/read": "Read", "x": ""}
    # A scope-token may hold "/": the path takes it whole, raw or percent-encoded.
    assert http.delete(f"{API}/apis/{api_id}/scopes/orders/read", headers=h).status_code == 204
    assert http.delete(f"{API}/apis/{api_id}/scopes/x", headers=h).status_code == 204
    assert stored_apis(manager.org_id)[0][2] == {}
    assert_problem(http.delete(f"{API}/apis/{api_id}/scopes/x", headers=h), 404)
    assert http.post(f"{API}/apis/{api_id}/scopes", json={"name": "a/b"}, headers=h).status_code == 201
    assert http.delete(f"{API}/apis/{api_id}/scopes/a%2Fb", headers=h).status_code == 204


def test_patch_replaces_the_scopes_and_removes_dropped_ones_from_every_grant(http, manager):
    h = manager.headers()
    api_id = create(http, manager, scopes=ORDERS_SCOPES)["api_id"]
    client_id = manager.tenant.client_id
    assert http.put(f"{API}/clients/{client_id}/grants/{api_id}", json={"scope": "orders:read orders:write"},
                    headers=h).status_code == 200
    response = http.patch(f"{API}/apis/{api_id}", json={"scopes": [{"name": "orders:write", "description": "Write"},
                                                                   {"name": "orders:ship"}]}, headers=h)
    assert response.status_code == 200
    assert response.get_json()["scopes"] == [{"name": "orders:ship", "description": ""},
                                             {"name": "orders:write", "description": "Write"}]
    assert stored_apis(manager.org_id)[0][2] == {"orders:ship": "", "orders:write": "Write"}
    assert stored_grants(client_id)[api_id][0] == "orders:write"


@pytest.mark.parametrize("identifier", [
    "orders",                                   # no scheme: not an absolute URI
    "https://api.acme.test/orders#v1",          # a fragment (RFC 8707 §2)
    "https:///orders",                          # http(s) without a host
    "https://api.acme.test/a b",                # a space
    "",
    "https://api.acme.test/" + "x" * 256,       # too long
    ISSUER + "/api/v2",                         # below the issuer: reserved for platform APIs
    ISSUER,
])
def test_identifiers_that_are_not_absolute_uris_without_fragment_are_400(http, manager, identifier):
    before = len(events(manager.org_id))
    response = http.post(f"{API}/apis", json={"name": "Bad", "identifier": identifier}, headers=manager.headers())
    body = assert_problem(response, 400, field="identifier")
    assert body["type"].endswith("#problem-invalid-input")
    assert stored_apis(manager.org_id) == [] and len(events(manager.org_id)) == before


def test_a_duplicate_identifier_is_409_in_the_same_and_in_another_organization(http, manager, other_manager):
    create(http, manager, scopes=ORDERS_SCOPES)
    before = len(events(manager.org_id))
    again = http.post(f"{API}/apis", json={"name": "Twin", "identifier": ORDERS}, headers=manager.headers())
    body = assert_problem(again, 409, field="identifier")
    assert body["type"].endswith("#problem-conflict") and "unique" in body["detail"]
    elsewhere = http.post(f"{API}/apis", json={"name": "Twin", "identifier": ORDERS}, headers=other_manager.headers())
    assert_problem(elsewhere, 409, field="identifier")
    assert [a[1] for a in stored_apis(manager.org_id)] == ["Orders"] and stored_apis(other_manager.org_id) == []
    assert len(events(manager.org_id)) == before


def race(app, monkeypatch, check_name: str, method: str, paths_and_bodies: list[tuple[str, dict]], headers: dict):
    """Send the requests from threads, each on its own app (engine and connections, like a worker
    process) on the one database (the SQLite file, or PostgreSQL when the suite has one). The service
    function `check_name` of the apis services is made to wait until every request has passed it, so
    all of them pass the friendly check before any writes: the database's constraints decide."""
    barrier = threading.Barrier(len(paths_and_bodies), timeout=10)
    check = getattr(api_service, check_name)

    def check_then_wait(*args, **kwargs):
        result = check(*args, **kwargs)
        barrier.wait()
        return result

    monkeypatch.setattr(api_service, check_name, check_then_wait)
    settings = app.extensions["authserver.settings"]
    same = {"instance_path": app.instance_path, "issuer": ISSUER, "database_url": settings.database_url}
    apps = [create_app(same) for _ in paths_and_bodies]

    def call(index: int):
        path, body = paths_and_bodies[index]
        response = apps[index].test_client().open(path, method=method, json=body, headers=headers)
        return response.status_code, response.get_json(silent=True)

    try:
        with ThreadPoolExecutor(max_workers=len(apps)) as pool:
            return list(pool.map(call, range(len(apps)), timeout=60))
    finally:
        for worker_app in apps:
            with worker_app.app_context():
                db.engine.dispose()


def test_two_concurrent_registrations_of_one_identifier_give_one_api_and_one_409(app, manager, monkeypatch):
    requests = [(f"{API}/apis", {"name": f"Racer {i}", "identifier": ORDERS}) for i in range(2)]
    results = race(app, monkeypatch, "_check_identifier_free", "POST", requests, manager.headers())
    assert sorted(status for status, _ in results) == [201, 409], results
    loser = next(body for status, body in results if status == 409)
    assert loser["field"] == "identifier" and loser["type"].endswith("#problem-conflict")
    assert len(stored_apis(manager.org_id)) == 1
    assert len(events(manager.org_id, "api.created")) == 1


def test_two_concurrent_first_grants_give_one_grant_and_never_a_500(app, manager, monkeypatch):
    api_id = create(http=app.test_client(), manager=manager, scopes=ORDERS_SCOPES)["api_id"]
    url = f"{API}/clients/{manager.tenant.client_id}/grants/{api_id}"
    requests = [(url, {"scope": "orders:read"}), (url, {"scope": "orders:write"})]
    granted_before = len(events(manager.org_id, "client.granted"))
    results = race(app, monkeypatch, "_grant_scope", "PUT", requests, manager.headers())
    # Both read "no grant yet" and insert ([200, 409]), or the second reads after the first committed and
    # replaces its scopes ([200, 200]): either way one grant, never a 500.
    statuses = sorted(status for status, _ in results)
    assert statuses in ([200, 409], [200, 200]), results
    assert stored_grants(manager.tenant.client_id)[api_id][0] in {"orders:read", "orders:write"}
    assert len(events(manager.org_id, "client.granted")) == granted_before + 1
    assert len(events(manager.org_id, "client.grant_updated")) == statuses.count(200) - 1


@pytest.mark.parametrize("scope", ['bad"quote', "with space", "back\\slash", "", "café", "tab\there", "x" * 65])
def test_scope_names_outside_rfc_6749_are_400_everywhere(http, manager, scope):
    h = manager.headers()
    before = len(events(manager.org_id))
    created = http.post(f"{API}/apis", json={"name": "Orders", "identifier": ORDERS,
                                             "scopes": [{"name": "ok"}, {"name": scope}]}, headers=h)
    assert_problem(created, 400, field="scopes")
    assert stored_apis(manager.org_id) == [] and len(events(manager.org_id)) == before

    api_id = create(http, manager, scopes=[{"name": "ok"}])["api_id"]
    before = len(events(manager.org_id))
    assert_problem(http.post(f"{API}/apis/{api_id}/scopes", json={"name": scope}, headers=h), 400, field="name")
    patched = http.patch(f"{API}/apis/{api_id}", json={"name": "Renamed", "scopes": [{"name": scope}]}, headers=h)
    assert_problem(patched, 400, field="scopes")
    assert stored_apis(manager.org_id) == [(ORDERS, "Orders", {"ok": ""})]  # the name did not change either
    assert len(events(manager.org_id)) == before


def test_a_scope_listed_twice_is_400_and_a_scope_added_twice_is_409(http, manager):
    h = manager.headers()
    twice = http.post(f"{API}/apis", json={"name": "Orders", "identifier": ORDERS,
                                           "scopes": [{"name": "a"}, {"name": "a", "description": "again"}]}, headers=h)
    assert "twice" in assert_problem(twice, 400, field="scopes")["detail"]
    api_id = create(http, manager, scopes=[{"name": "a", "description": "first"}])["api_id"]
    again = http.post(f"{API}/apis/{api_id}/scopes", json={"name": "a", "description": "second"}, headers=h)
    assert_problem(again, 409, field="name")
    assert stored_apis(manager.org_id)[0][2] == {"a": "first"}


def test_a_scope_description_must_be_one_short_line(http, manager):
    h = manager.headers()
    api_id = create(http, manager)["api_id"]
    for description in ("two\nlines", "d" * 501):
        response = http.post(f"{API}/apis/{api_id}/scopes", json={"name": "a", "description": description}, headers=h)
        assert_problem(response, 400)
    assert stored_apis(manager.org_id)[0][2] == {}


def test_the_identifier_cannot_change(http, manager):
    api_id = create(http, manager)["api_id"]
    response = http.patch(f"{API}/apis/{api_id}", json={"name": "New", "identifier": "https://api.acme.test/v2"},
                          headers=manager.headers())
    body = assert_problem(response, 400, field="identifier")
    assert "cannot change" in body["detail"]
    assert stored_apis(manager.org_id) == [(ORDERS, "Orders", {})]


@pytest.mark.parametrize("payload,field", [
    ({"identifier": ORDERS}, "name"),
    ({"name": "Orders"}, "identifier"),
    ({"name": "Orders", "identifier": ORDERS, "scopes": "a b"}, "scopes"),
    ({"name": "Orders", "identifier": ORDERS, "scopes": [{"name": "a", "colour": "red"}]}, "scopes.0.colour"),
    ({"name": "Orders", "identifier": ORDERS, "open_to_all": True}, "open_to_all"),
    ({"name": "Orders", "identifier": ORDERS, "org_id": None}, "org_id"),
])
def test_schema_violations_are_422_and_nothing_is_stored(http, manager, payload, field):
    response = http.post(f"{API}/apis", json=payload, headers=manager.headers())
    assert_problem(response, 422, field=field)
    assert stored_apis(manager.org_id) == []


def test_platform_apis_are_read_only_403(http, manager):
    """The management API and the `default` API are open to every organization: visible, unchangeable."""
    h = manager.headers()
    for api in (platform_api(), platform_api(api_service.BUILTIN_DEFAULT)):
        scopes_before = sorted(s.name for s in api_service.scopes_of(api))
        shown = http.get(f"{API}/apis/{api.api_id}", headers=h)
        assert shown.status_code == 200 and shown.get_json()["editable"] is False
        attempts = [
            ("PATCH", f"/apis/{api.api_id}", {"json": {"name": "Mine now"}}),
            ("PATCH", f"/apis/{api.api_id}", {"json": {"scopes": []}}),
            ("DELETE", f"/apis/{api.api_id}?force=true", {}),
            ("POST", f"/apis/{api.api_id}/scopes", {"json": {"name": "planted"}}),
            ("DELETE", f"/apis/{api.api_id}/scopes/{scopes_before[0] if scopes_before else 'read'}", {}),
            ("PUT", f"/apis/{api.api_id}/clients/{manager.tenant.client_id}", {}),
            ("DELETE", f"/apis/{api.api_id}/clients/{manager.tenant.client_id}", {}),
        ]
        for method, path, kwargs in attempts:
            body = assert_problem(http.open(API + path, method=method, headers=h, **kwargs), 403)
            assert body["type"].endswith("#problem-forbidden") and "operator" in body["detail"], (method, path)
        db.session.expire_all()
        stored = db.session.get(Api, api.api_id)
        assert stored is not None and stored.name == api.name
        assert sorted(s.name for s in api_service.scopes_of(stored)) == scopes_before
        assert db.session.scalars(select(ApiClient).where(ApiClient.api_id == api.api_id)).all() == []


def test_a_platform_api_is_visible_only_while_open_to_the_organization(http, manager, other_manager):
    search = api_service.create_api("Search", "https://search.platform.test/", scopes=["search"])
    h = manager.headers()
    listed = lambda: {item["api_id"] for item in http.get(f"{API}/apis", headers=h).get_json()["items"]}  # noqa: E731
    assert search.api_id not in listed()
    assert_problem(http.get(f"{API}/apis/{search.api_id}", headers=h), 404)
    assert_problem(http.put(f"{API}/clients/{manager.tenant.client_id}/grants/{search.api_id}",
                            json={"scope": "search"}, headers=h), 404)
    api_service.open_api(search.api_id, manager.org_id)
    assert search.api_id in listed()
    assert http.get(f"{API}/apis/{search.api_id}", headers=h).get_json()["owner"] == "platform"
    assert http.put(f"{API}/clients/{manager.tenant.client_id}/grants/{search.api_id}", json={"scope": "search"},
                    headers=h).status_code == 200
    # Opened to one organization, not to the others.
    assert_problem(http.get(f"{API}/apis/{search.api_id}", headers=other_manager.headers()), 404)
    api_service.close_api(search.api_id, manager.org_id)
    assert search.api_id not in listed()


def test_another_organizations_api_is_404_and_not_listed(http, manager, other_manager):
    theirs = create(http, other_manager, identifier="https://api.globex.test/stock", scopes=[{"name": "stock"}])
    h = manager.headers()
    assert theirs["api_id"] not in {i["api_id"] for i in http.get(f"{API}/apis", headers=h).get_json()["items"]}
    for method, path, kwargs in [
        ("GET", "", {}), ("PATCH", "", {"json": {"name": "Taken"}}), ("DELETE", "?force=true", {}),
        ("POST", "/scopes", {"json": {"name": "planted"}}), ("DELETE", "/scopes/stock", {}),
        ("PUT", f"/clients/{manager.tenant.client_id}", {}),
    ]:
        assert_problem(http.open(f"{API}/apis/{theirs['api_id']}{path}", method=method, headers=h, **kwargs), 404)
    grant = http.put(f"{API}/clients/{manager.tenant.client_id}/grants/{theirs['api_id']}", json={"scope": "stock"},
                     headers=h)
    assert_problem(grant, 404)
    assert stored_apis(other_manager.org_id) == [("https://api.globex.test/stock", "Orders", {"stock": ""})]
    assert theirs["api_id"] not in stored_grants(manager.tenant.client_id)


# --- deletion ---------------------------------------------------------------------------------

def test_deleting_an_api_that_clients_have_access_to_is_409_until_forced(http, manager):
    h = manager.headers()
    api_id = create(http, manager, scopes=ORDERS_SCOPES)["api_id"]
    client_id = manager.tenant.client_id
    http.put(f"{API}/clients/{client_id}/grants/{api_id}", json={"scope": ["orders:read"]}, headers=h)
    token = get_token(http, manager.tenant, resource=ORDERS)["access_token"]
    assert introspect(http, token, manager.tenant.auth())["active"] is True

    refused = http.delete(f"{API}/apis/{api_id}", headers=h)
    body = assert_problem(refused, 409)
    assert body["detail"].startswith("1 client(s) hold access") and "force" in body["detail"]
    assert api_id in stored_grants(client_id) and len(stored_apis(manager.org_id)) == 1
    assert_problem(http.delete(f"{API}/apis/{api_id}?force=false", headers=h), 409)
    assert_problem(http.delete(f"{API}/apis/{api_id}?force=maybe", headers=h), 422, field="force")

    assert http.delete(f"{API}/apis/{api_id}?force=true", headers=h).status_code == 204
    assert stored_apis(manager.org_id) == [] and api_id not in stored_grants(client_id)
    assert introspect(http, token, manager.tenant.auth()) == {"active": False}  # its live tokens are revoked
    (event,) = events(manager.org_id, "api.deleted")
    assert f'"removed_grants": ["{client_id}"]' in event.details and '"revoked_tokens": 1' in event.details


# --- API access (grants) ----------------------------------------------------------------------

def test_grant_list_replace_and_remove_access_and_get_tokens_with_it(http, manager):
    h = manager.headers()
    api_id = create(http, manager, scopes=ORDERS_SCOPES)["api_id"]
    client_id = manager.tenant.client_id
    url = f"{API}/clients/{client_id}/grants/{api_id}"

    granted = http.put(url, json={"scope": "orders:write orders:read"}, headers=h)
    assert granted.status_code == 200
    assert granted.get_json() == {"api_id": api_id, "identifier": ORDERS, "name": "Orders",
                                  "scope": "orders:read orders:write", "default": False}
    assert stored_grants(client_id)[api_id] == ("orders:read orders:write", False)  # it had a default already
    listed = http.get(f"{API}/clients/{client_id}/grants", headers=h).get_json()["items"]
    assert granted.get_json() in listed and listed[0]["default"] is True  # the default API first

    body = get_token(http, manager.tenant, resource=ORDERS, scope="orders:read")
    claims = unverified_claims(body["access_token"])
    assert claims["aud"] == ORDERS and claims["scope"] == "orders:read" and claims["org_id"] == manager.org_id

    replaced = http.put(url, json={"scope": ["orders:read"], "default": True}, headers=h)
    assert replaced.status_code == 200 and replaced.get_json()["default"] is True
    grants = stored_grants(client_id)
    assert grants[api_id] == ("orders:read", True)
    assert [is_default for api, (_, is_default) in grants.items() if api != api_id] == [False] * (len(grants) - 1)
    no_resource = unverified_claims(get_token(http, manager.tenant, scope="orders:read")["access_token"])
    assert no_resource["aud"] == ORDERS  # the default API now

    assert http.delete(url, headers=h).status_code == 204
    assert api_id not in stored_grants(client_id)
    assert_problem(http.delete(url, headers=h), 404)
    # No new token for the API; the one already issued stays valid until it expires.
    assert introspect(http, body["access_token"], manager.tenant.auth())["active"] is True
    refused = http.post("/oauth/token", data=manager.tenant.token_form(resource=ORDERS), headers=manager.tenant.auth())
    assert refused.status_code == 400 and refused.get_json()["error"] == "invalid_target"


def test_a_grant_of_scopes_the_api_does_not_define_is_400_and_changes_nothing(http, manager):
    h = manager.headers()
    api_id = create(http, manager, scopes=ORDERS_SCOPES)["api_id"]
    client_id = manager.tenant.client_id
    url = f"{API}/clients/{client_id}/grants/{api_id}"
    assert http.put(url, json={"scope": "orders:read"}, headers=h).status_code == 200
    before = stored_grants(client_id), len(events(manager.org_id))
    for scope in ("orders:read orders:delete", ["manage"], "bad\"scope", ["a b"], "tab\tscope"):
        assert_problem(http.put(url, json={"scope": scope}, headers=h), 400, field="scope")
    assert (stored_grants(client_id), len(events(manager.org_id))) == before
    wrong_type = assert_problem(http.put(url, json={"scope": 5}, headers=h), 422)
    assert {e["field"] for e in wrong_type["errors"]} == {"scope.str", "scope.list[str]"}  # either shape would do
    assert_problem(http.put(url, json={"scope": "orders:read", "default": "yes"}, headers=h), 422, field="default")
    assert_problem(http.put(url, json={}, headers=h), 422, field="scope")
    assert stored_grants(client_id) == before[0]


def test_access_across_organizations_is_404(http, manager, other_manager):
    h = manager.headers()
    mine = create(http, manager, scopes=ORDERS_SCOPES)["api_id"]
    theirs = create(http, other_manager, identifier="https://api.globex.test/stock",
                    scopes=[{"name": "stock"}])["api_id"]
    own_client, their_client = manager.tenant.client_id, other_manager.tenant.client_id
    before = stored_grants(own_client), stored_grants(their_client)
    for client_id, api_id in [(own_client, theirs), (their_client, mine), (their_client, theirs)]:
        url = f"{API}/clients/{client_id}/grants/{api_id}"
        assert_problem(http.put(url, json={"scope": ""}, headers=h), 404)
        assert_problem(http.delete(url, headers=h), 404)
    assert_problem(http.get(f"{API}/clients/{their_client}/grants", headers=h), 404)
    assert (stored_grants(own_client), stored_grants(their_client)) == before


def test_a_platform_api_open_to_the_organization_can_be_granted(http, manager):
    default_api = platform_api(api_service.BUILTIN_DEFAULT)
    client = register_client(manager.org_id, "Reporting")
    url = f"{API}/clients/{client.client_id}/grants/{default_api.api_id}"
    response = http.put(url, json={"scope": "read"}, headers=manager.headers())
    assert response.status_code == 200
    assert response.get_json() == {"api_id": default_api.api_id, "identifier": ISSUER, "name": default_api.name,
                                   "scope": "read", "default": True}  # its first grant becomes its default
    assert stored_grants(client.client_id) == {default_api.api_id: ("read", True)}


# --- the API's own clients ----------------------------------------------------------------------

def test_bind_and_unbind_the_apis_own_client_which_then_introspects_its_tokens(http, manager, other_manager):
    h = manager.headers()
    api_id = create(http, manager, scopes=ORDERS_SCOPES)["api_id"]
    http.put(f"{API}/clients/{manager.tenant.client_id}/grants/{api_id}", json={"scope": "orders:read"}, headers=h)
    server = register_client(manager.org_id, "Orders service")
    server_auth = basic(server.client_id, add_secret(server.client_id).client_secret)
    token = get_token(http, manager.tenant, resource=ORDERS)["access_token"]
    assert introspect(http, token, server_auth) == {"active": False}

    url = f"{API}/apis/{api_id}/clients/{server.client_id}"
    assert http.put(url, headers=h).status_code == 204
    assert http.put(url, headers=h).status_code == 204  # idempotent
    assert http.get(f"{API}/apis/{api_id}", headers=h).get_json()["clients"] == [server.client_id]
    answer = introspect(http, token, server_auth)
    assert answer["active"] is True and answer["aud"] == ORDERS and answer["scope"] == "orders:read"

    assert_problem(http.put(f"{API}/apis/{api_id}/clients/{other_manager.tenant.client_id}", headers=h), 404)
    assert_problem(http.delete(f"{API}/apis/{api_id}/clients/{other_manager.tenant.client_id}", headers=h), 404)

    assert http.delete(url, headers=h).status_code == 204
    assert_problem(http.delete(url, headers=h), 404)
    assert http.get(f"{API}/apis/{api_id}", headers=h).get_json()["clients"] == []
    assert introspect(http, token, server_auth) == {"active": False}
    assert [e.action for e in events(manager.org_id) if e.action.startswith("api.client")] == [
        "api.client_bound", "api.client_unbound"]


# --- audit --------------------------------------------------------------------------------------

def test_every_change_is_in_the_audit_log_with_the_caller(http, manager):
    h = manager.headers()
    env = {"REMOTE_ADDR": "203.0.113.9"}
    api_id = http.post(f"{API}/apis", json={"name": "Orders", "identifier": ORDERS, "scopes": ORDERS_SCOPES},
                       headers=h, environ_base=env).get_json()["api_id"]
    http.patch(f"{API}/apis/{api_id}", json={"name": "Orders 2"}, headers=h, environ_base=env)
    http.post(f"{API}/apis/{api_id}/scopes", json={"name": "orders:ship"}, headers=h, environ_base=env)
    http.delete(f"{API}/apis/{api_id}/scopes/orders:ship", headers=h, environ_base=env)
    cid = manager.tenant.client_id
    http.put(f"{API}/apis/{api_id}/clients/{cid}", headers=h, environ_base=env)
    http.delete(f"{API}/apis/{api_id}/clients/{cid}", headers=h, environ_base=env)
    http.put(f"{API}/clients/{cid}/grants/{api_id}", json={"scope": "orders:read"}, headers=h, environ_base=env)
    http.put(f"{API}/clients/{cid}/grants/{api_id}", json={"scope": ""}, headers=h, environ_base=env)
    http.delete(f"{API}/clients/{cid}/grants/{api_id}", headers=h, environ_base=env)
    assert http.delete(f"{API}/apis/{api_id}", headers=h, environ_base=env).status_code == 204

    items = http.get(f"{API}/audit-events", headers=h).get_json()["items"]
    mine = [e for e in reversed(items) if e["ip_address"] == "203.0.113.9"]
    assert [(e["action"], e["object_id"]) for e in mine] == [
        ("api.created", api_id), ("api.updated", api_id), ("api.scope_added", api_id), ("api.scope_removed", api_id),
        ("api.client_bound", api_id), ("api.client_unbound", api_id), ("client.granted", cid),
        ("client.grant_updated", cid), ("client.ungranted", cid), ("api.deleted", api_id),
    ]
    assert all(e["actor"] == manager.user_id for e in mine)
    assert mine[0]["details"]["identifier"] == ORDERS
    assert mine[0]["details"]["scopes"] == ["orders:read", "orders:write"]
    assert mine[6]["details"]["scope"] == "orders:read" and mine[7]["details"]["scope"] == ""


def test_odd_api_ids_are_404(http, manager):
    for api_id in ("nope", "x" * 300, "a\x00b", "%00", ORDERS.replace("/", "%2F")):
        assert_problem(http.get(f"{API}/apis/{api_id}", headers=manager.headers()), 404)
