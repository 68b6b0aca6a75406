"""The confirmation texts of the console's destructive actions say what the action does and what it
does not, and they are true: each claim of the delete-secret and delete-app texts is checked against
what the server does afterwards. The dialog on the app page and the confirmation page say the same."""
from __future__ import annotations

import html as html_module

from authserver.extensions import db
from authserver.models import AccessToken, Account, AuditEvent, Client, ClientKey, ClientSecret
from authserver.services.client_secrets import add_secret
from authserver.services.clients import register_client

from ..conftest import basic, get_token
from ..console_support import signed_in
from .helpers import count


def confirm_text(page_html: str) -> str:
    return html_module.unescape(page_html.split('class="card form-card confirm-card"', 1)[1]
                                .split("<p>", 1)[1].split("</p>", 1)[0])


def dialog_text(page_html: str, dialog_id: str) -> str:
    return html_module.unescape(page_html.split(f'<dialog id="{dialog_id}"', 1)[1].split("<p>", 1)[1]
                                .split("</p>", 1)[0])


def introspect(http, tenant, token: str) -> dict:
    return http.post("/oauth/introspect", data={"token": token},
                     headers=basic(tenant.client_id, tenant.client_secret)).get_json()


def test_delete_secret_text_matches_what_deletion_does(app, http, tenant):
    from ..console_support import make_admin

    admin = make_admin(org_id=tenant.org_id)
    console = signed_in(app, admin)
    doomed = add_secret(tenant.client_id, label="old laptop")
    obtained = http.post(
        "/oauth/token", data=tenant.token_form(), headers=basic(tenant.client_id, doomed.client_secret)
    )
    assert obtained.status_code == 200
    token = obtained.get_json()["access_token"]
    page = f"/console/apps/{tenant.client_id}"
    message = confirm_text(console.get(f"{page}/secrets/{doomed.secret_id}/delete").get_data(as_text=True))
    app_page = console.get(page).get_data(as_text=True)
    assert message in [dialog_text(app_page, f"delete-secret-{n}") for n in (1, 2)]  # the same words in the dialog
    assert "“old laptop”" in message and doomed.secret_id in message
    assert "stops authenticating at the very next request" in message
    assert "Access tokens it already obtained stay valid until they expire (at most 1 hour)" in message
    assert "The app's other secrets and its keys keep working" in message

    console.submit(f"{page}/secrets/{doomed.secret_id}/delete", f"{page}/secrets/{doomed.secret_id}/delete", {})
    db.session.rollback()
    assert db.session.get(ClientSecret, doomed.secret_id) is None
    refused = http.post("/oauth/token", data=tenant.token_form(), headers=basic(tenant.client_id, doomed.client_secret))
    assert refused.status_code == 401  # at the very next request
    assert introspect(http, tenant, token)["active"] is True  # its token stays valid
    assert get_token(http, tenant)["access_token"]  # the other secret and the key still work


def test_delete_app_text_matches_what_deletion_does(app, http, tenant):
    from ..console_support import make_admin

    admin = make_admin(org_id=tenant.org_id)
    console = signed_in(app, admin)
    other = register_client(tenant.org_id, "Other app")
    token = get_token(http, tenant)["access_token"]
    page = f"/console/apps/{tenant.client_id}"
    message = confirm_text(console.get(f"{page}/delete").get_data(as_text=True))
    assert message == dialog_text(console.get(page).get_data(as_text=True), "delete-app")
    for claim in ("its secrets, its public keys, its key URL and its API access are deleted",
                  "introspect as inactive at once",
                  "accepts them until they expire, at most 1 hour after they were issued",
                  "service accounts, other apps and audit log are not affected", "cannot be undone"):
        assert claim in message, claim
    assert "stops working at once" not in message  # offline verifiers still accept its tokens
    events_before = count(AuditEvent, AuditEvent.org_id == tenant.org_id)

    console.submit(f"{page}/delete", f"{page}/delete", {})
    db.session.rollback()
    assert db.session.get(Client, tenant.client_id) is None
    for model in (ClientSecret, ClientKey, AccessToken):
        assert count(model, model.client_id == tenant.client_id) == 0
    assert db.session.get(Client, other.client_id) is not None
    assert db.session.get(Account, tenant.account_id).disabled_at is None
    assert count(AuditEvent, AuditEvent.org_id == tenant.org_id) == events_before + 1  # kept, plus the deletion
    refused = http.post("/oauth/token", data=tenant.token_form(), headers=basic(tenant.client_id, tenant.client_secret))
    assert refused.status_code == 401
    # Offline, the token still verifies until it expires: the signing key is still published.
    import jwt

    header = jwt.get_unverified_header(token)
    jwks = http.get("/oauth/jwks").get_json()
    assert header["kid"] in {k["kid"] for k in jwks["keys"]}
