"""/accounts: service accounts and users; disabling; the operator-only flag refused."""
from __future__ import annotations

import pytest

from authserver.extensions import db
from authserver.models import Account
from authserver.services.accounts import authenticate_user

from .api_support import API, assert_problem, user_token


def accounts_of(org_id: str) -> list[Account]:
    return db.session.query(Account).filter_by(org_id=org_id).all()


def test_list_and_filter_by_kind(http, manager):
    h = manager.headers()
    everyone = http.get(f"{API}/accounts", headers=h).get_json()["items"]
    assert {a["account_id"] for a in everyone} == {manager.tenant.account_id, manager.user_id}
    services = http.get(f"{API}/accounts?kind=service", headers=h).get_json()["items"]
    assert [a["account_id"] for a in services] == [manager.tenant.account_id]
    users = http.get(f"{API}/accounts?kind=user", headers=h).get_json()["items"]
    assert [(a["account_id"], a["admin"]) for a in users] == [(manager.user_id, True)]
    assert_problem(http.get(f"{API}/accounts?kind=robot", headers=h), 422, field="kind")


def test_create_service_account_and_use_it_as_a_token_subject(http, manager):
    created = http.post(f"{API}/accounts", json={"name": "Nightly batch", "kind": "service"}, headers=manager.headers())
    assert created.status_code == 201
    body = created.get_json()
    assert body["kind"] == "service" and body["email"] is None and body["admin"] is False and body["disabled"] is False
    assert created.headers["Location"] == f"{API}/accounts/{body['account_id']}"
    assert http.get(f"{API}/accounts/{body['account_id']}", headers=manager.headers()).get_json() == body
    token = user_token(http, manager.tenant, body["account_id"], scope="read")
    assert token


def test_create_admin_user_with_password_who_can_sign_in(http, manager):
    password = "a long enough passphrase"
    created = http.post(f"{API}/accounts", json={"name": "Second admin", "kind": "user", "email": "Two@Example.com",
                                                  "password": password, "admin": True}, headers=manager.headers())
    assert created.status_code == 201
    body = created.get_json()
    assert body["email"] == "two@example.com" and body["admin"] is True
    assert password not in created.get_data(as_text=True) and "password" not in body
    stored = db.session.get(Account, body["account_id"])
    assert stored.password_hash.startswith("$argon2id$") and password not in stored.password_hash
    assert authenticate_user("two@example.com", password).account_id == body["account_id"]


@pytest.mark.parametrize("payload,status,field", [
    ({"name": "Svc", "kind": "service", "email": "svc@example.com"}, 400, "kind"),
    ({"name": "Svc", "kind": "service", "admin": True}, 400, "kind"),
    ({"name": "User", "kind": "user"}, 400, "email"),
    ({"name": "User", "kind": "user", "email": "not an email"}, 400, "email"),
    ({"name": "User", "kind": "user", "email": "nul\u0000@example.com"}, 400, "email"),
    ({"name": "User", "kind": "user", "email": "u@example.com", "password": "short"}, 400, "password"),
    ({"name": "", "kind": "service"}, 400, "name"),
    ({"name": "Robot", "kind": "robot"}, 422, "kind"),
    ({"name": "Svc", "kind": "service", "admin": "yes"}, 422, "admin"),
    ({"kind": "service"}, 422, "name"),
])
def test_bad_accounts_are_refused_and_nothing_is_stored(http, manager, payload, status, field):
    response = http.post(f"{API}/accounts", json=payload, headers=manager.headers())
    assert_problem(response, status, field=field)
    assert len(accounts_of(manager.org_id)) == 2


def test_duplicate_email_is_a_conflict(http, manager):
    first = {"name": "A", "kind": "user", "email": "same@example.com"}
    assert http.post(f"{API}/accounts", json=first, headers=manager.headers()).status_code == 201
    assert_problem(http.post(f"{API}/accounts", json={**first, "name": "B"}, headers=manager.headers()), 409,
                   field="email")


@pytest.mark.parametrize("method,suffix", [("POST", ""), ("PATCH", "/{account_id}")])
def test_operator_members_are_refused_on_accounts(http, manager, method, suffix):
    """No account member makes a resource server (that is an API's own client, SPEC §9): naming one is
    refused with the whole request."""
    path = f"{API}/accounts" + suffix.format(account_id=manager.tenant.account_id)
    payload = {"name": "Svc", "kind": "service", "resource_server": True} if method == "POST" else \
        {"disabled": True, "resource_server": True}
    assert_problem(
        http.open(path, method=method, json=payload, headers=manager.headers()), 422, field="resource_server"
    )
    db.session.expire_all()
    assert len(accounts_of(manager.org_id)) == 2
    assert db.session.get(Account, manager.tenant.account_id).disabled_at is None


def test_disable_an_account_makes_its_tokens_inactive(http, manager):
    token = user_token(http, manager.tenant, manager.tenant.account_id, scope="read")
    response = http.patch(f"{API}/accounts/{manager.tenant.account_id}", json={"disabled": True},
                          headers=manager.headers())
    assert response.status_code == 200
    body = response.get_json()
    assert body["disabled"] is True and body["disabled_at"] is not None
    introspected = http.post("/oauth/introspect", data={"token": token}, headers=manager.tenant.auth()).get_json()
    assert introspected == {"active": False}
    # idempotent
    again = http.patch(
        f"{API}/accounts/{manager.tenant.account_id}", json={"disabled": True}, headers=manager.headers()
    )
    assert again.status_code == 200 and again.get_json()["disabled_at"] == body["disabled_at"]


def test_enabling_again_keeps_the_old_tokens_revoked(http, manager):
    from ..conftest import get_token

    tenant = manager.tenant
    old = get_token(http, tenant)["access_token"]
    url = f"{API}/accounts/{tenant.account_id}"
    assert http.patch(url, json={"disabled": True}, headers=manager.headers()).get_json()["disabled"] is True
    enabled = http.patch(url, json={"disabled": False}, headers=manager.headers())
    assert enabled.status_code == 200 and enabled.get_json()["disabled"] is False
    assert http.post("/oauth/introspect", data={"token": old}, headers=tenant.auth()).get_json() == {"active": False}
    fresh = get_token(http, tenant)["access_token"]
    assert http.post("/oauth/introspect", data={"token": fresh}, headers=tenant.auth()).get_json()["active"] is True
    actions = [e["action"] for e in http.get(f"{API}/audit-events", headers=manager.headers()).get_json()["items"]]
    assert actions[:2] == ["account.enabled", "account.disabled"]


@pytest.mark.parametrize("payload", [{}, {"name": "Renamed"}, {"disabled": "true"}, {"disabled": None}])
def test_only_disabling_and_enabling_are_possible(http, manager, payload):
    response = http.patch(f"{API}/accounts/{manager.tenant.account_id}", json=payload, headers=manager.headers())
    assert_problem(response, 422)
    db.session.expire_all()
    account = db.session.get(Account, manager.tenant.account_id)
    assert account.disabled_at is None and account.name == "Acme worker"


def test_unknown_account_is_404(http, manager):
    assert_problem(http.get(f"{API}/accounts/acc_nope", headers=manager.headers()), 404)
    assert_problem(http.patch(f"{API}/accounts/acc_nope", json={"disabled": True}, headers=manager.headers()), 404)


def test_the_last_active_admin_cannot_be_disabled(http, manager):
    """Nobody could manage the organization any more: 409, and the admin stays active."""
    response = http.patch(f"{API}/accounts/{manager.user_id}", json={"disabled": True}, headers=manager.headers())
    body = assert_problem(response, 409)
    assert "last active administrator" in body["detail"]
    db.session.expire_all()
    assert db.session.get(Account, manager.user_id).disabled_at is None
    assert http.get(f"{API}/accounts", headers=manager.headers()).status_code == 200  # the token still works
