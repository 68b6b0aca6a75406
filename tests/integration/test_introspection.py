"""Token introspection (SPEC §5, RFC 7662)."""
from __future__ import annotations

import uuid

import jwt

from authserver import clock
from authserver.models import AccessToken
from authserver.services.accounts import disable_account
from authserver.services.client_secrets import add_secret, delete_secret
from authserver.services.clients import delete_client, register_client

from ..conftest import ISSUER, basic, get_token, random_secret
from .helpers import assert_no_store, assert_oauth_error, b64url, case, count, token_record, unverified_claims

INACTIVE = {"active": False}
ACTIVE_FIELDS = {"active", "scope", "client_id", "sub", "org_id", "exp", "iat", "iss", "aud", "jti", "token_type"}


def introspect(http, token: str, headers: dict, **extra) -> dict:
    response = http.post("/oauth/introspect", data={"token": token, **extra}, headers=headers)
    assert response.status_code == 200, response.get_data(as_text=True)[:300]
    assert response.mimetype == "application/json"
    assert_no_store(response)
    return response.get_json()


def resource_server(org_id: str):
    """The `default` platform API's own client (bound by the operator), with one secret: (client_id,
    auth headers). A platform API's client introspects the tokens of every organization for it."""
    from authserver.services.apis import BUILTIN_DEFAULT, bind_client, builtin_api

    client = register_client(org_id, "Platform API")
    bind_client(builtin_api(BUILTIN_DEFAULT).api_id, client.client_id)
    new = add_secret(client.client_id)
    return client.client_id, basic(client.client_id, new.client_secret)


# --- who may ask ---------------------------------------------------------------------------------

def test_no_client_authentication_is_401(http, tenant):
    token = get_token(http, tenant)["access_token"]
    response = http.post("/oauth/introspect", data={"token": token})
    assert_oauth_error(response, 401, "invalid_client")
    assert "active" not in response.get_json()


def test_wrong_secret_is_401(http, tenant):
    token = get_token(http, tenant)["access_token"]
    response = http.post("/oauth/introspect", data={"token": token}, headers=basic(tenant.client_id, random_secret()))
    assert_oauth_error(response, 401, "invalid_client")
    assert response.headers.get("WWW-Authenticate", "").lower().startswith("basic")


def test_own_token_is_active_with_every_field(http, tenant):
    body = get_token(http, tenant, scope="read")
    claims = unverified_claims(body["access_token"])
    answer = introspect(http, body["access_token"], tenant.auth())
    assert set(answer) == ACTIVE_FIELDS
    assert answer["active"] is True
    assert answer["scope"] == "read"
    assert answer["client_id"] == tenant.client_id
    assert answer["sub"] == tenant.account_id
    assert answer["org_id"] == claims["org_id"] == tenant.org_id
    assert answer["iss"] == ISSUER
    assert answer["aud"] == claims["aud"] == ISSUER
    assert answer["jti"] == claims["jti"]
    assert answer["exp"] == claims["exp"] and answer["iat"] == claims["iat"]
    assert answer["exp"] - answer["iat"] == 3600
    assert answer["token_type"] == "Bearer"


def test_client_secret_post_and_token_type_hint_work(http, tenant):
    token = get_token(http, tenant)["access_token"]
    form = {"client_id": tenant.client_id, "client_secret": tenant.client_secret}
    assert introspect(http, token, {}, **form)["active"] is True
    assert introspect(http, token, tenant.auth(), token_type_hint="access_token")["active"] is True
    # An unknown hint is only a hint (RFC 7662 §2.1).
    assert introspect(http, token, tenant.auth(), token_type_hint="refresh_token")["active"] is True
    assert introspect(http, token, tenant.auth(), token_type_hint="whatever")["active"] is True


def test_another_clients_token_is_inactive(http, tenant, other_tenant):
    token = get_token(http, tenant)["access_token"]
    assert introspect(http, token, other_tenant.auth()) == INACTIVE


def test_another_client_of_the_same_organization_sees_nothing(http, tenant):
    sibling = register_client(tenant.org_id, "Sibling app")
    sibling_secret = add_secret(sibling.client_id)
    token = get_token(http, tenant)["access_token"]
    assert introspect(http, token, basic(sibling.client_id, sibling_secret.client_secret)) == INACTIVE


def test_platform_apis_client_of_another_organization_sees_it_active(http, tenant, other_tenant):
    _, rs_auth = resource_server(other_tenant.org_id)
    token = get_token(http, tenant)["access_token"]
    answer = introspect(http, token, rs_auth)
    assert answer["active"] is True
    assert answer["client_id"] == tenant.client_id and answer["sub"] == tenant.account_id


def test_missing_token_parameter_is_invalid_request(http, tenant):
    response = http.post("/oauth/introspect", data={}, headers=tenant.auth())
    assert_oauth_error(response, 400, "invalid_request")
    response = http.post("/oauth/introspect", data={"token": ""}, headers=tenant.auth())
    assert_oauth_error(response, 400, "invalid_request")


def test_get_is_405_and_json_body_is_refused(http, tenant):
    assert http.get("/oauth/introspect", headers=tenant.auth()).status_code == 405
    response = http.post("/oauth/introspect", json={"token": "x"}, headers=tenant.auth())
    assert_oauth_error(response, 400, "invalid_request")


# --- inactive tokens -------------------------------------------------------------------------------

def test_expired_token_is_inactive(http, tenant):
    token = get_token(http, tenant)["access_token"]
    clock.shift(3600 - 10)
    assert introspect(http, token, tenant.auth())["active"] is True
    clock.shift(11)
    assert introspect(http, token, tenant.auth()) == INACTIVE


def test_revoked_token_is_inactive(http, tenant):
    token = get_token(http, tenant)["access_token"]
    response = http.post("/oauth/revoke", data={"token": token}, headers=tenant.auth())
    assert response.status_code == 200
    assert introspect(http, token, tenant.auth()) == INACTIVE


def test_malformed_token_is_inactive(http, tenant):
    for junk in ("abc", "a.b.c", "x" * 10000, "eyJhbGciOiJub25lIn0.e30.", "\u00e9.\u00e9.\u00e9", "W10.W10.W10"):
        with case(junk):
            assert introspect(http, junk, tenant.auth()) == INACTIVE


def test_unknown_token_signed_by_this_server_is_inactive(app, http, tenant):
    """Correctly signed, never issued (no record): inactive."""
    keyring = app.extensions["authserver.services"].keyring
    now = clock.now()
    claims = {"iss": ISSUER, "sub": tenant.account_id, "aud": ISSUER, "client_id": tenant.client_id,
              "scope": "read", "jti": uuid.uuid4().hex, "iat": now, "exp": now + 600}
    forged = keyring.sign(claims)
    assert count(AccessToken, AccessToken.jti == claims["jti"]) == 0
    assert introspect(http, forged, tenant.auth()) == INACTIVE


def test_bad_signature_is_inactive(http, tenant):
    token = get_token(http, tenant)["access_token"]
    header, payload, signature = token.split(".")
    flipped = b64url(bytes([signature_bytes ^ 0x01 for signature_bytes in _b64decode(signature)]))
    assert introspect(http, f"{header}.{payload}.{flipped}", tenant.auth()) == INACTIVE
    assert introspect(http, f"{header}.{payload}.", tenant.auth()) == INACTIVE
    # The untouched token is the control.
    assert introspect(http, token, tenant.auth())["active"] is True


def test_tampered_claims_are_inactive(http, tenant):
    token = get_token(http, tenant, scope="read")["access_token"]
    header, _, signature = token.split(".")
    claims = unverified_claims(token)
    claims["scope"] = "read write manage"
    from .helpers import b64url_json

    assert introspect(http, f"{header}.{b64url_json(claims)}.{signature}", tenant.auth()) == INACTIVE


def test_token_signed_by_a_foreign_key_with_our_kid_is_inactive(app, http, tenant, rsa_key):
    token = get_token(http, tenant)["access_token"]
    header = jwt.get_unverified_header(token)
    forged = jwt.encode(
        unverified_claims(token), rsa_key, algorithm="RS256", headers={"kid": header["kid"], "typ": "at+jwt"}
    )
    assert introspect(http, forged, tenant.auth()) == INACTIVE


def test_client_deleted_makes_its_tokens_inactive(http, tenant, other_tenant):
    _, rs_auth = resource_server(other_tenant.org_id)
    token = get_token(http, tenant)["access_token"]
    assert introspect(http, token, rs_auth)["active"] is True
    delete_client(tenant.client_id)
    assert count(AccessToken, AccessToken.client_id == tenant.client_id) == 0
    assert introspect(http, token, rs_auth) == INACTIVE
    # And the deleted client's credentials no longer authenticate.
    response = http.post("/oauth/introspect", data={"token": token}, headers=tenant.auth())
    assert_oauth_error(response, 401, "invalid_client")


def test_account_disabled_makes_its_tokens_inactive(http, tenant):
    token = get_token(http, tenant)["access_token"]
    disable_account(tenant.account_id)
    assert introspect(http, token, tenant.auth()) == INACTIVE
    record = token_record(unverified_claims(token)["jti"])
    assert record is not None and record.revoked_at is None  # inactive through the account, not revoked


def test_deleting_the_secret_leaves_its_tokens_active(http, tenant, other_tenant):
    keeper = add_secret(tenant.client_id)
    _, rs_auth = resource_server(other_tenant.org_id)
    token = get_token(http, tenant)["access_token"]
    delete_secret(tenant.client_id, tenant.secret_id)
    assert introspect(http, token, basic(tenant.client_id, keeper.client_secret))["active"] is True
    assert introspect(http, token, rs_auth)["active"] is True
    assert token_record(unverified_claims(token)["jti"]).secret_id == tenant.secret_id


def test_introspection_writes_nothing(http, tenant):
    token = get_token(http, tenant)["access_token"]
    jti = unverified_claims(token)["jti"]
    before = token_record(jti)
    before_state = (before.revoked_at, before.expires_at, before.scope)
    for _ in range(3):
        introspect(http, token, tenant.auth())
    after = token_record(jti)
    assert (after.revoked_at, after.expires_at, after.scope) == before_state
    assert count(AccessToken) == 1


def _b64decode(segment: str) -> bytes:
    import base64

    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def test_alg_none_and_hmac_with_the_servers_public_key_are_inactive(app, http, tenant):
    import hashlib
    import hmac

    from cryptography.hazmat.primitives import serialization

    from .helpers import b64url_json

    token = get_token(http, tenant)["access_token"]
    header = jwt.get_unverified_header(token)
    claims = unverified_claims(token)
    unsigned = f"{b64url_json({**header, 'alg': 'none'})}.{b64url_json(claims)}."
    assert introspect(http, unsigned, tenant.auth()) == INACTIVE
    public_key = app.extensions["authserver.services"].keyring.verification_key(header["kid"])[0]
    pem = public_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    signing_input = f"{b64url_json({**header, 'alg': 'HS256'})}.{b64url_json(claims)}"
    forged = f"{signing_input}.{b64url(hmac.new(pem, signing_input.encode(), hashlib.sha256).digest())}"
    assert introspect(http, forged, tenant.auth()) == INACTIVE


def test_token_issued_by_a_host_whose_clock_runs_ahead_is_active(http, tenant):
    """Several hosts: the one that answers may have a clock a little behind the one that issued."""
    clock.shift(30)
    token = get_token(http, tenant)["access_token"]
    clock.reset()
    assert introspect(http, token, tenant.auth())["active"] is True
    assert http.post("/oauth/revoke", data={"token": token}, headers=tenant.auth()).status_code == 200
    assert token_record(unverified_claims(token)["jti"]).revoked_at is not None
