"""Client authentication at the token endpoint (SPEC §4, RFC 6749 §2.3.1 and §5.2)."""
from __future__ import annotations

from sqlalchemy import select

from authserver import clock
from authserver.extensions import db
from authserver.last_used import RESOLUTION as LAST_USED_RESOLUTION
from authserver.models import AccessToken, ClientSecret, UsedAssertion
from authserver.services.client_secrets import add_secret, delete_secret

from ..conftest import basic, get_token, random_secret
from .helpers import (
    assert_no_store,
    assert_nothing_issued,
    assert_oauth_error,
    count,
    token_record,
    unverified_claims,
)


def _flushed(http) -> int:
    """Write the app's pending last-used times now (the server does it every few seconds)."""
    return http.application.extensions["authserver.services"].last_used.flush()


def _secret_row(secret_id: str) -> ClientSecret | None:
    db.session.rollback()
    return db.session.execute(select(ClientSecret).where(ClientSecret.secret_id == secret_id)).scalar_one_or_none()


def _introspect(http, token: str, headers: dict) -> dict:
    response = http.post("/oauth/introspect", data={"token": token}, headers=headers)
    assert response.status_code == 200, response.get_data(as_text=True)[:300]
    return response.get_json()


# --- the two methods ----------------------------------------------------------------------------

def test_client_secret_basic_issues_token_and_records_it(http, tenant):
    response = http.post("/oauth/token", data=tenant.token_form(), headers=tenant.auth())
    assert response.status_code == 200, response.get_json()
    assert_no_store(response)
    body = response.get_json()
    assert set(body) == {"access_token", "token_type", "expires_in", "scope"}
    assert body["token_type"] == "Bearer" and body["expires_in"] == 3600
    claims = unverified_claims(body["access_token"])
    record = token_record(claims["jti"])
    assert record is not None
    assert record.secret_id == tenant.secret_id
    assert record.client_id == tenant.client_id and record.account_id == tenant.account_id
    assert record.revoked_at is None
    assert count(UsedAssertion, UsedAssertion.client_id == tenant.client_id) == 1


def test_client_secret_post_issues_token(http, tenant):
    form = tenant.token_form(client_id=tenant.client_id, client_secret=tenant.client_secret)
    response = http.post("/oauth/token", data=form)
    assert response.status_code == 200, response.get_json()
    assert_no_store(response)
    claims = unverified_claims(response.get_json()["access_token"])
    assert token_record(claims["jti"]).secret_id == tenant.secret_id


def test_several_secrets_work_at_once_and_each_token_records_its_secret(http, tenant):
    second = add_secret(tenant.client_id)
    first_token = get_token(http, tenant)["access_token"]
    response = http.post(
        "/oauth/token", data=tenant.token_form(), headers=basic(tenant.client_id, second.client_secret)
    )
    assert response.status_code == 200, response.get_json()
    second_token = response.get_json()["access_token"]
    assert token_record(unverified_claims(first_token)["jti"]).secret_id == tenant.secret_id
    assert token_record(unverified_claims(second_token)["jti"]).secret_id == second.secret_id


def test_secret_is_stored_only_as_a_versioned_keyed_hash(app, tenant):
    row = _secret_row(tenant.secret_id)
    assert row.secret_hash != tenant.client_secret
    assert tenant.client_secret not in row.secret_hash
    assert row.secret_hash.startswith("hs256v1$")
    assert len(row.secret_hash.split("$", 1)[1]) == 64
    # The plaintext appears in no column of the secrets table.
    for stored in db.session.execute(select(ClientSecret.__table__)).all():
        assert all(tenant.client_secret not in str(value) for value in stored)


# --- last_used_at ------------------------------------------------------------------------------

def test_last_used_at_is_recorded_out_of_the_request_and_at_most_once_a_minute(http, tenant):
    assert _secret_row(tenant.secret_id).last_used_at is None
    get_token(http, tenant)
    assert _secret_row(tenant.secret_id).last_used_at is None  # the request itself wrote nothing
    assert _flushed(http) == 1
    first = _secret_row(tenant.secret_id).last_used_at
    assert first is not None and abs(first - clock.now()) <= 2
    clock.shift(LAST_USED_RESOLUTION - 5)
    get_token(http, tenant)
    assert _flushed(http) == 0  # nothing to write within the minute
    assert _secret_row(tenant.secret_id).last_used_at == first
    clock.shift(10)
    get_token(http, tenant)
    get_token(http, tenant)
    assert _flushed(http) == 1  # two uses, one write
    later = _secret_row(tenant.secret_id).last_used_at
    assert later >= first + LAST_USED_RESOLUTION


def test_failed_authentication_does_not_touch_last_used_at(http, tenant):
    response = http.post("/oauth/token", data=tenant.token_form(), headers=basic(tenant.client_id, random_secret()))
    assert_oauth_error(response, 401, "invalid_client")
    assert _flushed(http) == 0
    assert _secret_row(tenant.secret_id).last_used_at is None


# --- refused secrets -----------------------------------------------------------------------------

def test_wrong_secret_basic_is_401_with_basic_challenge(http, tenant):
    response = http.post("/oauth/token", data=tenant.token_form(), headers=basic(tenant.client_id, random_secret()))
    body = assert_oauth_error(response, 401, "invalid_client")
    assert response.headers.get("WWW-Authenticate", "").lower().startswith("basic")
    assert tenant.client_secret not in body["error_description"]
    assert_nothing_issued()


def test_wrong_secret_post_is_401_without_challenge(http, tenant):
    form = tenant.token_form(client_id=tenant.client_id, client_secret=random_secret())
    response = http.post("/oauth/token", data=form)
    assert_oauth_error(response, 401, "invalid_client")
    assert "WWW-Authenticate" not in response.headers
    assert_nothing_issued()


def test_unknown_client_id_answers_exactly_like_a_wrong_secret(http, tenant):
    wrong = http.post("/oauth/token", data=tenant.token_form(), headers=basic(tenant.client_id, random_secret()))
    unknown = http.post("/oauth/token", data=tenant.token_form(), headers=basic("0" * 32, random_secret()))
    wrong_body = assert_oauth_error(wrong, 401, "invalid_client")
    unknown_body = assert_oauth_error(unknown, 401, "invalid_client")
    assert wrong_body == unknown_body  # nothing tells whether the client id exists
    assert_nothing_issued()


def test_another_clients_secret_does_not_authenticate(http, tenant, other_tenant):
    response = http.post(
        "/oauth/token", data=tenant.token_form(), headers=basic(tenant.client_id, other_tenant.client_secret)
    )
    assert_oauth_error(response, 401, "invalid_client")
    assert_nothing_issued()


def test_stored_hash_is_not_accepted_as_the_secret(http, tenant):
    stored = _secret_row(tenant.secret_id).secret_hash
    for candidate in (stored, stored.split("$", 1)[1]):
        response = http.post("/oauth/token", data=tenant.token_form(), headers=basic(tenant.client_id, candidate))
        assert_oauth_error(response, 401, "invalid_client")
    assert_nothing_issued()


def test_deleted_secret_is_refused_on_the_next_request_and_its_tokens_stay_active(http, tenant):
    keeper = add_secret(tenant.client_id)
    token = get_token(http, tenant)["access_token"]
    delete_secret(tenant.client_id, tenant.secret_id)
    assert _secret_row(tenant.secret_id) is None

    response = http.post("/oauth/token", data=tenant.token_form(), headers=tenant.auth())
    assert_oauth_error(response, 401, "invalid_client")
    form = tenant.token_form(client_id=tenant.client_id, client_secret=tenant.client_secret)
    assert_oauth_error(http.post("/oauth/token", data=form), 401, "invalid_client")
    assert count(AccessToken) == 1 and count(UsedAssertion) == 1

    # The token it obtained keeps its record, with the deleted secret's id, and stays active.
    assert token_record(unverified_claims(token)["jti"]).secret_id == tenant.secret_id
    answer = _introspect(http, token, basic(tenant.client_id, keeper.client_secret))
    assert answer["active"] is True and answer["client_id"] == tenant.client_id
    # The remaining secret still obtains tokens.
    response = http.post(
        "/oauth/token", data=tenant.token_form(), headers=basic(tenant.client_id, keeper.client_secret)
    )
    assert response.status_code == 200, response.get_json()


# --- missing or malformed client authentication ----------------------------------------------

def test_no_client_authentication_is_401_without_challenge(http, tenant):
    response = http.post("/oauth/token", data=tenant.token_form())
    assert_oauth_error(response, 401, "invalid_client")
    assert "WWW-Authenticate" not in response.headers
    assert_nothing_issued()


def test_client_id_alone_is_a_public_client_and_refused(http, tenant):
    response = http.post("/oauth/token", data=tenant.token_form(client_id=tenant.client_id))
    assert_oauth_error(response, 401, "invalid_client")
    assert "WWW-Authenticate" not in response.headers
    response = http.post("/oauth/token", data=tenant.token_form(client_id=tenant.client_id, client_secret=""))
    assert_oauth_error(response, 401, "invalid_client")
    assert_nothing_issued()


def test_basic_with_empty_secret_is_401_with_challenge(http, tenant):
    response = http.post("/oauth/token", data=tenant.token_form(), headers=basic(tenant.client_id, ""))
    assert_oauth_error(response, 401, "invalid_client")
    assert response.headers.get("WWW-Authenticate", "").lower().startswith("basic")
    assert_nothing_issued()


def test_malformed_basic_header_is_401(http, tenant):
    for value in ("Basic !!!not-base64!!!", "Basic " + "bm9jb2xvbg==", "Basic "):  # "nocolon"
        response = http.post("/oauth/token", data=tenant.token_form(), headers={"Authorization": value})
        assert_oauth_error(response, 401, "invalid_client")
    assert_nothing_issued()


def test_bearer_authorization_is_not_client_authentication(http, tenant):
    response = http.post(
        "/oauth/token", data=tenant.token_form(), headers={"Authorization": "Bearer " + tenant.client_secret}
    )
    assert_oauth_error(response, 401, "invalid_client")
    assert_nothing_issued()


def test_both_methods_at_once_is_invalid_request(http, tenant):
    form = tenant.token_form(client_id=tenant.client_id, client_secret=tenant.client_secret)
    response = http.post("/oauth/token", data=form, headers=tenant.auth())
    assert_oauth_error(response, 400, "invalid_request")
    assert_nothing_issued()


def test_basic_with_a_different_form_client_id_is_invalid_request(http, tenant, other_tenant):
    response = http.post(
        "/oauth/token", data=tenant.token_form(client_id=other_tenant.client_id), headers=tenant.auth()
    )
    assert_oauth_error(response, 400, "invalid_request")
    assert_nothing_issued()


def test_basic_with_the_same_form_client_id_is_accepted(http, tenant):
    # RFC 6749 §3.2.1 lets a client repeat its client_id in the body; that is not a second method.
    response = http.post("/oauth/token", data=tenant.token_form(client_id=tenant.client_id), headers=tenant.auth())
    assert response.status_code == 200, response.get_json()


def test_credentials_in_the_query_string_are_refused(http, tenant):
    query = f"?client_id={tenant.client_id}&client_secret={tenant.client_secret}"
    response = http.post("/oauth/token" + query, data=tenant.token_form())
    assert_oauth_error(response, 400, "invalid_request")
    response = http.post(
        f"/oauth/token?client_secret={tenant.client_secret}", data=tenant.token_form(), headers=tenant.auth()
    )
    assert_oauth_error(response, 400, "invalid_request")
    assert_nothing_issued()
    assert _secret_row(tenant.secret_id).last_used_at is None
