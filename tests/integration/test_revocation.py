"""Token revocation (SPEC §5, RFC 7009)."""
from __future__ import annotations

import jwt

from authserver.models import AccessToken

from ..conftest import basic, get_token, random_secret
from .helpers import assert_oauth_error, count, token_record, unverified_claims


def revoke(http, token: str, headers: dict, **extra):
    return http.post("/oauth/revoke", data={"token": token, **extra}, headers=headers)


def active(http, token: str, headers: dict) -> bool:
    response = http.post("/oauth/introspect", data={"token": token}, headers=headers)
    assert response.status_code == 200
    return response.get_json()["active"]


def test_own_token_is_revoked_and_then_inactive(http, tenant):
    token = get_token(http, tenant)["access_token"]
    other = get_token(http, tenant)["access_token"]
    response = revoke(http, token, tenant.auth())
    assert response.status_code == 200
    assert response.get_data(as_text=True) in ("", "{}")
    record = token_record(unverified_claims(token)["jti"])
    assert record.revoked_at is not None
    assert active(http, token, tenant.auth()) is False
    # Only that token: the client's other token is untouched.
    assert token_record(unverified_claims(other)["jti"]).revoked_at is None
    assert active(http, other, tenant.auth()) is True


def test_revoking_twice_is_200_and_keeps_the_first_time(http, tenant):
    token = get_token(http, tenant)["access_token"]
    assert revoke(http, token, tenant.auth()).status_code == 200
    first = token_record(unverified_claims(token)["jti"]).revoked_at
    assert revoke(http, token, tenant.auth(), token_type_hint="access_token").status_code == 200
    assert token_record(unverified_claims(token)["jti"]).revoked_at == first


def test_revoke_with_client_secret_post(http, tenant):
    token = get_token(http, tenant)["access_token"]
    response = revoke(http, token, {}, client_id=tenant.client_id, client_secret=tenant.client_secret)
    assert response.status_code == 200
    assert token_record(unverified_claims(token)["jti"]).revoked_at is not None


def test_unknown_or_malformed_token_is_200_and_changes_nothing(http, tenant):
    token = get_token(http, tenant)["access_token"]
    for unknown in ("not-a-token", "a.b.c", token[:-4] + "AAAA", "x" * 9000):
        assert revoke(http, unknown, tenant.auth()).status_code == 200
    assert token_record(unverified_claims(token)["jti"]).revoked_at is None
    assert count(AccessToken, AccessToken.revoked_at.is_not(None)) == 0


def test_another_clients_token_is_invalid_grant_and_stays_active(http, tenant, other_tenant):
    token = get_token(http, tenant)["access_token"]
    response = revoke(http, token, other_tenant.auth())
    assert_oauth_error(response, 400, "invalid_grant")
    assert token_record(unverified_claims(token)["jti"]).revoked_at is None
    assert active(http, token, tenant.auth()) is True


def test_no_client_authentication_is_401_and_revokes_nothing(http, tenant):
    token = get_token(http, tenant)["access_token"]
    response = http.post("/oauth/revoke", data={"token": token})
    assert_oauth_error(response, 401, "invalid_client")
    assert "WWW-Authenticate" not in response.headers
    response = revoke(http, token, basic(tenant.client_id, random_secret()))
    assert_oauth_error(response, 401, "invalid_client")
    assert token_record(unverified_claims(token)["jti"]).revoked_at is None
    assert active(http, token, tenant.auth()) is True


def test_missing_token_is_invalid_request(http, tenant):
    assert_oauth_error(http.post("/oauth/revoke", data={}, headers=tenant.auth()), 400, "invalid_request")


def test_unknown_hint_is_ignored(http, tenant):
    token = get_token(http, tenant)["access_token"]
    assert revoke(http, token, tenant.auth(), token_type_hint="refresh_token").status_code == 200
    assert token_record(unverified_claims(token)["jti"]).revoked_at is not None


def test_revoked_token_still_verifies_offline_but_not_at_introspection(http, tenant):
    """Revocation is server-side state: resource servers that must see it ask /oauth/introspect."""
    token = get_token(http, tenant)["access_token"]
    revoke(http, token, tenant.auth())
    jwks = http.get("/oauth/jwks").get_json()
    key = jwt.PyJWKSet.from_dict(jwks)[jwt.get_unverified_header(token)["kid"]]
    assert jwt.decode(token, key.key, algorithms=[key.algorithm_name], audience="http://localhost")["jti"]
    assert active(http, token, tenant.auth()) is False


def test_get_is_405(http):
    assert http.get("/oauth/revoke").status_code == 405
