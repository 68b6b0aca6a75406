"""Nothing crosses organizations in the console: another org's objects answer 404 and stay untouched;
and every POST without its CSRF token is refused with nothing stored."""
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import func, select

from authserver.extensions import db
from authserver.models import Account, AuditEvent, Client, ClientKey, ClientSecret

from ..conftest import make_tenant, public_pem
from ..console_support import make_admin, page_forms, png_bytes, signed_in


def text(response) -> str:
    return response.get_data(as_text=True)


def counts() -> dict:
    models = (Client, ClientSecret, ClientKey, Account, AuditEvent)
    return {m.__name__: db.session.scalar(select(func.count()).select_from(m)) for m in models}


@pytest.fixture
def globex(app):
    """Another organization with an app (with icon, secret, key) and a service account."""
    from authserver.services.clients import update_client

    tenant = make_tenant("Globex")
    update_client(tenant.client_id, icon=png_bytes())
    return tenant


def foreign_urls(tenant) -> list[str]:
    app = f"/console/apps/{tenant.client_id}"
    return [
        app, app + "/edit", app + "/delete", app + "/icon",
        f"{app}/secrets/{tenant.secret_id}/delete", f"{app}/keys/{tenant.kid}/delete",
        f"/console/accounts/{tenant.account_id}/disable",
    ]


def test_another_orgs_objects_are_404_on_every_page(console, globex):
    for url in foreign_urls(globex):
        response = console.get(url)
        assert response.status_code == 404, url
        assert "Globex" not in text(response), url


def test_another_orgs_objects_are_404_for_every_action_and_stay_untouched(console, globex):
    # A valid CSRF token of this admin's own session: the refusal must come from the org check.
    token = page_forms(text(console.get("/console/apps/new")))[-1].fields["csrf_token"]
    before = counts()
    app = f"/console/apps/{globex.client_id}"
    actions = {
        app + "/edit": {"name": "Taken over", "description": ""},
        app + "/delete": {},
        app + "/secrets": {},
        f"{app}/secrets/{globex.secret_id}/delete": {},
        app + "/keys": {"key": public_pem(ec.generate_private_key(ec.SECP256R1())).decode(), "kid": "intruder"},
        f"{app}/keys/{globex.kid}/delete": {},
        f"/console/accounts/{globex.account_id}/disable": {},
    }
    for url, data in actions.items():
        response = console.post(url, data={"csrf_token": token, **data})
        assert response.status_code == 404, url
    db.session.expire_all()
    assert counts() == before
    assert db.session.get(Client, globex.client_id).name == "Globex backend"
    assert db.session.get(Account, globex.account_id).disabled_at is None


def test_lists_show_only_the_own_organization(console, console_admin, globex):
    from authserver.services.accounts import create_account
    from authserver.services.clients import register_client

    mine = register_client(console_admin.org_id, "Mine")
    worker = create_account(console_admin.org_id, "my-worker", "service")
    apps = text(console.get("/console/apps"))
    assert "Mine" in apps and mine.client_id in apps
    assert "Globex" not in apps and globex.client_id not in apps
    accounts = text(console.get("/console/accounts"))
    assert worker.account_id in accounts and globex.account_id not in accounts
    audit = text(console.get("/console/audit"))
    assert mine.client_id in audit and globex.client_id not in audit and globex.secret_id not in audit


def test_each_admin_sees_only_their_own_org(app, console, globex):
    globex_admin = make_admin(org_id=globex.org_id)
    globex_console = signed_in(app, globex_admin)
    assert globex_console.get(f"/console/apps/{globex.client_id}").status_code == 200
    assert globex.client_id in text(globex_console.get("/console/apps"))
    assert globex.client_id not in text(console.get("/console/apps"))


def mutating_actions(console_admin, tenant) -> dict:
    app = f"/console/apps/{tenant.client_id}"
    return {
        "sign in": ("/console/sign-in", {"email": console_admin.email, "password": console_admin.password}),
        "register app": ("/console/apps/new", {"name": "Forged app"}),
        "edit app": (app + "/edit", {"name": "Forged name", "description": ""}),
        "delete app": (app + "/delete", {}),
        "add secret": (app + "/secrets", {}),
        "delete secret": (f"{app}/secrets/{tenant.secret_id}/delete", {}),
        "add key": (
            app + "/keys",
            {"key": public_pem(ec.generate_private_key(ec.SECP256R1())).decode(), "kid": "forged"},
        ),
        "delete key": (f"{app}/keys/{tenant.kid}/delete", {}),
        "create service account": ("/console/accounts", {"name": "forged-worker"}),
        "disable service account": (f"/console/accounts/{tenant.account_id}/disable", {}),
        "sign out": ("/console/sign-out", {}),
    }


@pytest.mark.parametrize("bad_token", [None, "", "forged-token-value"])
def test_every_post_without_a_valid_csrf_token_is_400_and_changes_nothing(app, console_admin, bad_token):
    tenant = make_tenant("Own")
    tenant_admin = make_admin(org_id=tenant.org_id)
    console = signed_in(app, tenant_admin)
    before = counts()
    for name, (url, data) in mutating_actions(tenant_admin, tenant).items():
        form = dict(data)
        if bad_token is not None:
            form["csrf_token"] = bad_token
        response = console.post(url, data=form)
        assert response.status_code == 400, name
        assert "This form has expired" in text(response), name
    db.session.expire_all()
    assert counts() == before
    assert db.session.get(Client, tenant.client_id).name == "Own backend"
    assert console.get("/console/apps").status_code == 200  # still signed in: sign-out was refused too


def test_a_token_from_another_session_is_refused(app, console_admin):
    tenant = make_tenant("Own")
    first = signed_in(app, make_admin(org_id=tenant.org_id))
    second = signed_in(app, make_admin(org_id=tenant.org_id))
    token = page_forms(text(first.get("/console/apps/new")))[-1].fields["csrf_token"]
    before = counts()
    response = second.post("/console/apps/new", data={"csrf_token": token, "name": "Cross-session"})
    assert response.status_code == 400
    assert counts() == before


def test_every_post_form_on_every_page_has_a_csrf_token(console, console_admin, app):
    tenant = make_tenant("Own pages")
    own = signed_in(app, make_admin(org_id=tenant.org_id))
    app_page = f"/console/apps/{tenant.client_id}"
    pages = ["/console/apps", "/console/apps/new", app_page, app_page + "/edit", app_page + "/delete",
             f"{app_page}/secrets/{tenant.secret_id}/delete", f"{app_page}/keys/{tenant.kid}/delete",
             "/console/accounts", f"/console/accounts/{tenant.account_id}/disable", "/console/audit"]
    seen = 0
    for path in pages:
        response = own.get(path)
        assert response.status_code == 200, path
        for form in page_forms(text(response)):
            if form.method == "post":
                seen += 1
                assert form.fields.get("csrf_token"), (path, form.action)
    assert seen >= 15
