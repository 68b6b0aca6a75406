"""private_key_jwt client authentication (RFC 7523 §2.2 and §3, OpenID Connect Core §9) at the token,
introspection and revocation endpoints: a client_assertion signed by one of the client's keys instead
of a secret, and every way it is refused."""
from __future__ import annotations

import uuid

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import select

from authserver import clock
from authserver.extensions import db
from authserver.models import AccessToken, UsedAssertion
from authserver.services.client_secrets import delete_secret

from ..conftest import ISSUER, TOKEN_ENDPOINT, Tenant, make_app, make_tenant
from .helpers import (
    assert_no_store,
    assert_nothing_issued,
    assert_oauth_error,
    case,
    count,
    token_record,
    unverified_claims,
)

CLIENT_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
INTROSPECT = ISSUER + "/oauth/introspect"
REVOKE = ISSUER + "/oauth/revoke"
KEY_FAILURE = "unknown client, or the client_assertion's signature does not verify"


def client_assertion(tenant: Tenant, *, aud=TOKEN_ENDPOINT, key=None, alg=None, headers=None, drop=(), **claims) -> str:
    now = clock.now()
    body = {"iss": tenant.client_id, "sub": tenant.client_id, "aud": aud, "iat": now, "exp": now + 60,
            "jti": uuid.uuid4().hex, **claims}
    for name in drop:
        body.pop(name, None)
    return jwt.encode(body, key if key is not None else tenant.private_key, algorithm=alg or tenant.alg,
                      headers={"kid": tenant.kid} if headers is None else headers)


def key_auth(tenant: Tenant, assertion: str | None = None, **options) -> dict:
    return {"client_assertion_type": CLIENT_ASSERTION_TYPE,
            "client_assertion": assertion if assertion is not None else client_assertion(tenant, **options)}


def token_request(http, tenant: Tenant, *, headers=None, **form):
    return http.post("/oauth/token", data={**tenant.token_form(), **form}, headers=headers or {})


@pytest.fixture
def keyed(app) -> Tenant:
    """A client with a key and no secret at all: private_key_jwt is all it has."""
    tenant = make_tenant()
    delete_secret(tenant.client_id, tenant.secret_id)
    return tenant


# --- success at each endpoint -------------------------------------------------------------------

def test_a_client_without_any_secret_gets_a_token_with_private_key_jwt(http, keyed):
    response = token_request(http, keyed, **key_auth(keyed))
    assert response.status_code == 200, response.get_json()
    assert_no_store(response)
    claims = unverified_claims(response.get_json()["access_token"])
    assert claims["client_id"] == keyed.client_id and claims["sub"] == keyed.account_id
    record = token_record(claims["jti"])
    assert record.client_id == keyed.client_id and record.secret_id is None
    # Both assertions are used up, each in its own scope, with the token.
    assert count(UsedAssertion, UsedAssertion.client_id == keyed.client_id) == 2


def test_the_client_id_parameter_may_name_the_same_client_and_aud_may_be_the_issuer_or_a_list(http, keyed):
    for label, form in (
        ("same client_id", {"client_id": keyed.client_id, **key_auth(keyed)}),
        ("aud = issuer", key_auth(keyed, aud=ISSUER)),
        ("aud list", key_auth(keyed, aud=["https://elsewhere.example", TOKEN_ENDPOINT])),
    ):
        with case(label):
            response = token_request(http, keyed, **form)
            assert response.status_code == 200, response.get_json()


def test_introspection_and_revocation_accept_private_key_jwt(http, keyed):
    token = token_request(http, keyed, **key_auth(keyed)).get_json()["access_token"]
    for aud in (INTROSPECT, ISSUER):
        with case(aud):
            answer = http.post("/oauth/introspect", data={"token": token, **key_auth(keyed, aud=aud)})
            assert answer.status_code == 200, answer.get_json()
            assert answer.get_json()["active"] is True and answer.get_json()["client_id"] == keyed.client_id
    revoked = http.post("/oauth/revoke", data={"token": token, **key_auth(keyed, aud=REVOKE)})
    assert revoked.status_code == 200, revoked.get_data(as_text=True)
    assert token_record(unverified_claims(token)["jti"]).revoked_at is not None
    answer = http.post("/oauth/introspect", data={"token": token, **key_auth(keyed, aud=INTROSPECT)})
    assert answer.get_json() == {"active": False}


def test_the_metadata_lists_private_key_jwt_and_its_algorithms(http):
    meta = http.get("/.well-known/oauth-authorization-server").get_json()
    for endpoint in ("token", "introspection", "revocation"):
        assert "private_key_jwt" in meta[f"{endpoint}_endpoint_auth_methods_supported"]
        algs = meta[f"{endpoint}_endpoint_auth_signing_alg_values_supported"]
        assert "ES256" in algs and "EdDSA" in algs and "none" not in algs and not any(a.startswith("HS") for a in algs)


# --- refusals -----------------------------------------------------------------------------------

def test_every_malformed_or_mixed_request_is_invalid_request_and_issues_nothing(http, keyed, other_tenant):
    secret_holder = other_tenant  # has a secret: mixing it with an assertion is refused all the same
    cases = [
        ("assertion and Basic", secret_holder, key_auth(secret_holder), secret_holder.auth(), "exactly one"),
        (
            "assertion and client_secret",
            secret_holder,
            {**key_auth(secret_holder), "client_secret": secret_holder.client_secret},
            None,
            "exactly one",
        ),
        (
            "no client_assertion_type",
            keyed,
            {"client_assertion": client_assertion(keyed)},
            None,
            "client_assertion_type",
        ),
        (
            "no client_assertion",
            keyed,
            {"client_assertion_type": CLIENT_ASSERTION_TYPE},
            None,
            "client_assertion is missing",
        ),
        ("other client_id", keyed, {**key_auth(keyed), "client_id": secret_holder.client_id}, None, "client_id"),
        ("too large", keyed, key_auth(keyed, jti="j" * 9000), None, "larger than 8192 bytes"),
    ]
    for label, tenant, form, headers, needle in cases:
        with case(label):
            body = assert_oauth_error(token_request(http, tenant, headers=headers, **form), 400, "invalid_request")
            assert needle in body["error_description"]
    assert_nothing_issued()
    in_query = http.post("/oauth/token?client_assertion=" + client_assertion(keyed),
                         data={**keyed.token_form(), "client_assertion_type": CLIENT_ASSERTION_TYPE})
    assert "URL query" in assert_oauth_error(in_query, 400, "invalid_request")["error_description"]
    assert_nothing_issued()


def test_every_failed_authentication_is_invalid_client_with_a_clear_description(http, keyed):
    stranger = ec.generate_private_key(ec.SECP256R1())
    now = clock.now()
    unknown = Tenant("org", "acc", uuid.uuid4().hex, "", "", keyed.kid, keyed.private_key)
    hs256 = jwt.encode({"iss": keyed.client_id, "sub": keyed.client_id, "aud": TOKEN_ENDPOINT, "exp": now + 60,
                        "jti": uuid.uuid4().hex}, "a-shared-secret-of-enough-length-for-hs256", algorithm="HS256")
    none = jwt.encode({"iss": keyed.client_id, "sub": keyed.client_id, "aud": TOKEN_ENDPOINT, "exp": now + 60,
                       "jti": uuid.uuid4().hex}, None, algorithm="none")
    cases = [
        ("wrong type", {"client_assertion_type": "urn:example:saml", "client_assertion": client_assertion(keyed)},
         "client_assertion_type is not supported"),
        ("not a JWT", key_auth(keyed, "not.a-jwt"), "not a well-formed signed JWT"),
        ("unknown client", key_auth(unknown), KEY_FAILURE),
        ("bad signature", key_auth(keyed, key=stranger), KEY_FAILURE),
        ("unknown kid", key_auth(keyed, headers={"kid": "no-such-key"}), KEY_FAILURE),
        ("alg none", key_auth(keyed, none), "alg is not accepted"),
        ("alg HS256", key_auth(keyed, hs256), "alg is not accepted"),
        ("no iss", key_auth(keyed, drop=("iss",)), "iss"),
        ("sub is not the client", key_auth(keyed, sub=keyed.account_id), "sub must be the client_id"),
        ("aud elsewhere", key_auth(keyed, aud="https://elsewhere.example/token"), "aud"),
        ("aud of introspection", key_auth(keyed, aud=INTROSPECT), "token endpoint URL"),
        ("no exp", key_auth(keyed, drop=("exp",)), "exp"),
        ("exp too far", key_auth(keyed, exp=now + 3600), "exp is too far ahead"),
        ("expired", key_auth(keyed, exp=now - 3600, iat=now - 3700), "expired"),
        ("iat in the future", key_auth(keyed, iat=now + 3600, exp=now + 300), "not valid yet"),
        ("no jti", key_auth(keyed, drop=("jti",)), "jti"),
    ]
    for label, form, needle in cases:
        with case(label):
            response = token_request(http, keyed, **form)
            body = assert_oauth_error(response, 401, "invalid_client")
            assert needle in body["error_description"]
            assert "WWW-Authenticate" not in response.headers  # Basic was not tried
    assert_nothing_issued()
    # Unknown client and bad signature answer alike: the answer does not tell whether the client exists.
    descriptions = {token_request(http, keyed, **form).get_json()["error_description"]
                    for form in (key_auth(unknown), key_auth(keyed, key=stranger))}
    assert len(descriptions) == 1


def test_a_public_client_is_still_refused(http, keyed):
    body = assert_oauth_error(token_request(http, keyed, client_id=keyed.client_id), 401, "invalid_client")
    assert "public clients are not supported" in body["error_description"]
    assert "private_key_jwt" in body["error_description"]
    assert_nothing_issued()


def test_introspection_and_revocation_refuse_a_bad_client_assertion(http, keyed):
    token = token_request(http, keyed, **key_auth(keyed)).get_json()["access_token"]
    for path, aud in (("/oauth/introspect", INTROSPECT), ("/oauth/revoke", REVOKE)):
        for label, form, status, error in (
            ("aud of the token endpoint", key_auth(keyed, aud=TOKEN_ENDPOINT), 401, "invalid_client"),
            ("bad signature", key_auth(keyed, aud=aud, key=ec.generate_private_key(ec.SECP256R1())), 401,
             "invalid_client"),
            ("with a secret too", {**key_auth(keyed, aud=aud), "client_secret": "as_x"}, 400, "invalid_request"),
        ):
            with case((path, label)):
                response = http.post(path, data={"token": token, **form})
                body = assert_oauth_error(response, status, error)
                assert "active" not in body
    assert token_record(unverified_claims(token)["jti"]).revoked_at is None


# --- single use ---------------------------------------------------------------------------------

def test_a_client_assertion_is_accepted_once_at_the_token_endpoint(http, keyed):
    reused = client_assertion(keyed)
    assert token_request(http, keyed, **key_auth(keyed, reused)).status_code == 200
    tokens = count(AccessToken, AccessToken.client_id == keyed.client_id)
    used = count(UsedAssertion, UsedAssertion.client_id == keyed.client_id)
    again = token_request(http, keyed, **key_auth(keyed, reused))  # a fresh grant assertion, the same client assertion
    body = assert_oauth_error(again, 401, "invalid_client")
    assert "already used" in body["error_description"]
    assert count(AccessToken, AccessToken.client_id == keyed.client_id) == tokens
    assert count(UsedAssertion, UsedAssertion.client_id == keyed.client_id) == used


def test_a_refused_token_request_uses_nothing_up(http, keyed):
    reused = client_assertion(keyed)
    refused = token_request(http, keyed, scope="not-granted", **key_auth(keyed, reused))
    assert_oauth_error(refused, 400, "invalid_scope")
    assert_nothing_issued(keyed.client_id)
    assert token_request(http, keyed, **key_auth(keyed, reused)).status_code == 200


def test_a_client_assertion_used_at_introspection_is_refused_everywhere_after(http, keyed):
    token = token_request(http, keyed, **key_auth(keyed)).get_json()["access_token"]
    reused = client_assertion(keyed, aud=ISSUER)
    assert http.post("/oauth/introspect", data={"token": token, **key_auth(keyed, reused)}).get_json()["active"] is True
    for path in ("/oauth/introspect", "/oauth/revoke"):
        with case(path):
            body = assert_oauth_error(http.post(path, data={"token": token, **key_auth(keyed, reused)}), 401,
                                      "invalid_client")
            assert "already used" in body["error_description"]
    tokens = count(AccessToken, AccessToken.client_id == keyed.client_id)
    assert_oauth_error(token_request(http, keyed, **key_auth(keyed, reused)), 401, "invalid_client")
    assert count(AccessToken, AccessToken.client_id == keyed.client_id) == tokens
    assert token_record(unverified_claims(token)["jti"]).revoked_at is None


def test_client_and_grant_assertions_have_separate_replay_scopes(http, keyed):
    jti = uuid.uuid4().hex
    form = {**keyed.token_form(keyed.assertion(jti=jti)), **key_auth(keyed, jti=jti)}
    response = http.post("/oauth/token", data=form)
    assert response.status_code == 200, response.get_json()
    stored = set(db.session.scalars(select(UsedAssertion.jti).where(UsedAssertion.client_id == keyed.client_id)))
    assert len(stored) == 2 and jti in stored
    # The grant assertion's jti stays used as a grant assertion's.
    again = token_request(http, keyed, assertion=keyed.assertion(jti=jti), **key_auth(keyed))
    assert "already used" in assert_oauth_error(again, 400, "invalid_grant")["error_description"]


# --- failure limits -----------------------------------------------------------------------------

def test_failed_client_assertions_count_in_the_failed_authentication_limits(
    tmp_path, sqlite_template, pg_template_ready, backend
):
    app = make_app(tmp_path, sqlite_template, backend, pg_template_ready, rate_limit_auth_failures_per_client=2)
    with app.app_context():
        try:
            tenant = make_tenant()
            http = app.test_client()
            stranger = ec.generate_private_key(ec.SECP256R1())
            for _attempt in range(2):
                assert_oauth_error(token_request(http, tenant, **key_auth(tenant, key=stranger)), 401, "invalid_client")
            replayed = client_assertion(tenant)
            assert (
                token_request(http, tenant, **key_auth(tenant, replayed)).status_code == 200
            )  # correct: never limited
            over = token_request(http, tenant, **key_auth(tenant, key=stranger))
            assert_oauth_error(over, 429, "slow_down")
            assert int(over.headers["Retry-After"]) > 0
            # A replay is a failed authentication too: over the limit it answers 429 as well.
            assert_oauth_error(token_request(http, tenant, **key_auth(tenant, replayed)), 429, "slow_down")
            assert token_request(http, tenant, **key_auth(tenant)).status_code == 200
        finally:
            db.session.remove()
            db.engine.dispose()


def test_client_assertions_are_single_use_in_redis_too(tmp_path, sqlite_template):
    """With the Redis replay cache: used once per scope, released when the token could not be issued."""
    import redis

    from .test_redis_and_limits import private_redis

    with private_redis() as (url, _):
        app = make_app(tmp_path, sqlite_template, redis_url=url)
        with app.app_context():
            try:
                tenant = make_tenant()
                http = app.test_client()
                reused = client_assertion(tenant)
                assert_oauth_error(token_request(http, tenant, scope="not-granted", **key_auth(tenant, reused)), 400,
                                   "invalid_scope")
                response = token_request(http, tenant, **key_auth(tenant, reused))  # released after the refusal
                assert response.status_code == 200, response.get_json()
                body = assert_oauth_error(
                    token_request(http, tenant, **key_auth(tenant, reused)), 401, "invalid_client"
                )
                assert "already used" in body["error_description"]
                token = response.get_json()["access_token"]
                introspected = client_assertion(tenant, aud=INTROSPECT)
                form = {"token": token, **key_auth(tenant, introspected)}
                assert http.post("/oauth/introspect", data=form).get_json()["active"] is True
                assert_oauth_error(http.post("/oauth/introspect", data=form), 401, "invalid_client")
                marks = redis.Redis.from_url(url).keys(f"authserver:jti:{tenant.client_id}:*")
                client_marks = [m for m in marks if b":\x1fclient_assertion:" in m]
                assert len(client_marks) == 2 and len(marks) == 3  # and the one grant assertion's
                assert count(UsedAssertion) == 0 and count(AccessToken) == 1
            finally:
                db.session.remove()
                db.engine.dispose()
