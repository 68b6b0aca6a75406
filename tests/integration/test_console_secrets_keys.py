"""Console secrets (shown once, deleted with the trash can) and public keys, checked at the token endpoint."""
import json
import re

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from jwt.algorithms import ECAlgorithm
from sqlalchemy import func, select

from authserver.extensions import db
from authserver.models import AuditEvent, ClientKey, ClientSecret
from authserver.services.accounts import create_account
from authserver.services.apis import BUILTIN_DEFAULT, builtin_api
from authserver.services.client_secrets import list_secrets
from authserver.services.clients import register_client

from ..conftest import Tenant, private_pem, public_pem

SECRET_VALUE = re.compile(r'<input id="new-secret" class="mono secret-value" type="text" value="([^"]+)"')


def text(response) -> str:
    return response.get_data(as_text=True)


@pytest.fixture
def app_page(console, console_admin):
    client = register_client(console_admin.org_id, "Payments")
    return f"/console/apps/{client.client_id}", client.client_id


def add_secret(console, page) -> tuple[str, object]:
    response = console.submit(page, page + "/secrets")
    assert response.status_code == 200
    match = SECRET_VALUE.search(text(response))
    assert match, "the new secret is not on the page"
    return match.group(1), response


def test_add_secret_shows_it_once_with_copy_button_and_warning(console, app, app_page):
    page, client_id = app_page
    secret, response = add_secret(console, page)
    html = text(response)
    assert len(secret) >= 22  # >= 128 bits of entropy, encoded
    assert "it will not be shown again" in html
    assert 'data-copy-target="new-secret"' in html
    assert response.headers["Cache-Control"] == "no-store"
    assert f'data-replace-url="{page}"' in html  # scripts point a reload at the plain page
    (row,) = list_secrets(client_id)
    assert row.secret_id in html and secret not in row.secret_hash
    # Not in the session cookie, nor anywhere a later request could find it.
    cookie = response.headers.get("Set-Cookie", "")
    serializer = app.session_interface.get_signing_serializer(app)
    with console.http.session_transaction() as session:
        assert secret not in json.dumps(dict(session), default=str)
    if "authserver_session=" in cookie:
        value = cookie.split("authserver_session=", 1)[1].split(";", 1)[0]
        assert secret not in json.dumps(serializer.loads(value), default=str)
    # A reload (GET) shows the app without the secret; the secret list has its row.
    again = text(console.get(page))
    assert secret not in again and "will not be shown again" not in again
    assert row.secret_id in again and "never" in again
    event = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "secret.created")).one()
    assert secret not in event.details


def test_each_add_creates_a_new_secret(console, app_page):
    page, client_id = app_page
    first, _ = add_secret(console, page)
    second, _ = add_secret(console, page)
    assert first != second and len(list_secrets(client_id)) == 2


def test_secret_and_key_from_the_console_get_a_token_until_the_trash_can(console, console_admin, app_page, http):
    page, client_id = app_page
    service = create_account(console_admin.org_id, "worker", "service")
    private_key = ec.generate_private_key(ec.SECP256R1())
    response = console.submit(page, page + "/keys", {"key": public_pem(private_key).decode(), "kid": "console-key"})
    assert response.status_code == 303 and response.headers["Location"] == page + "#keys"
    secret, _ = add_secret(console, page)
    (row,) = list_secrets(client_id)
    caller = Tenant(
        console_admin.org_id, service.account_id, client_id, row.secret_id, secret, "console-key", private_key
    )
    # Without API access there is no token; the app page's checkboxes give it.
    refused = http.post("/oauth/token", data=caller.token_form(), headers=caller.auth())
    assert refused.status_code == 400 and refused.get_json()["error"] == "invalid_target"
    default_api = builtin_api(BUILTIN_DEFAULT)
    granted = console.submit(page, f"{page}/access/{default_api.api_id}", {"scope": "read", "default": "1"})
    assert granted.status_code == 303 and granted.headers["Location"] == page + "#access"

    token = http.post("/oauth/token", data=caller.token_form(), headers=caller.auth())
    assert token.status_code == 200, token.get_json()
    db.session.expire_all()  # the token endpoint writes last_used_at outside this test's session
    html = text(console.get(page))
    assert "console-key" in html and "EC-P-256" in html
    assert "never" not in html.split('id="secrets"', 1)[1].split('id="keys"', 1)[0]  # last used is now set

    delete = f"{page}/secrets/{row.secret_id}/delete"
    # The trash can is a real button in a form; its dialog holds the POST form with a CSRF token.
    assert f'aria-label="Delete secret {row.secret_id}"' in html
    assert console.form(page, delete).fields["csrf_token"]
    confirm = console.get(delete)  # without scripts the button leads to a confirmation page
    assert confirm.status_code == 200 and "Delete this secret?" in text(confirm)
    assert len(list_secrets(client_id)) == 1
    response = console.submit(delete, delete)
    assert response.status_code == 303 and response.headers["Location"] == page + "#secrets"
    assert f"Deleted secret {row.secret_id}." in text(console.get(page))
    assert list_secrets(client_id) == []

    refused = http.post("/oauth/token", data=caller.token_form(), headers=caller.auth())
    assert refused.status_code == 401 and refused.get_json()["error"] == "invalid_client"


def test_deleting_an_unknown_secret_is_404(console, app_page):
    page, _ = app_page
    assert console.get(page + "/secrets/sec_doesnotexist/delete").status_code == 404


def test_add_a_jwk_and_delete_it(console, app_page):
    page, client_id = app_page
    jwk = json.loads(ECAlgorithm.to_jwk(ec.generate_private_key(ec.SECP384R1()).public_key()))
    jwk["kid"] = "from-jwk"
    assert console.submit(page, page + "/keys", {"key": json.dumps(jwk), "kid": ""}).status_code == 303
    (key,) = db.session.scalars(select(ClientKey).where(ClientKey.client_id == client_id)).all()
    assert (key.kid, key.key_type) == ("from-jwk", "EC-P-384")
    delete = f"{page}/keys/from-jwk/delete"
    assert "Delete this public key?" in text(console.get(delete))
    assert console.submit(delete, delete).status_code == 303
    assert db.session.scalar(select(func.count()).select_from(ClientKey)) == 0


def test_a_key_without_kid_gets_its_thumbprint_and_odd_kids_round_trip(console, app_page):
    page, client_id = app_page
    key = ed25519.Ed25519PrivateKey.generate()
    assert console.submit(page, page + "/keys", {"key": public_pem(key).decode()}).status_code == 303
    odd = ec.generate_private_key(ec.SECP256R1())
    assert (
        console.submit(page, page + "/keys", {"key": public_pem(odd).decode(), "kid": "team/a key"}).status_code == 303
    )
    kids = {k.kid for k in db.session.scalars(select(ClientKey).where(ClientKey.client_id == client_id))}
    assert "team/a key" in kids and len(kids) == 2
    delete = f"{page}/keys/team/a%20key/delete"
    assert console.submit(page, delete).status_code == 303
    assert "team/a key" not in {k.kid for k in db.session.scalars(select(ClientKey))}


@pytest.mark.parametrize("key_text, message", [
    ("not a key", "neither a PEM public key nor valid JWK JSON"),
    ("", "The key is empty."),
    ("PRIVATE", "This is a private key"),
    ('{"kty": "oct", "k": "c2VjcmV0"}', "private key material"),
])
def test_bad_keys_are_refused_readably_and_nothing_is_stored(console, app_page, key_text, message):
    page, _ = app_page
    if key_text == "PRIVATE":
        key_text = private_pem(ec.generate_private_key(ec.SECP256R1())).decode()
    response = console.submit(page, page + "/keys", {"key": key_text, "kid": "k1"})
    assert response.status_code == 400
    html = text(response)
    assert message in html and 'id="key-error"' in html
    assert 'value="k1"' in html  # the form keeps what was typed
    assert db.session.scalar(select(func.count()).select_from(ClientKey)) == 0


def test_a_duplicate_kid_is_a_conflict_on_the_kid_field(console, app_page):
    page, _ = app_page
    for expected in (303, 409):
        pem = public_pem(ec.generate_private_key(ec.SECP256R1())).decode()
        response = console.submit(page, page + "/keys", {"key": pem, "kid": "same"})
        assert response.status_code == expected
    assert "already has a key with kid" in text(response) and 'id="kid-error"' in text(response)
    assert db.session.scalar(select(func.count()).select_from(ClientKey)) == 1


def test_secret_limit_is_shown_as_a_message(console, app_page):
    from authserver.services.client_secrets import MAX_SECRETS_PER_CLIENT
    from authserver.services.client_secrets import add_secret as service_add_secret

    page, client_id = app_page
    for _ in range(MAX_SECRETS_PER_CLIENT):
        service_add_secret(client_id)
    response = console.submit(page, page + "/secrets", follow_redirects=True)
    assert f"at most {MAX_SECRETS_PER_CLIENT} secrets" in text(response)
    assert not SECRET_VALUE.search(text(response))
    assert db.session.scalar(select(func.count()).select_from(ClientSecret)) == MAX_SECRETS_PER_CLIENT

