"""The assertion of the JWT bearer grant (SPEC §4, RFC 7523 §3, RFC 8725): every refusal is a 400
invalid_grant (or invalid_request for a missing or oversized one) and leaves nothing stored."""
from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid

from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from jwt.algorithms import ECAlgorithm

from authserver.models import AccessToken, UsedAssertion
from authserver.services.accounts import create_account, disable_account
from authserver.services.client_keys import add_key

from ..conftest import ISSUER, TOKEN_ENDPOINT, make_tenant, public_pem
from .helpers import (
    assert_no_store,
    assert_nothing_issued,
    assert_oauth_error,
    b64url,
    b64url_json,
    case,
    count,
    unverified_claims,
)


def post(http, tenant, assertion: str, **extra):
    return http.post("/oauth/token", data=tenant.token_form(assertion, **extra), headers=tenant.auth())


def refused(http, tenant, assertion: str, error: str = "invalid_grant", status: int = 400) -> dict:
    body = assert_oauth_error(post(http, tenant, assertion), status, error)
    assert_nothing_issued()
    return body


def accepted(http, tenant, assertion: str) -> dict:
    response = post(http, tenant, assertion)
    assert response.status_code == 200, response.get_json()
    assert_no_store(response)
    return response.get_json()


def _claims(tenant, **overrides) -> dict:
    now = int(time.time())
    body = {"iss": tenant.client_id, "sub": tenant.account_id, "aud": TOKEN_ENDPOINT,
            "iat": now, "exp": now + 120, "jti": uuid.uuid4().hex}
    body.update(overrides)
    return body


def _hand_made(header: dict, claims: dict, signature: bytes = b"") -> str:
    return f"{b64url_json(header)}.{b64url_json(claims)}.{b64url(signature)}"


def _es256_signed(header: dict, claims: dict, private_key) -> str:
    """A JWS signed with ES256 whatever its header says (PyJWT refuses to write odd headers)."""
    signing_input = f"{b64url_json(header)}.{b64url_json(claims)}"
    signature = ECAlgorithm(ECAlgorithm.SHA256).sign(signing_input.encode(), private_key)
    return f"{signing_input}.{b64url(signature)}"


# --- iss and sub -----------------------------------------------------------------------------------

def test_iss_must_be_the_authenticated_client(http, tenant, other_tenant):
    body = refused(http, tenant, tenant.assertion(iss=other_tenant.client_id))
    assert "iss" in body["error_description"]


def test_another_clients_assertion_is_refused_with_this_clients_credentials(http, tenant, other_tenant):
    # Signed by the other client with its own key and iss: presenting it as this client fails.
    refused(http, tenant, other_tenant.assertion())


def test_iss_missing_is_refused(http, tenant):
    refused(http, tenant, tenant.assertion(drop=("iss",)))


def test_sub_unknown_is_refused(http, tenant):
    body = refused(http, tenant, tenant.assertion(sub="acc_" + "0" * 20))
    assert "sub" in body["error_description"]


def test_sub_of_another_organization_is_refused(http, tenant, other_tenant):
    refused(http, tenant, tenant.assertion(sub=other_tenant.account_id))


def test_sub_disabled_is_refused(http, tenant):
    disable_account(tenant.account_id)
    refused(http, tenant, tenant.assertion())


def test_sub_another_active_account_of_the_organization_is_accepted(http, tenant):
    second = create_account(tenant.org_id, "Second worker", "service")
    body = accepted(http, tenant, tenant.assertion(sub=second.account_id))
    assert unverified_claims(body["access_token"])["sub"] == second.account_id


def test_sub_not_a_non_empty_string_is_refused(http, tenant):
    for sub in (123, "", None, ["x"]):
        with case(sub):
            refused(http, tenant, tenant.assertion(sub=sub))


def test_sub_missing_is_refused(http, tenant):
    refused(http, tenant, tenant.assertion(drop=("sub",)))


# --- aud -------------------------------------------------------------------------------------------

def test_aud_wrong_is_refused(http, tenant):
    for aud in ("https://evil.example/oauth/token", ISSUER + "/oauth/introspect", ISSUER + "/",
                "HTTP://LOCALHOST/oauth/token", ["https://evil.example"], [], 42):
        with case(aud):
            refused(http, tenant, tenant.assertion(aud=aud))


def test_aud_missing_is_refused(http, tenant):
    refused(http, tenant, tenant.assertion(drop=("aud",)))


def test_aud_token_endpoint_issuer_or_array_is_accepted(http, tenant):
    for aud in (TOKEN_ENDPOINT, ISSUER, [TOKEN_ENDPOINT], ["https://other.example", ISSUER]):
        with case(aud):
            accepted(http, tenant, tenant.assertion(aud=aud))


# --- exp, nbf, iat ------------------------------------------------------------------------------

def test_exp_missing_is_refused(http, tenant):
    body = refused(http, tenant, tenant.assertion(drop=("exp",)))
    assert "exp" in body["error_description"]


def test_exp_past_is_refused(http, tenant):
    now = int(time.time())
    refused(http, tenant, tenant.assertion(iat=now - 600, exp=now - 120))


def test_exp_within_the_clock_skew_is_accepted(http, tenant):
    now = int(time.time())
    accepted(http, tenant, tenant.assertion(iat=now - 100, exp=now - 20))


def test_exp_too_far_ahead_is_refused(http, tenant):
    now = int(time.time())
    body = refused(http, tenant, tenant.assertion(exp=now + 600 + 60 + 30))
    assert "exp" in body["error_description"]
    refused(http, tenant, tenant.assertion(exp=now + 86400 * 365))


def test_exp_at_the_maximum_lifetime_is_accepted(http, tenant):
    accepted(http, tenant, tenant.assertion(exp=int(time.time()) + 600))


def test_exp_not_a_number_is_refused(http, tenant):
    for exp in ("soon", str(int(time.time()) + 60), 1.5e12, None):
        with case(exp):
            refused(http, tenant, tenant.assertion(exp=exp))


def test_nbf_in_the_future_is_refused(http, tenant):
    refused(http, tenant, tenant.assertion(nbf=int(time.time()) + 300))


def test_nbf_within_the_clock_skew_is_accepted(http, tenant):
    accepted(http, tenant, tenant.assertion(nbf=int(time.time()) + 20))


def test_iat_in_the_future_is_refused(http, tenant):
    refused(http, tenant, tenant.assertion(iat=int(time.time()) + 300))


# --- jti ---------------------------------------------------------------------------------------

def test_jti_missing_is_refused(http, tenant):
    body = refused(http, tenant, tenant.assertion(drop=("jti",)))
    assert "jti" in body["error_description"]


def test_jti_empty_too_long_or_not_a_string_is_refused(http, tenant):
    for jti in ("", "x" * 256, 42, None):
        with case(jti):
            refused(http, tenant, tenant.assertion(jti=jti))


def test_jti_reused_is_refused_and_only_one_token_exists(http, tenant):
    assertion = tenant.assertion()
    accepted(http, tenant, assertion)
    body = assert_oauth_error(post(http, tenant, assertion), 400, "invalid_grant")
    assert "jti" in body["error_description"] or "already" in body["error_description"]
    # Same jti in a different, freshly signed assertion: still a replay.
    jti = unverified_claims(assertion)["jti"]
    assert_oauth_error(post(http, tenant, tenant.assertion(jti=jti)), 400, "invalid_grant")
    assert count(AccessToken) == 1
    assert count(UsedAssertion, UsedAssertion.jti == jti) == 1


def test_used_jti_is_kept_at_least_until_the_assertion_expires(http, tenant):
    assertion = tenant.assertion()
    accepted(http, tenant, assertion)
    exp = unverified_claims(assertion)["exp"]
    from sqlalchemy import select

    from authserver.extensions import db

    stored = db.session.execute(select(UsedAssertion.expires_at)).scalar_one()
    assert stored >= exp


def test_jti_is_scoped_to_the_client(http, tenant, other_tenant):
    jti = uuid.uuid4().hex
    accepted(http, tenant, tenant.assertion(jti=jti))
    response = post(http, other_tenant, other_tenant.assertion(jti=jti))
    assert response.status_code == 200, response.get_json()
    assert count(UsedAssertion, UsedAssertion.jti == jti) == 2


def test_refused_assertion_does_not_burn_its_jti(http, tenant):
    jti = uuid.uuid4().hex
    refused(http, tenant, tenant.assertion(jti=jti, sub="acc_unknown"))
    accepted(http, tenant, tenant.assertion(jti=jti))


# --- algorithms -------------------------------------------------------------------------------

def test_alg_none_is_refused(http, tenant):
    unsigned = _hand_made({"alg": "none", "typ": "JWT", "kid": tenant.kid}, _claims(tenant))
    body = refused(http, tenant, unsigned)
    assert "alg" in body["error_description"]
    refused(http, tenant, _hand_made({"alg": "None", "kid": tenant.kid}, _claims(tenant)))


def test_hmac_keyed_with_the_public_key_pem_is_refused(http, tenant):
    """Algorithm confusion: an HMAC over the registered public key's PEM must not verify."""
    pem = public_pem(tenant.private_key)
    for alg, digest in (("HS256", hashlib.sha256), ("HS384", hashlib.sha384), ("HS512", hashlib.sha512)):
        header = b64url_json({"alg": alg, "typ": "JWT", "kid": tenant.kid})
        payload = b64url_json(_claims(tenant))
        signing_input = f"{header}.{payload}".encode()
        for secret in (pem, pem.strip()):
            forged = f"{header}.{payload}.{b64url(hmac.new(secret, signing_input, digest).digest())}"
            with case(alg):
                body = refused(http, tenant, forged)
                assert "alg" in body["error_description"]


def test_alg_not_fitting_the_key_type_is_refused(http, app, rsa_key):
    rsa_tenant = make_tenant("Initech", key=rsa_key)
    attacker = ec.generate_private_key(ec.SECP256R1())
    refused(http, rsa_tenant, rsa_tenant.assertion(key=attacker, alg="ES256"))


def test_rsa_client_key_accepts_rsa_and_pss_algorithms(http, app, rsa_key):
    rsa_tenant = make_tenant("Initech", key=rsa_key)
    for alg in ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512"):
        with case(alg):
            accepted(http, rsa_tenant, rsa_tenant.assertion(alg=alg))


def test_ed25519_and_p384_client_keys_are_accepted(http, app):
    ed = make_tenant("Umbrella", key=ed25519.Ed25519PrivateKey.generate())
    accepted(http, ed, ed.assertion())
    p384 = make_tenant("Hooli", key=ec.generate_private_key(ec.SECP384R1()))
    accepted(http, p384, p384.assertion(alg="ES384"))
    # The same key announced as ES256: the algorithm is pinned to the key's curve.
    _, payload, signature = p384.assertion(alg="ES384").split(".")
    relabelled = ".".join([b64url_json({"alg": "ES256", "kid": p384.kid}), payload, signature])
    refused_body = assert_oauth_error(post(http, p384, relabelled), 400, "invalid_grant")
    assert "alg" in refused_body["error_description"]


# --- where the key comes from ------------------------------------------------------------------

def test_key_in_a_jwk_header_is_never_used(http, tenant):
    attacker = ec.generate_private_key(ec.SECP256R1())
    attacker_jwk = json.loads(ECAlgorithm.to_jwk(attacker.public_key()))
    refused(http, tenant, tenant.assertion(key=attacker, headers={"jwk": attacker_jwk}))
    refused(http, tenant, tenant.assertion(key=attacker, headers={"kid": tenant.kid, "jwk": attacker_jwk}))
    refused(http, tenant, tenant.assertion(key=attacker, headers={"kid": "attacker", "jwk": attacker_jwk}))


def test_key_from_a_jku_or_x5u_header_is_never_fetched(http, tenant):
    attacker = ec.generate_private_key(ec.SECP256R1())
    started = time.monotonic()
    refused(http, tenant, tenant.assertion(key=attacker, headers={"jku": "http://192.0.2.1/jwks.json"}))
    refused(http, tenant, tenant.assertion(key=attacker, headers={"kid": tenant.kid, "jku": "http://192.0.2.1/jwks.json"}))
    refused(http, tenant, tenant.assertion(key=attacker, headers={"x5u": "http://192.0.2.1/cert.pem"}))
    # 192.0.2.1 (TEST-NET-1) never answers: a fetch would have hung far longer than this.
    assert time.monotonic() - started < 10


def test_unregistered_key_is_refused(http, tenant):
    attacker = ec.generate_private_key(ec.SECP256R1())
    body = refused(http, tenant, tenant.assertion(key=attacker))
    assert "signature" in body["error_description"]


def test_unknown_kid_is_refused(http, tenant):
    body = refused(http, tenant, tenant.assertion(headers={"kid": "no-such-key"}))
    assert "kid" in body["error_description"]


def test_single_key_without_kid_is_used(http, tenant):
    accepted(http, tenant, tenant.assertion(headers={}))


def test_two_keys_require_a_kid(http, tenant):
    second = ec.generate_private_key(ec.SECP256R1())
    add_key(tenant.client_id, public_pem(second), kid="key-2")
    body = refused(http, tenant, tenant.assertion(headers={}))
    assert "kid" in body["error_description"]
    refused(http, tenant, tenant.assertion(key=second, headers={}))
    accepted(http, tenant, tenant.assertion())
    accepted(http, tenant, tenant.assertion(key=second, headers={"kid": "key-2"}))
    # A kid naming the other registered key does not verify.
    assert_oauth_error(
        post(http, tenant, tenant.assertion(key=second, headers={"kid": tenant.kid})), 400, "invalid_grant"
    )


def test_kid_not_a_string_is_refused(http, tenant):
    refused(http, tenant, _es256_signed({"alg": "ES256", "kid": 1}, _claims(tenant), tenant.private_key))
    refused(http, tenant, _es256_signed({"alg": "ES256", "kid": [tenant.kid]}, _claims(tenant), tenant.private_key))
    # The control: the same hand-made signing with a proper kid is accepted.
    accepted(http, tenant, _es256_signed({"alg": "ES256", "kid": tenant.kid}, _claims(tenant), tenant.private_key))


def test_unknown_crit_header_is_refused(http, tenant):
    header = {"alg": "ES256", "kid": tenant.kid, "crit": ["urn:example:unknown"], "urn:example:unknown": 1}
    body = refused(http, tenant, _es256_signed(header, _claims(tenant), tenant.private_key))
    assert "crit" in body["error_description"]
    refused(
        http,
        tenant,
        _es256_signed({"alg": "ES256", "kid": tenant.kid, "crit": ["exp"]}, _claims(tenant), tenant.private_key),
    )
    refused(
        http,
        tenant,
        _es256_signed({"alg": "ES256", "kid": tenant.kid, "crit": []}, _claims(tenant), tenant.private_key),
    )


# --- size and shape ---------------------------------------------------------------------------

def test_oversized_assertion_is_invalid_request(http, tenant):
    assertion = tenant.assertion(padding="x" * 9000)
    assert 8192 < len(assertion) < 16000
    body = refused(http, tenant, assertion, error="invalid_request")
    assert "8192" in body["error_description"]


def test_assertion_just_under_the_limit_is_accepted(http, tenant):
    assertion = tenant.assertion(padding="x" * 5800)
    assert 7000 < len(assertion) <= 8192
    accepted(http, tenant, assertion)


GARBAGE = (
    "not-a-jwt",
    "a.b.c",
    "....",
    "eyJhbGciOiJFUzI1NiJ9.eyJ9.",
    "\u00e9\u00e8.\u00e0.\u00fc",
    "eyJhbGciOiJFUzI1NiIsImtpZCI6ImtleS0xIn0.bm90IGpzb24.c2ln",  # payload "not json"
    "W10.e30.c2ln",  # header is a JSON array
    "eyJhbGciOiJFUzI1NiIsImtpZCI6ImtleS0xIn0.W10.c2ln",  # payload is a JSON array
    "a.b.c.d.e",  # JWE compact serialization shape
    "\x01\x02\x03",
)


def test_garbage_assertion_is_invalid_grant(http, tenant):
    for garbage in GARBAGE:
        with case(garbage):
            refused(http, tenant, garbage)


def test_tampered_claims_fail_the_signature(http, tenant, other_tenant):
    header, _, signature = tenant.assertion().split(".")
    forged = ".".join([header, b64url_json(_claims(tenant, sub=other_tenant.account_id)), signature])
    refused(http, tenant, forged)


def test_missing_assertion_is_invalid_request(http, tenant):
    response = http.post(
        "/oauth/token", data={"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer"}, headers=tenant.auth()
    )
    assert_oauth_error(response, 400, "invalid_request")
    response = post(http, tenant, "")
    assert_oauth_error(response, 400, "invalid_request")
    assert_nothing_issued()
