"""Console APIs (SPEC §8, §9): the organization's APIs and their scopes, the platform APIs open to it
(read-only), the API's own apps, deletion that says what goes; and each app's API access, chosen with
checkboxes. Every refusal is shown like the other console errors and stores nothing."""
import re
from urllib.parse import unquote

import pytest
from sqlalchemy import func, select

from authserver.extensions import db
from authserver.models import Api, ApiClient, ApiScope, AuditEvent, ClientGrant
from authserver.services import apis
from authserver.services.clients import register_client

from ..conftest import get_token, make_tenant
from ..console_support import make_admin, page_forms, signed_in

ORDERS = "https://api.acme.test/orders"
NEW_API = "/console/apis/new"
HOSTILE = '<script>alert("x")</script>'


def text(response) -> str:
    return response.get_data(as_text=True)


def stored(api_id: str) -> tuple | None:
    """An API as stored: (name, identifier, {scope: description}), or None."""
    db.session.expire_all()
    api = db.session.get(Api, api_id)
    if api is None:
        return None
    return api.name, api.identifier, {s.name: s.description for s in apis.scopes_of(api)}


def grants_of(client_id: str) -> dict:
    db.session.expire_all()
    return {g.api_id: (g.scope, g.is_default)
            for g in db.session.scalars(select(ClientGrant).where(ClientGrant.client_id == client_id))}


def counts() -> dict:
    db.session.expire_all()
    return {m.__name__: db.session.scalar(select(func.count()).select_from(m))
            for m in (Api, ApiScope, ClientGrant, ApiClient, AuditEvent)}


def flashes(html: str) -> list[str]:
    return re.findall(r'<div class="notice notice-\w+" role="\w+">([^<]*)</div>', html)


def register_api(console, name="Orders", identifier=ORDERS, scopes="orders:read = Read orders\norders:write"):
    return console.submit(NEW_API, NEW_API, {"name": name, "identifier": identifier, "scopes": scopes})


@pytest.fixture
def orders(console, console_admin):
    """The organization's Orders API with two scopes, registered through the console."""
    response = register_api(console)
    assert response.status_code == 303, text(response)[:500]
    return response.headers["Location"].rsplit("/", 1)[1]


@pytest.fixture
def globex(app):
    """Another organization with an app and an API of its own, the app holding access to it."""
    tenant = make_tenant("Globex")
    api = apis.create_api("Stock", "https://api.globex.test/stock", org_id=tenant.org_id, scopes=["stock:read"])
    apis.grant_client(tenant.client_id, api.api_id, "stock:read")
    apis.bind_client(api.api_id, tenant.client_id)
    tenant.extra["api_id"] = api.api_id
    return tenant


# --- the APIs page ----------------------------------------------------------------------------

def test_the_apis_page_is_in_the_nav_and_lists_the_platform_apis_read_only(console):
    html = text(console.get("/console/apis"))
    assert '<a href="/console/apis" aria-current="page">APIs</a>' in html
    assert "No APIs of Acme yet" in html and f'href="{NEW_API}"' in html
    platform = html.split("Platform APIs", 1)[1]
    assert "Management API" in platform and "http://localhost/api/v1" in platform and "Read-only" in platform
    assert 'href="/console/apis"' in text(console.get("/console/apps"))  # in the nav of every page


def test_register_an_api_with_scopes_one_per_line(console, console_admin, orders):
    assert stored(orders) == ("Orders", ORDERS, {"orders:read": "Read orders", "orders:write": ""})
    assert db.session.get(Api, orders).org_id == console_admin.org_id
    page = text(console.get(f"/console/apis/{orders}"))
    assert "Registered “Orders”" in page
    assert f'value="{ORDERS}"' in page and 'data-copy-target="api-identifier"' in page
    assert "orders:read" in page and "Read orders" in page
    listing = text(console.get("/console/apis")).split("Platform APIs")[0]
    assert "Orders" in listing and ORDERS in listing and "orders:write" in listing
    event = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "api.created")).one()
    assert event.actor == console_admin.account_id and event.org_id == console_admin.org_id


def test_blank_lines_and_spaces_around_scopes_are_ignored(console):
    response = register_api(console, scopes="\n  a  \n\n b = one = two \n")
    api_id = response.headers["Location"].rsplit("/", 1)[1]
    assert stored(api_id)[2] == {"a": "", "b": "one = two"}


@pytest.mark.parametrize("fields,field,status,message", [
    ({"identifier": "orders"}, "identifier", 400, "absolute URI"),
    ({"identifier": ORDERS + "#v1"}, "identifier", 400, "fragment"),
    ({"identifier": ""}, "identifier", 400, "required"),
    ({"name": "  "}, "name", 400, "required"),
    ({"scopes": "orders read"}, "scopes", 400, "RFC 6749"),
    ({"scopes": 'bad"quote'}, "scopes", 400, "RFC 6749"),
    ({"scopes": "a\na = again"}, "scopes", 400, "twice"),
    ({"scopes": "= no name"}, "scopes", 400, "RFC 6749"),
])
def test_register_refusals_show_on_the_field_and_store_nothing(console, fields, field, status, message):
    form = {"name": "Orders", "identifier": ORDERS, "scopes": "orders:read", **fields}
    before = counts()
    response = console.submit(NEW_API, NEW_API, form)
    assert response.status_code == status
    html = text(response)
    error = re.search(rf'<p class="field-error" id="{field}-error">([^<]*)</p>', html)
    assert error and message in error.group(1), html[:3000]
    assert 'aria-invalid="true"' in html
    assert counts() == before
    if form["identifier"]:  # what was typed stays in the form
        assert f'value="{form["identifier"]}"' in html


def test_a_duplicate_identifier_is_refused_even_when_another_organization_has_it(console, orders, globex):
    before = counts()
    for identifier in (ORDERS, "https://api.globex.test/stock"):
        response = register_api(console, name="Twin", identifier=identifier)
        assert response.status_code == 409
        assert "already exists" in text(response)
    assert counts() == before


def test_rename_an_api_and_a_refused_name(console, orders):
    page = f"/console/apis/{orders}"
    response = console.submit(page, page + "/rename", {"name": "Order service"})
    assert response.status_code == 303 and response.headers["Location"] == page
    assert stored(orders)[0] == "Order service"
    assert "Renamed the API “Order service”." in flashes(text(console.get(page)))
    refused = console.submit(page, page + "/rename", {"name": "x" * 101})
    assert refused.status_code == 400 and "at most 100 characters" in text(refused)
    assert stored(orders)[0] == "Order service"


def test_add_and_remove_scopes(console, console_admin, orders):
    page = f"/console/apis/{orders}"
    client = register_client(console_admin.org_id, "Billing")
    apis.grant_client(client.client_id, orders, "orders:read orders:write")
    added = console.submit(page, page + "/scopes", {"name": " orders:ship ", "description": "Ship orders"})
    assert added.status_code == 303 and added.headers["Location"] == page + "#scopes"
    assert stored(orders)[2]["orders:ship"] == "Ship orders"

    for data, field, status in [({"name": "orders:ship", "description": ""}, "name", 409),
                                ({"name": "bad scope", "description": ""}, "name", 400),
                                ({"name": "ok", "description": "d" * 501}, "description", 400)]:
        before = counts()
        refused = console.submit(page, page + "/scopes", data)
        assert refused.status_code == status, data
        assert re.search(rf'id="{field}-error">[^<]+<', text(refused)), data  # the message, on its field
        assert counts() == before

    remove = f"{page}/scopes/orders:write/delete"
    confirm = console.get(remove)  # without scripts, the trash can leads to a confirmation page
    assert confirm.status_code == 200 and "every app that may ask for it loses it" in text(confirm)
    assert stored(orders)[2].keys() == {"orders:read", "orders:write", "orders:ship"}
    removed = console.submit(remove, remove)
    assert removed.status_code == 303 and removed.headers["Location"] == page + "#scopes"
    assert stored(orders)[2].keys() == {"orders:read", "orders:ship"}
    assert grants_of(client.client_id)[orders][0] == "orders:read"  # gone from the app's access too
    assert console.get(remove).status_code == 404


def test_scope_names_with_slashes_and_reserved_characters_can_be_removed(console, orders):
    page = f"/console/apis/{orders}"
    for name in ("orders/read", "a?b#c%d"):
        assert console.submit(page, page + "/scopes", {"name": name, "description": ""}).status_code == 303
        (form,) = [f for f in page_forms(text(console.get(page)))
                   if f.method == "post" and unquote(f.action) == f"{page}/scopes/{name}/delete"]
        assert console.get(form.action).status_code == 200  # the confirmation page finds it too
        assert console.post(form.action, data=form.fields).status_code == 303
        assert name not in stored(orders)[2]


def test_bind_and_unbind_the_apis_own_app(console, console_admin, orders, globex):
    page = f"/console/apis/{orders}"
    server = register_client(console_admin.org_id, "Orders service")
    html = text(console.get(page))
    options = re.findall(r'<option value="([0-9a-f]{32})">', html)
    assert options == [server.client_id]  # only this organization's apps are offered
    response = console.submit(page, page + "/clients", {"client_id": server.client_id})
    assert response.status_code == 303 and response.headers["Location"] == page + "#own-apps"
    assert apis.bound_clients(db.session.get(Api, orders)) == [server.client_id]
    assert "may introspect the API" in text(console.get(page))

    unbind = f"{page}/clients/{server.client_id}/delete"
    assert "introspect as inactive" in text(console.get(unbind))
    assert console.submit(unbind, unbind).status_code == 303
    assert apis.bound_clients(db.session.get(Api, orders)) == []
    assert console.get(unbind).status_code == 404


def test_the_platform_apis_page_is_read_only(console):
    default = apis.builtin_api(apis.BUILTIN_DEFAULT)
    html = text(console.get(f"/console/apis/{default.api_id}"))
    assert "read-only" in html and default.identifier in html
    assert [f for f in page_forms(html) if f.method == "post" and "/console/apis/" in f.action] == []


# --- deletion ---------------------------------------------------------------------------------

def test_the_delete_dialog_says_which_apps_lose_access_and_that_tokens_are_revoked(http, console, console_admin,
                                                                                  orders):
    billing = make_tenant_in(console_admin.org_id, "Billing", orders)
    register_client(console_admin.org_id, "Unrelated")
    token = get_token(http, billing, resource=ORDERS)["access_token"]
    page = f"/console/apis/{orders}"
    html = text(console.get(page))
    dialog = html.split('id="delete-api"', 1)[1].split("</dialog>", 1)[0]
    assert "The access of 1 app goes with it: “Billing”." in dialog
    assert "Every live access token for it is revoked at once (1 now)." in dialog and "Unrelated" not in dialog
    assert f'name="confirmed_apps" value="{billing.client_id}"' in dialog

    # An app given access after the dialog was shown: the confirmation no longer matches, nothing goes.
    late = register_client(console_admin.org_id, "Latecomer")
    form = console.form(page, page + "/delete")
    apis.grant_client(late.client_id, orders, "orders:read")
    stale = console.post(page + "/delete", data=form.fields)
    assert stale.status_code == 409
    assert "changed since you confirmed" in text(stale) and "The access of 2 apps goes with it" in text(stale)
    assert stored(orders) is not None and len(grants_of(late.client_id)) == 1

    confirmed = console.submit(page + "/delete", page + "/delete")  # the confirmation page, read again
    assert confirmed.status_code == 303 and confirmed.headers["Location"] == "/console/apis"
    assert stored(orders) is None
    assert grants_of(billing.client_id).get(orders) is None and grants_of(late.client_id) == {}
    introspected = http.post("/oauth/introspect", data={"token": token}, headers=billing.auth()).get_json()
    assert introspected == {"active": False}
    assert "Deleted the API “Orders”." in flashes(text(console.get("/console/apis")))


def test_an_api_nobody_has_access_to_is_deleted_without_force(console, orders):
    page = f"/console/apis/{orders}"
    assert "No app has access to it." in text(console.get(page + "/delete"))
    assert console.submit(page, page + "/delete").status_code == 303
    assert stored(orders) is None


def make_tenant_in(org_id: str, name: str, api_id: str):
    """An app of the organization with a secret and a key, holding access to the API (a Tenant)."""
    from cryptography.hazmat.primitives.asymmetric import ec

    from authserver.services.accounts import create_account
    from authserver.services.client_keys import add_key
    from authserver.services.client_secrets import add_secret

    from ..conftest import Tenant, public_pem

    client = register_client(org_id, name)
    apis.grant_client(client.client_id, api_id, "orders:read")
    secret = add_secret(client.client_id)
    key = ec.generate_private_key(ec.SECP256R1())
    add_key(client.client_id, public_pem(key), kid="k1")
    account = create_account(org_id, f"{name} worker", "service")
    return Tenant(org_id, account.account_id, client.client_id, secret.secret_id, secret.client_secret, "k1", key)


# --- an app's API access ----------------------------------------------------------------------

def test_an_apps_api_access_is_chosen_with_checkboxes_and_gets_tokens(http, console, console_admin, orders):
    tenant = make_tenant_in(console_admin.org_id, "Billing", orders)
    apis.ungrant_client(tenant.client_id, orders)
    page = f"/console/apps/{tenant.client_id}"
    html = text(console.get(page))
    section = html.split('id="access"', 1)[1].split('id="secrets"', 1)[0]
    assert section.index("Orders") < section.index("Management API")  # the organization's own APIs first
    assert 'name="scope" value="orders:read"' in section and "Read orders" in section
    assert " checked" not in section

    saved = console.submit(page, f"{page}/access/{orders}", {"scope": ["orders:read", "orders:write"]})
    assert saved.status_code == 303 and saved.headers["Location"] == page + "#access"
    assert grants_of(tenant.client_id) == {orders: ("orders:read orders:write", True)}  # its first: the default
    html = text(console.get(page))
    assert "“Billing” may ask for “Orders” with orders:read, orders:write. It is the app&#39;s default API." in html
    assert 'value="orders:read" checked' in html
    assert f'id="default-{orders}" name="default" value="1" checked' in html
    token = get_token(http, tenant, resource=ORDERS)
    assert token["scope"] == "orders:read orders:write"

    # Unchecking a scope and saving again replaces the access.
    response = console.submit(page, f"{page}/access/{orders}", {"scope": ["orders:write"], "default": "1"})
    assert response.status_code == 303
    assert grants_of(tenant.client_id) == {orders: ("orders:write", True)}

    # The default API moves to another API when its radio is chosen there.
    default_api = apis.builtin_api(apis.BUILTIN_DEFAULT)
    console.submit(page, f"{page}/access/{default_api.api_id}", {"scope": "read", "default": "1"})
    assert grants_of(tenant.client_id) == {orders: ("orders:write", False), default_api.api_id: ("read", True)}

    removed = console.submit(page, f"{page}/access/{orders}/remove")
    assert removed.status_code == 303 and removed.headers["Location"] == page + "#access"
    assert orders not in grants_of(tenant.client_id)
    assert "Removed the access of “Billing” to “Orders”." in text(console.get(page))
    again = console.post(f"{page}/access/{orders}/remove", data=console.form(page, f"{page}/access/{orders}").fields)
    assert again.status_code == 303
    assert "This client has no access to the API." in flashes(text(console.get(page)))


def test_a_forged_scope_is_refused_with_a_flash_and_nothing_changes(console, console_admin, orders):
    client = register_client(console_admin.org_id, "Billing")
    apis.grant_client(client.client_id, orders, "orders:read")
    page = f"/console/apps/{client.client_id}"
    before = counts()
    for scope in (["orders:read", "orders:delete"], ["manage"], ["two words"]):
        response = console.submit(page, f"{page}/access/{orders}", {"scope": scope})
        assert response.status_code == 303
        (message,) = flashes(text(console.get(page)))
        assert "scope" in message
    assert grants_of(client.client_id) == {orders: ("orders:read", True)}
    assert counts() == before


def test_an_app_registered_in_the_console_gets_a_token_once_given_access(http, console, console_admin, orders):
    """The path that once left console apps without any scope: register, give access, get a token."""
    response = console.submit("/console/apps/new", "/console/apps/new", {"name": "Fresh", "description": ""})
    client_id = response.headers["Location"].rsplit("/", 1)[1]
    page = f"/console/apps/{client_id}"
    console.submit(page, f"{page}/access/{orders}", {"scope": ["orders:read"]})
    assert grants_of(client_id) == {orders: ("orders:read", True)}


# --- isolation and CSRF -----------------------------------------------------------------------

def foreign_urls(globex) -> list[str]:
    api = f"/console/apis/{globex.extra['api_id']}"
    return [api, f"{api}/delete", f"{api}/scopes/stock:read/delete", f"{api}/clients/{globex.client_id}/delete"]


def test_another_orgs_apis_are_404_on_every_page(console, globex):
    for url in foreign_urls(globex):
        response = console.get(url)
        assert response.status_code == 404, url
        assert "Stock" not in text(response) and "Globex" not in text(response), url
    html = text(console.get("/console/apis"))
    assert "Stock" not in html and globex.extra["api_id"] not in html


def test_another_orgs_apis_and_apps_are_404_for_every_action_and_stay_untouched(console, console_admin, orders, globex):
    token = console.form(NEW_API, NEW_API).fields["csrf_token"]
    own_app = register_client(console_admin.org_id, "Mine").client_id
    their_api, their_app = f"/console/apis/{globex.extra['api_id']}", globex.client_id
    actions = {
        their_api + "/rename": {"name": "Taken"},
        their_api + "/scopes": {"name": "planted", "description": ""},
        their_api + "/scopes/stock:read/delete": {},
        their_api + "/clients": {"client_id": own_app},
        f"{their_api}/clients/{their_app}/delete": {},
        their_api + "/delete": {"confirmed_apps": their_app},
        f"/console/apis/{orders}/clients": {"client_id": their_app},             # their app, my API
        f"/console/apps/{own_app}/access/{globex.extra['api_id']}": {"scope": "stock:read"},  # my app, their API
        f"/console/apps/{own_app}/access/{globex.extra['api_id']}/remove": {},
        f"/console/apps/{their_app}/access/{orders}": {"scope": "orders:read"},    # their app, my API
        f"/console/apps/{their_app}/access/{globex.extra['api_id']}/remove": {},
    }
    before = counts()
    for url, data in actions.items():
        response = console.post(url, data={"csrf_token": token, **data})
        assert response.status_code == 404, url
        assert "Stock" not in text(response), url
    assert counts() == before
    assert stored(globex.extra["api_id"]) == ("Stock", "https://api.globex.test/stock", {"stock:read": ""})
    assert grants_of(their_app) != {} and grants_of(own_app) == {}


def test_a_platform_api_not_open_to_the_organization_is_404(console, console_admin):
    hidden = apis.create_api("Internal", "https://internal.platform.test/", scopes=["x"])
    client = register_client(console_admin.org_id, "Mine")
    assert console.get(f"/console/apis/{hidden.api_id}").status_code == 404
    token = console.form(NEW_API, NEW_API).fields["csrf_token"]
    page = f"/console/apps/{client.client_id}"
    assert console.post(f"{page}/access/{hidden.api_id}", data={"csrf_token": token, "scope": "x"}).status_code == 404
    assert "Internal" not in text(console.get(page))
    apis.open_api(hidden.api_id, console_admin.org_id)
    assert "Internal" in text(console.get(page))
    assert console.post(f"{page}/access/{hidden.api_id}", data={"csrf_token": token, "scope": "x"}).status_code == 303
    assert grants_of(client.client_id) == {hidden.api_id: ("x", True)}


@pytest.mark.parametrize("bad_token", [None, "forged-token-value"])
def test_every_api_post_without_a_valid_csrf_token_is_400_and_changes_nothing(console, console_admin, orders,
                                                                              bad_token):
    client = register_client(console_admin.org_id, "Mine")
    apis.grant_client(client.client_id, orders, "orders:read")
    apis.bind_client(orders, client.client_id)
    api, app_page = f"/console/apis/{orders}", f"/console/apps/{client.client_id}"
    actions = {
        NEW_API: {"name": "Forged", "identifier": "https://forged.test/", "scopes": ""},
        api + "/rename": {"name": "Forged"},
        api + "/scopes": {"name": "forged", "description": ""},
        api + "/scopes/orders:read/delete": {},
        api + "/clients": {"client_id": client.client_id},
        f"{api}/clients/{client.client_id}/delete": {},
        api + "/delete": {"confirmed_apps": client.client_id},
        f"{app_page}/access/{orders}": {"scope": "orders:write"},
        f"{app_page}/access/{orders}/remove": {},
    }
    before = counts()
    for url, data in actions.items():
        form = dict(data)
        if bad_token is not None:
            form["csrf_token"] = bad_token
        response = console.post(url, data=form)
        assert response.status_code == 400, url
        assert "This form has expired" in text(response), url
    assert counts() == before
    assert stored(orders)[0] == "Orders" and grants_of(client.client_id) == {orders: ("orders:read", True)}


def test_every_post_form_on_the_api_pages_has_a_csrf_token(console, console_admin, orders):
    client = register_client(console_admin.org_id, "Mine")
    apis.grant_client(client.client_id, orders, "orders:read")
    apis.bind_client(orders, client.client_id)
    pages = ["/console/apis", NEW_API, f"/console/apis/{orders}", f"/console/apis/{orders}/delete",
             f"/console/apis/{orders}/scopes/orders:read/delete",
             f"/console/apis/{orders}/clients/{client.client_id}/delete",
             f"/console/apps/{client.client_id}"]
    seen = 0
    for path in pages:
        response = console.get(path)
        assert response.status_code == 200, path
        for form in page_forms(text(response)):
            if form.method == "post":
                seen += 1
                assert form.fields.get("csrf_token"), (path, form.action)
    assert seen >= 12


def test_html_in_api_names_and_scope_descriptions_is_escaped(console, console_admin):
    response = register_api(console, name=HOSTILE, scopes=f"s = {HOSTILE}")
    api_id = response.headers["Location"].rsplit("/", 1)[1]
    client = register_client(console_admin.org_id, HOSTILE)
    apis.grant_client(client.client_id, api_id, "s")
    for path in ("/console/apis", f"/console/apis/{api_id}", f"/console/apis/{api_id}/delete",
                 f"/console/apps/{client.client_id}", "/console/audit"):
        html = text(console.get(path))
        assert "<script>alert" not in html, path
        assert "&lt;script&gt;alert(" in html or path == "/console/audit", path


def test_each_admin_sees_only_their_own_apis(app, console, orders, globex):
    globex_console = signed_in(app, make_admin(org_id=globex.org_id))
    assert "Stock" in text(globex_console.get("/console/apis"))
    assert "Orders" not in text(globex_console.get("/console/apis"))
    assert globex_console.get(f"/console/apis/{orders}").status_code == 404


def test_the_audit_log_shows_the_api_changes(console, orders):
    html = text(console.get("/console/audit"))
    assert "api.created" in html and ORDERS in html
