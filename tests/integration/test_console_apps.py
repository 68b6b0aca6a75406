"""Console apps: list, register (with icon checks), details, edit, delete, icon serving, escaping."""
import io

import pytest
from PIL import Image
from sqlalchemy import func, select

from authserver.extensions import db
from authserver.models import AccessToken, AuditEvent, Client
from authserver.services.apis import list_grants
from authserver.services.clients import get_client, register_client

from ..conftest import get_token, make_tenant
from ..console_support import png_bytes

NEW = "/console/apps/new"
HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>'


def client_count() -> int:
    return db.session.scalar(select(func.count()).select_from(Client))


def register(console, name="Billing backend", description="", icon: bytes | None = None, filename="icon.png"):
    files = {"icon": (filename, icon)} if icon is not None else None
    return console.submit(NEW, NEW, {"name": name, "description": description}, files=files)


def text(response) -> str:
    return response.get_data(as_text=True)


def test_empty_state_invites_to_register_an_app(console):
    html = text(console.get("/console/apps"))
    assert "No apps yet" in html
    assert 'href="/console/apps/new"' in html


def test_register_an_app_with_icon_and_description(console, console_admin):
    response = register(console, "Billing backend", "Charges customers.", icon=png_bytes((300, 200)))
    assert response.status_code == 303
    client_id = response.headers["Location"].rsplit("/", 1)[1]
    client = get_client(client_id)
    assert (
        client.org_id == console_admin.org_id
        and client.name == "Billing backend"
        and client.description == "Charges customers."
    )
    assert list_grants(client_id) == []  # API access is chosen next, on the app's page
    with Image.open(io.BytesIO(client.icon)) as icon:
        assert icon.format == "PNG" and max(icon.size) <= 256  # re-encoded and bounded
    page = text(console.get(response.headers["Location"]))
    assert "Registered “Billing backend”" in page and "choose the APIs it may call" in page
    assert 'id="access"' in page and "API access" in page
    assert f'value="{client_id}"' in page and 'data-copy-target="client-id"' in page
    listing = text(console.get("/console/apps"))
    assert "Billing backend" in listing and client_id in listing
    assert f"/console/apps/{client_id}/icon?v=" in listing
    event = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "client.created")).one()
    assert event.actor == console_admin.account_id and event.ip_address == "127.0.0.1"


@pytest.mark.parametrize("fmt", ["JPEG", "GIF", "WEBP"])
def test_other_accepted_icon_formats(console, fmt):
    assert register(console, icon=png_bytes(fmt=fmt), filename="icon.img").status_code == 303
    assert client_count() == 1


def test_register_without_icon_shows_a_letter_tile(console):
    response = register(console, "zeta service")
    assert response.status_code == 303
    html = text(console.get("/console/apps"))
    assert 'app-icon-letter" aria-hidden="true">Z<' in html


def test_the_register_form_is_labelled_and_multipart(console):
    form = console.form(NEW, NEW)
    assert form.enctype == "multipart/form-data"
    html = text(console.get(NEW))
    for field in ("name", "description", "icon"):
        assert f'<label for="{field}">' in html and f'id="{field}"' in html


BAD_ICONS = {
    "huge": (png_bytes((8, 8)) + b"\0" * (300 * 1024), "big.png", "at most 256 KiB"),
    "wrong type": (b"just some text, not an image at all", "notes.txt", "not a readable PNG, JPEG, GIF or WebP image"),
    "bmp": (png_bytes(fmt="BMP"), "icon.bmp", "must be a PNG, JPEG, GIF or WebP image"),
    "svg with script": (b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>',
                        "icon.svg", "SVG and other markup are not accepted"),
    "truncated png": (png_bytes((64, 64), "blue")[:60], "cut.png", "damaged or truncated"),
    "empty": (b"", "empty.png", "The icon file is empty."),
}


@pytest.mark.parametrize("case", list(BAD_ICONS))
def test_bad_icons_are_refused_with_a_readable_error_and_nothing_is_stored(console, case):
    data, filename, message = BAD_ICONS[case]
    response = register(console, "Has a bad icon", "kept in the form", icon=data, filename=filename)
    assert response.status_code == 400
    html = text(response)
    assert message in html
    assert 'class="field-error" id="icon-error"' in html
    assert 'value="Has a bad icon"' in html and "kept in the form" in html  # the form keeps what was typed
    assert client_count() == 0
    assert (
        db.session.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.action == "client.created"))
        == 0
    )


def test_an_upload_beyond_the_request_limit_gets_a_readable_413(console):
    response = register(console, "Too big", icon=b"\0" * (2 * 1024 * 1024), filename="big.png")
    assert response.status_code == 413
    assert "The upload is too large" in text(response)
    assert client_count() == 0


@pytest.mark.parametrize("name, message", [
    ("x" * 101, "Name must be at most 100 characters."),
    ("   ", "Name is required."),
    ("tab\tname", "Name must not contain control characters."),
])
def test_bad_names_are_refused(console, name, message):
    response = register(console, name)
    assert response.status_code == 400
    assert message in text(response) and 'id="name-error"' in text(response)
    assert client_count() == 0


def test_overlong_description_is_refused(console):
    response = register(console, "Fine name", "d" * 1001)
    assert response.status_code == 400
    assert "Description must be at most 1000 characters." in text(response)
    assert client_count() == 0


def test_the_console_cannot_make_a_platform_api_nor_bind_another_orgs_app(console, console_admin):
    """What the operator alone decides (platform APIs, which orgs they are open to, resource servers that
    introspect for them) cannot be reached from the console, whatever the form sends."""
    from authserver.models import Api, ApiClient
    from authserver.services import apis

    # Registering an app: extra fields that once set scopes or the resource-server flag do nothing.
    response = console.submit(NEW, NEW, {"name": "Sneaky", "resource_server": "1", "scope": "manage"})
    client_id = response.headers["Location"].rsplit("/", 1)[1]
    assert list_grants(client_id) == []
    # Registering an API: it is the organization's, never the platform's, nor open to anyone else.
    created = console.submit("/console/apis/new", "/console/apis/new", {
        "name": "Platformish", "identifier": "https://api.acme.test/p", "scopes": "",
        "platform": "1", "open_to_all": "1", "org_id": "", "builtin": "management"})
    assert created.status_code == 303
    api = db.session.scalars(select(Api).where(Api.identifier == "https://api.acme.test/p")).one()
    assert (api.org_id, api.open_to_all, api.builtin) == (console_admin.org_id, False, None)
    # An identifier below the server's own URL is reserved for the platform's APIs.
    reserved = console.submit("/console/apis/new", "/console/apis/new",
                              {"name": "Fake management", "identifier": "http://localhost/api/v2", "scopes": ""})
    assert reserved.status_code == 400 and "reserved for platform APIs" in text(reserved)
    # The platform's APIs are read-only: their page has no form, and a forged POST is refused.
    management = apis.builtin_api(apis.BUILTIN_MANAGEMENT)
    page = text(console.get(f"/console/apis/{management.api_id}"))
    assert "read-only" in page and f"/console/apis/{management.api_id}/rename" not in page
    token = console.form(NEW, NEW).fields["csrf_token"]
    mine = register_client(console_admin.org_id, "Mine").client_id
    for action, data in [("/rename", {"name": "Mine now"}), ("/scopes", {"name": "planted"}),
                         ("/clients", {"client_id": mine}), ("/delete", {"confirmed_apps": ""}),
                         ("/scopes/manage/delete", {})]:
        refused = console.post(f"/console/apis/{management.api_id}{action}", data={"csrf_token": token, **data})
        assert refused.status_code == 403, action
        assert "operator" in text(refused)
    db.session.expire_all()
    assert db.session.get(Api, management.api_id).name == management.name
    assert [s.name for s in apis.scopes_of(management)] == ["manage"]
    # Another organization's app cannot become the own app of this organization's API.
    other = make_tenant("Globex")
    bind = console.post(f"/console/apis/{api.api_id}/clients", data={"csrf_token": token, "client_id": other.client_id})
    assert bind.status_code == 404
    assert db.session.scalars(select(ApiClient)).all() == []


def test_html_in_names_is_escaped_on_every_page(console, console_admin):
    client = register_client(console_admin.org_id, HOSTILE, description=HOSTILE)
    from authserver.services.accounts import create_account

    create_account(console_admin.org_id, HOSTILE, "service")
    detail = f"/console/apps/{client.client_id}"
    pages = ["/console/apps", detail, detail + "/edit", detail + "/delete", "/console/accounts", "/console/audit"]
    for path in pages:
        html = text(console.get(path))
        assert "<script>alert" not in html and "<img src=x" not in html, path
        assert "&lt;script&gt;alert(" in html, path
    # The flash message after a change carries the name too.
    response = console.submit(detail + "/edit", detail + "/edit", {"name": HOSTILE + "!", "description": ""},
                              follow_redirects=True)
    assert "<script>alert" not in text(response) and "&lt;script&gt;" in text(response)
    # The secret-delete dialog and confirmation page name the app.
    response = console.submit(detail, detail + "/secrets")
    html = text(response)
    assert "<script>alert" not in html


def test_details_page_shows_everything_about_the_app(console, console_admin):
    client = register_client(console_admin.org_id, "Reporting", description="Nightly reports.")
    html = text(console.get(f"/console/apps/{client.client_id}"))
    assert "Reporting" in html and "Nightly reports." in html
    assert f'value="{client.client_id}"' in html
    assert "No secrets yet" in html and "No public keys yet" in html
    assert "http://localhost/oauth/token" in html
    assert '<button type="submit" class="btn btn-primary">Add secret</button>' in html
    assert '<label for="key">Public key</label>' in html


def test_edit_name_description_and_icon(console, console_admin):
    client = register_client(console_admin.org_id, "Old name", description="old")
    edit = f"/console/apps/{client.client_id}/edit"
    form_html = text(console.get(edit))
    assert 'value="Old name"' in form_html and ">old</textarea>" in form_html
    response = console.submit(
        edit, edit, {"name": "New name", "description": "new"}, files={"icon": ("i.png", png_bytes())}
    )
    assert response.status_code == 303 and response.headers["Location"] == f"/console/apps/{client.client_id}"
    db.session.expire_all()
    client = get_client(client.client_id)
    assert (client.name, client.description) == ("New name", "new") and client.icon is not None
    # Remove the icon again.
    assert "Remove the current icon" in text(console.get(edit))
    response = console.submit(edit, edit, {"name": "New name", "description": "new", "remove_icon": "1"})
    assert response.status_code == 303
    db.session.expire_all()
    assert get_client(client.client_id).icon is None


def test_a_failed_edit_changes_nothing(console, console_admin):
    client = register_client(console_admin.org_id, "Stable", description="stays", icon=png_bytes())
    icon_before = client.icon
    edit = f"/console/apps/{client.client_id}/edit"
    response = console.submit(edit, edit, {"name": "Renamed", "description": "changed"},
                              files={"icon": ("x.svg", b"<svg onload=alert(1)></svg>")})
    assert response.status_code == 400 and "SVG and other markup are not accepted" in text(response)
    assert 'value="Renamed"' in text(response)  # what was typed is kept
    db.session.expire_all()
    client = get_client(client.client_id)
    assert (client.name, client.description, client.icon) == ("Stable", "stays", icon_before)
    response = console.submit(edit, edit, {"name": "n" * 101, "description": ""})
    assert response.status_code == 400 and "Name must be at most 100 characters." in text(response)


def test_delete_asks_for_confirmation_then_deletes_and_tokens_die(console, app, http):
    tenant = make_tenant("Acme tenant")
    from ..console_support import make_admin, signed_in

    tenant_admin = make_admin(org_id=tenant.org_id)
    tenant_console = signed_in(app, tenant_admin)
    token = get_token(http, tenant)["access_token"]
    delete = f"/console/apps/{tenant.client_id}/delete"
    confirm = tenant_console.get(delete)
    assert confirm.status_code == 200
    assert "cannot be undone" in text(confirm)
    assert db.session.get(Client, tenant.client_id) is not None  # the GET changed nothing
    response = tenant_console.submit(delete, delete)
    assert response.status_code == 303 and response.headers["Location"] == "/console/apps"
    db.session.expire_all()
    assert db.session.get(Client, tenant.client_id) is None
    assert (
        db.session.scalar(
            select(func.count()).select_from(AccessToken).where(AccessToken.client_id == tenant.client_id)
        )
        == 0
    )
    introspection = http.post("/oauth/introspect", data={"token": token}, headers=tenant.auth())
    assert introspection.status_code == 401  # the client and its secrets are gone
    assert "Deleted “Acme tenant backend”." in text(tenant_console.get("/console/apps"))
    assert tenant_console.get(f"/console/apps/{tenant.client_id}").status_code == 404


def test_the_detail_page_offers_delete_with_a_dialog_and_a_no_script_fallback(console, console_admin):
    client = register_client(console_admin.org_id, "Has a danger zone")
    html = text(console.get(f"/console/apps/{client.client_id}"))
    delete = f"/console/apps/{client.client_id}/delete"
    assert f'<form method="get" action="{delete}" class="inline-form" data-confirm-dialog="delete-app">' in html
    assert '<dialog id="delete-app"' in html
    assert console.form(f"/console/apps/{client.client_id}", delete).fields["csrf_token"]


def test_icons_are_served_with_their_type_and_nosniff(console, console_admin):
    client = register_client(console_admin.org_id, "Iconic", icon=png_bytes())
    response = console.get(f"/console/apps/{client.client_id}/icon")
    assert response.status_code == 200
    assert response.content_type == "image/png"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.data == client.icon


def test_an_app_without_icon_has_no_icon_route(console, console_admin):
    client = register_client(console_admin.org_id, "Plain")
    assert console.get(f"/console/apps/{client.client_id}/icon").status_code == 404


def test_icons_need_a_session(http, console_admin):
    client = register_client(console_admin.org_id, "Iconic", icon=png_bytes())
    assert http.get(f"/console/apps/{client.client_id}/icon").status_code == 303


def test_unknown_app_is_a_readable_404(console):
    response = console.get("/console/apps/" + "0" * 32)
    assert response.status_code == 404
    assert "Client not found." in text(response)
