"""Who may call /api/v1: bearer tokens of this server (RFC 6750) and the console's session with CSRF."""
from __future__ import annotations

import uuid

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from itsdangerous import URLSafeTimedSerializer

from authserver import clock
from authserver.extensions import db
from authserver.models import Client
from authserver.services.accounts import create_account, disable_account
from authserver.services.clients import delete_client

from ..conftest import ISSUER
from .api_support import API, assert_problem, user_token


def challenge(response) -> str:
    return response.headers.get("WWW-Authenticate", "")


def client_count(org_id: str) -> int:
    return db.session.query(Client).filter_by(org_id=org_id).count()


# --- bearer tokens ----------------------------------------------------------------------------

def test_admin_token_with_manage_scope_is_accepted(http, manager):
    response = http.get(f"{API}/clients", headers=manager.headers())
    assert response.status_code == 200
    assert [c["client_id"] for c in response.get_json()["items"]] == [manager.tenant.client_id]
    assert response.headers["Cache-Control"] == "no-store"


def test_no_credentials_is_401_with_a_bare_bearer_challenge(http, manager):
    response = http.get(f"{API}/clients")
    body = assert_problem(response, 401)
    assert body["type"].endswith("#problem-unauthenticated")
    # RFC 6750 §3.1: no error code when the request carried no authentication information.
    assert challenge(response) == 'Bearer realm="authserver"'


@pytest.mark.parametrize("header", ["Basic YWRtaW46YWRtaW4=", "Token abc", "bearer", "Bearer    "])
def test_other_schemes_and_empty_bearer_are_401(http, manager, header):
    response = http.get(f"{API}/clients", headers={"Authorization": header})
    assert_problem(response, 401)
    assert challenge(response).startswith('Bearer realm="authserver"')


def test_scheme_name_is_case_insensitive(http, manager):
    response = http.get(f"{API}/clients", headers={"Authorization": f"bEaReR {manager.token}"})
    assert response.status_code == 200


def _assert_invalid_token(http, token: str):
    response = http.get(f"{API}/clients", headers={"Authorization": f"Bearer {token}"})
    body = assert_problem(response, 401)
    assert body["type"].endswith("#problem-invalid-token")
    assert 'error="invalid_token"' in challenge(response)
    assert token not in response.get_data(as_text=True)
    return response


def test_garbage_token_is_invalid_token(http, manager):
    _assert_invalid_token(http, "not-a-jwt")
    _assert_invalid_token(http, manager.token[:-4] + "AAAA")


def test_token_signed_by_another_key_is_invalid(http, manager):
    header = jwt.get_unverified_header(manager.token)
    claims = jwt.decode(manager.token, options={"verify_signature": False})
    forged = jwt.encode(claims, ec.generate_private_key(ec.SECP256R1()), algorithm="ES256",
                        headers={"kid": header["kid"], "typ": "at+jwt"})
    _assert_invalid_token(http, forged)


def test_client_assertion_is_not_an_access_token(http, manager):
    _assert_invalid_token(http, manager.tenant.assertion(sub=manager.user_id, aud=ISSUER))


def test_expired_token_is_invalid(http, manager):
    clock.shift(3600 + 1)
    _assert_invalid_token(http, manager.token)


def test_revoked_token_is_invalid(http, manager):
    revoked = http.post("/oauth/revoke", data={"token": manager.token}, headers=manager.tenant.auth())
    assert revoked.status_code == 200
    _assert_invalid_token(http, manager.token)


def another_admin(org_id: str) -> None:
    """The organization's last active admin cannot be disabled: this one lets the test disable the other."""
    create_account(org_id, "Second admin", "user", email="second-admin@example.com", is_admin=True)


def test_token_of_a_disabled_account_is_invalid(http, manager):
    another_admin(manager.org_id)
    disable_account(manager.user_id)
    _assert_invalid_token(http, manager.token)


def test_token_of_a_deleted_client_is_invalid(http, manager):
    delete_client(manager.tenant.client_id)
    _assert_invalid_token(http, manager.token)


def test_token_without_manage_scope_is_403_insufficient_scope(http, manager):
    # A token for the management API (its aud) whose scope lacks `manage`: the operator gave the
    # management API another scope, and the client holds only that one.
    from authserver.services import apis

    from ..conftest import MANAGEMENT_API, get_token

    management = apis.builtin_api(apis.BUILTIN_MANAGEMENT)
    apis.add_scope(management.api_id, "audit:read")
    apis.grant_client(manager.tenant.client_id, management.api_id, "audit:read")
    token = get_token(http, manager.tenant, assertion=manager.tenant.assertion(sub=manager.user_id),
                      resource=MANAGEMENT_API)["access_token"]
    response = http.post(f"{API}/clients", json={"name": "x"}, headers={"Authorization": f"Bearer {token}"})
    body = assert_problem(response, 403)
    assert body["type"].endswith("#problem-insufficient-scope")
    assert challenge(response) == 'Bearer realm="authserver", error="insufficient_scope", scope="manage"'
    assert client_count(manager.org_id) == 1


def test_non_admin_user_is_403(http, manager):
    user = create_account(manager.org_id, "Plain user", "user", email="plain@example.com")
    token = user_token(http, manager.tenant, user.account_id)
    response = http.post(f"{API}/clients", json={"name": "x"}, headers={"Authorization": f"Bearer {token}"})
    body = assert_problem(response, 403)
    assert body["type"].endswith("#problem-forbidden")
    assert "WWW-Authenticate" not in response.headers
    assert client_count(manager.org_id) == 1


def test_service_account_subject_is_403(http, manager):
    token = user_token(http, manager.tenant, manager.tenant.account_id)
    assert_problem(http.get(f"{API}/accounts", headers={"Authorization": f"Bearer {token}"}), 403)


def test_demoted_admin_token_stops_working(http, manager):
    from authserver.models import Account

    db.session.get(Account, manager.user_id).is_admin = False
    db.session.commit()
    assert_problem(http.get(f"{API}/clients", headers=manager.headers()), 403)


def test_token_query_parameter_is_not_accepted(http, manager):
    # RFC 6750 §2.3 is a MAY that leaks tokens into logs: only the header is read.
    assert_problem(http.get(f"{API}/clients?access_token={manager.token}"), 401)


def test_documentation_needs_no_token(http):
    assert http.get(f"{API}/openapi.json").status_code == 200
    assert http.get(f"{API}/docs").status_code == 200


# --- the console's session --------------------------------------------------------------------

def session_for(app, http, account_id: str, org_id: str) -> str:
    """Open a console session on the server for the account (claiming `org_id`) and put its id in the test
    client's cookie, as a sign-in does; return its CSRF token."""
    from authserver.models import Account
    from authserver.services.sessions import COOKIE_KEY, create_session

    opened = create_session(db.session.get(Account, account_id))
    opened.session.org_id = org_id
    db.session.commit()
    raw = uuid.uuid4().hex
    with http.session_transaction() as session:
        session[COOKIE_KEY] = opened.session_id
        session["csrf_token"] = raw
    return URLSafeTimedSerializer(app.secret_key, salt="wtf-csrf-token").dumps(raw)


def test_session_caller_may_read_without_csrf(app, http, manager):
    session_for(app, http, manager.user_id, manager.org_id)
    response = http.get(f"{API}/clients")
    assert response.status_code == 200
    assert len(response.get_json()["items"]) == 1


def test_session_caller_needs_csrf_token_to_change_anything(app, http, manager):
    csrf_token = session_for(app, http, manager.user_id, manager.org_id)
    missing = http.post(f"{API}/clients", json={"name": "No CSRF"})
    body = assert_problem(missing, 403)
    assert "X-CSRFToken" in body["detail"]
    wrong = http.post(f"{API}/clients", json={"name": "Wrong CSRF"}, headers={"X-CSRFToken": "x" + csrf_token})
    assert_problem(wrong, 403)
    assert_problem(http.delete(f"{API}/clients/{manager.tenant.client_id}"), 403)
    assert client_count(manager.org_id) == 1

    created = http.post(f"{API}/clients", json={"name": "With CSRF"}, headers={"X-CSRFToken": csrf_token})
    assert created.status_code == 201
    assert client_count(manager.org_id) == 2


def test_session_changes_are_audited_with_the_session_account(app, http, manager):
    from authserver.services.audit import page_events

    csrf_token = session_for(app, http, manager.user_id, manager.org_id)
    http.post(f"{API}/clients", json={"name": "Audited"}, headers={"X-CSRFToken": csrf_token})
    event = page_events(manager.org_id, limit=1)[0][0]
    assert (event.action, event.actor, event.ip_address) == ("client.created", manager.user_id, "127.0.0.1")


def test_session_is_rechecked_on_every_request(app, http, manager):
    session_for(app, http, manager.user_id, manager.org_id)
    assert http.get(f"{API}/clients").status_code == 200
    another_admin(manager.org_id)
    disable_account(manager.user_id)
    assert_problem(http.get(f"{API}/clients"), 401)


def test_session_for_a_non_admin_or_another_org_is_refused(app, http, manager, other_manager):
    user = create_account(manager.org_id, "Plain user", "user", email="plain2@example.com")
    session_for(app, http, user.account_id, manager.org_id)
    assert_problem(http.get(f"{API}/clients"), 401)
    session_for(app, http, manager.user_id, other_manager.org_id)
    assert_problem(http.get(f"{API}/clients"), 401)


def test_bearer_header_wins_over_a_session(app, http, manager):
    session_for(app, http, manager.user_id, manager.org_id)
    assert_problem(http.get(f"{API}/clients", headers={"Authorization": "Bearer nope"}), 401)
    # and with a valid token no CSRF token is needed (a browser cannot add the header cross-site)
    assert http.post(f"{API}/clients", json={"name": "Bearer"}, headers=manager.headers()).status_code == 201


def test_console_sign_in_then_api_with_the_pages_csrf_token(app):
    """The real console session: sign in through its form, then call the API with the CSRF token
    that its pages render."""
    from ..console_support import make_admin, signed_in

    console = signed_in(app, make_admin())
    form = console.form("/console/apps/new", "/console/apps/new")
    created = console.post(f"{API}/clients", json={"name": "From the console session"},
                           headers={"X-CSRFToken": form.fields["csrf_token"]})
    assert created.status_code == 201, created.get_data(as_text=True)
    listed = console.get(f"{API}/clients").get_json()["items"]
    assert [c["name"] for c in listed] == ["From the console session"]
    assert_problem(console.post(f"{API}/clients", json={"name": "No token"}), 403)
