"""/clients/{client_id}/secrets: shown once by POST, never by GET; a deleted secret stops working at once."""
from __future__ import annotations

from authserver.extensions import db
from authserver.models import ClientSecret
from authserver.services.client_secrets import MAX_SECRETS_PER_CLIENT

from ..conftest import basic
from .api_support import API, assert_problem


def secrets_url(client_id: str) -> str:
    return f"{API}/clients/{client_id}/secrets"


def token_request(http, tenant, secret: str):
    return http.post("/oauth/token", data=tenant.token_form(scope="read"), headers=basic(tenant.client_id, secret))


def test_create_returns_the_secret_once_and_never_again(http, manager):
    h = manager.headers()
    cid = manager.tenant.client_id
    created = http.post(secrets_url(cid), headers=h)
    assert created.status_code == 201
    assert created.headers["Cache-Control"] == "no-store" and created.headers["Pragma"] == "no-cache"
    body = created.get_json()
    assert set(body) == {"secret_id", "client_secret", "hint", "label", "created_at", "expires_at"}
    assert body["expires_at"] is None  # no expiry asked for, and no default lifetime set
    secret, secret_id = body["client_secret"], body["secret_id"]
    assert len(secret) >= 22  # at least 128 bits, url-safe
    assert created.headers["Location"] == f"{secrets_url(cid)}/{secret_id}"

    stored = db.session.get(ClientSecret, secret_id)
    assert stored is not None and secret not in stored.secret_hash

    listed = http.get(secrets_url(cid), headers=h)
    shown = http.get(f"{secrets_url(cid)}/{secret_id}", headers=h)
    for response in (listed, shown):
        assert response.status_code == 200
        assert secret not in response.get_data(as_text=True)
        assert "client_secret" not in response.get_data(as_text=True)
    assert {s["secret_id"] for s in listed.get_json()["items"]} == {manager.tenant.secret_id, secret_id}
    assert shown.get_json() == {
        "secret_id": secret_id,
        "hint": secret[-4:],
        "label": None,
        "created_at": body["created_at"],
        "last_used_at": None,
        "expires_at": None,
        "leaked_at": None,
    }


def test_secret_from_the_api_authenticates_and_deleting_it_locks_it_out(http, manager):
    h = manager.headers()
    cid = manager.tenant.client_id
    body = http.post(secrets_url(cid), headers=h).get_json()
    secret, secret_id = body["client_secret"], body["secret_id"]

    first = token_request(http, manager.tenant, secret)
    assert first.status_code == 200, first.get_json()
    issued = first.get_json()["access_token"]
    assert http.get(f"{secrets_url(cid)}/{secret_id}", headers=h).get_json()["last_used_at"] is not None

    assert http.delete(f"{secrets_url(cid)}/{secret_id}", headers=h).status_code == 204
    refused = token_request(http, manager.tenant, secret)
    assert refused.status_code == 401 and refused.get_json()["error"] == "invalid_client"
    assert db.session.get(ClientSecret, secret_id) is None
    # Tokens the secret already obtained stay valid (SPEC §3).
    introspected = http.post("/oauth/introspect", data={"token": issued}, headers=manager.tenant.auth()).get_json()
    assert introspected["active"] is True
    # The other secret still works.
    assert token_request(http, manager.tenant, manager.tenant.client_secret).status_code == 200
    assert_problem(http.get(f"{secrets_url(cid)}/{secret_id}", headers=h), 404)
    assert_problem(http.delete(f"{secrets_url(cid)}/{secret_id}", headers=h), 404)


def test_secret_limit_is_a_conflict(http, manager):
    cid = manager.tenant.client_id
    for _ in range(MAX_SECRETS_PER_CLIENT - 1):
        assert http.post(secrets_url(cid), headers=manager.headers()).status_code == 201
    response = http.post(secrets_url(cid), headers=manager.headers())
    body = assert_problem(response, 409)
    assert body["type"].endswith("#problem-conflict")
    assert db.session.query(ClientSecret).filter_by(client_id=cid).count() == MAX_SECRETS_PER_CLIENT


def test_secrets_of_unknown_clients_and_ids(http, manager):
    h = manager.headers()
    assert_problem(http.get(secrets_url("0" * 32), headers=h), 404)
    assert_problem(http.post(secrets_url("0" * 32), headers=h), 404)
    assert_problem(http.get(f"{secrets_url(manager.tenant.client_id)}/sec_nope", headers=h), 404)


def test_a_secret_id_of_another_client_is_404(http, manager):
    h = manager.headers()
    other = http.post(f"{API}/clients", json={"name": "Other"}, headers=h).get_json()["client_id"]
    # the tenant's secret exists, but not under `other`
    assert_problem(http.get(f"{secrets_url(other)}/{manager.tenant.secret_id}", headers=h), 404)
    assert_problem(http.delete(f"{secrets_url(other)}/{manager.tenant.secret_id}", headers=h), 404)
    assert db.session.get(ClientSecret, manager.tenant.secret_id) is not None
