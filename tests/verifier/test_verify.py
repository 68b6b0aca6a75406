"""Offline verification against a local issuer: every check of RFC 9068 §4 and RFC 8725 the
verifier makes, and the JWKS cache (refresh on unknown kid, rate limit, rotation, outages)."""
from __future__ import annotations

import subprocess
import sys
import threading
import time
import uuid

import jwt
import pytest
from authserver_verifier import (
    AccessToken,
    InsufficientScope,
    InvalidToken,
    VerificationError,
    Verifier,
    VerifierUnavailable,
)
from cryptography.hazmat.primitives import serialization

from .local_issuer import AUDIENCE, ORG_ID, hs256_token, unsigned_token


def refused(verifier, token, match: str, **kwargs) -> InvalidToken:
    with pytest.raises(InvalidToken, match=match) as caught:
        verifier.verify(token, **kwargs)
    error = caught.value
    assert (error.error, error.status_code) == ("invalid_token", 401)
    assert token not in error.description and token.split(".")[1] not in error.description
    return error


# -- construction -------------------------------------------------------------------------------

@pytest.mark.parametrize("algorithms", [("none",), ("RS256", "None"), ("HS256",), ("RS256", "hs512"), ("HS384",),
                                        ("XYZ256",), ()])
def test_symmetric_none_and_unknown_algorithms_are_refused_at_construction(algorithms):
    with pytest.raises(ValueError):
        Verifier("https://auth.example.com", AUDIENCE, algorithms=algorithms)


@pytest.mark.parametrize("issuer, audience", [("", AUDIENCE), ("auth.example.com", AUDIENCE),
                                              ("file:///etc/passwd", AUDIENCE), ("https://auth.example.com", "")])
def test_issuer_and_audience_are_required(issuer, audience):
    with pytest.raises(ValueError):
        Verifier(issuer, audience)


def test_introspection_client_must_be_a_pair():
    with pytest.raises(ValueError):
        Verifier("https://auth.example.com", AUDIENCE, introspection_client=("only-an-id",))


def test_importing_the_library_does_not_import_flask():
    code = "import sys, authserver_verifier; assert 'flask' not in sys.modules, 'flask imported'"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=30)


# -- accepted tokens ----------------------------------------------------------------------------

@pytest.mark.parametrize("kid", ["rsa-1", "ec-1", "ed-1"])
def test_valid_token_of_each_algorithm(issuer, verifier, kid):
    token = issuer.mint(kid)
    access_token = verifier.verify(token)
    assert isinstance(access_token, AccessToken)
    assert access_token.sub == "account-1"
    assert access_token.client_id == "client-1"
    assert access_token.org_id == ORG_ID
    assert access_token.scopes == frozenset({"orders:read", "orders:write"})
    assert access_token.aud == AUDIENCE
    assert access_token.claims["iss"] == issuer.url
    assert access_token.exp > access_token.iat and access_token.jti
    with pytest.raises(AttributeError):
        access_token.sub = "someone-else"  # frozen
    assert token not in repr(access_token)


def test_metadata_and_jwks_are_fetched_once(issuer, verifier):
    for kid in ("rsa-1", "ec-1", "ed-1", "rsa-1"):
        verifier.verify(issuer.mint(kid))
    assert (issuer.metadata_fetches, issuer.jwks_fetches) == (1, 1)


@pytest.mark.parametrize("typ", ["at+jwt", "AT+JWT", "application/at+jwt", "Application/At+JWT"])
def test_typ_variants_of_rfc9068(issuer, verifier, typ):
    assert verifier.verify(issuer.mint(typ=typ)).sub == "account-1"


def test_audience_array_containing_ours(issuer, verifier):
    assert verifier.verify(issuer.mint(aud=["https://other.example.com", AUDIENCE])).aud == AUDIENCE


def test_exp_within_leeway_is_accepted(issuer, make_verifier):
    now = int(time.time())
    token = issuer.mint(exp=now - 30, iat=now - 600)
    assert make_verifier(leeway=60).verify(token)
    refused(make_verifier(leeway=0), token, "expired")


def test_ps256_with_an_rsa_key_when_allowed(issuer, make_verifier):
    issuer.add_key("rsa-ps", "RS256")
    token = issuer.mint("rsa-ps", alg="PS256")
    refused(make_verifier(), token, "algorithm")
    # The JWK says alg RS256, so the key may verify RS256 only (RFC 7517 §4.4).
    refused(make_verifier(algorithms=("PS256", "RS256")), token, "does not match")


# -- refused tokens -----------------------------------------------------------------------------

@pytest.mark.parametrize("typ", [None, "JWT", "jwt", "at+jwt2", "application/jwt"])
def test_wrong_or_missing_typ(issuer, verifier, typ):
    refused(verifier, issuer.mint(typ=typ), "at\\+jwt")


def test_alg_none(issuer, verifier):
    token = unsigned_token({"alg": "none", "typ": "at+jwt", "kid": "rsa-1"}, issuer.claims())
    refused(verifier, token, "algorithm")
    refused(verifier, token.rsplit(".", 1)[0] + ".", "algorithm")


def test_hs256_with_the_public_key_as_secret(issuer, verifier):
    """The classic key-confusion attack (RFC 8725 §2.1): HMAC keyed with the published RSA key."""
    public_pem = issuer.private_keys["rsa-1"][1].public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    token = hs256_token({"alg": "HS256", "typ": "at+jwt", "kid": "rsa-1"}, issuer.claims(), public_pem)
    refused(verifier, token, "algorithm")


def test_algorithm_outside_the_allow_list(issuer, make_verifier):
    verifier = make_verifier(algorithms=("RS256",))
    assert verifier.verify(issuer.mint("rsa-1"))
    refused(verifier, issuer.mint("ec-1"), "algorithm")


def test_algorithm_must_fit_the_key(issuer, verifier):
    # The header says ES256 but names the RSA key, and the other way round.
    ec_token = issuer.mint("ec-1")
    header, payload, signature = ec_token.split(".")
    forged_header = jwt.utils.base64url_encode(b'{"alg":"ES256","typ":"at+jwt","kid":"rsa-1"}').decode()
    refused(verifier, f"{forged_header}.{payload}.{signature}", "does not match")
    forged_header = jwt.utils.base64url_encode(b'{"alg":"RS256","typ":"at+jwt","kid":"ec-1"}').decode()
    refused(verifier, f"{forged_header}.{payload}.{signature}", "does not match")


def test_bad_signature(issuer, verifier):
    token = issuer.mint("rsa-1")
    header, _, signature = token.split(".")
    other_payload = issuer.mint("rsa-1", sub="admin").split(".")[1]
    refused(verifier, f"{header}.{other_payload}.{signature}", "signature")


def test_signed_by_an_unpublished_key_with_a_published_kid(issuer, verifier):
    issuer.add_key("stranger", "RS256", publish=False)
    token = jwt.encode(issuer.claims(), issuer.private_keys["stranger"][1], algorithm="RS256",
                       headers={"kid": "rsa-1", "typ": "at+jwt"})
    refused(verifier, token, "signature")


@pytest.mark.parametrize("token", ["", "abc", "a.b", "a.b.c", "x" * 20000, "eyJhbGciOiJSUzI1NiJ9.e30.AAAA"])
def test_malformed(verifier, token):
    with pytest.raises(InvalidToken):
        verifier.verify(token)


def test_missing_kid(issuer, verifier):
    token = jwt.encode(issuer.claims(), issuer.private_keys["rsa-1"][1], algorithm="RS256", headers={"typ": "at+jwt"})
    refused(verifier, token, "kid")


def test_crit_header(issuer, verifier):
    refused(verifier, issuer.mint(headers={"crit": ["exp"]}), "critical")


def test_wrong_issuer(issuer, verifier):
    refused(verifier, issuer.mint(iss="https://evil.example.com"), "another authorization server")
    refused(verifier, issuer.mint(iss=issuer.url + "/"), "another authorization server")
    refused(verifier, issuer.mint(drop=("iss",)), "another authorization server")


@pytest.mark.parametrize("aud", ["https://api.example.com/billing", AUDIENCE + "/", [], ["https://other.example.com"],
                                 123, [AUDIENCE, 5]])
def test_wrong_audience(issuer, verifier, aud):
    refused(verifier, issuer.mint(aud=aud), "another API")


def test_missing_audience(issuer, verifier):
    refused(verifier, issuer.mint(drop=("aud",)), "another API")


def test_expired(issuer, verifier):
    now = int(time.time())
    refused(verifier, issuer.mint(iat=now - 7200, exp=now - 3600), "expired")


@pytest.mark.parametrize("claim", ["exp", "iat", "sub", "client_id", "jti"])
def test_required_claims(issuer, verifier, claim):
    refused(verifier, issuer.mint(drop=(claim,)), claim)


@pytest.mark.parametrize("exp", ["9999999999", True, None])
def test_exp_must_be_a_number(issuer, verifier, exp):
    token = issuer.mint(exp=exp) if exp is not None else issuer.mint(drop=("exp",))
    refused(verifier, token, "exp")


def test_nbf_in_the_future(issuer, verifier):
    now = int(time.time())
    refused(verifier, issuer.mint(nbf=now + 600), "not valid yet")
    assert verifier.verify(issuer.mint(nbf=now + 30))  # within the leeway


def test_iat_in_the_future(issuer, verifier):
    refused(verifier, issuer.mint(iat=int(time.time()) + 600), "future")


def test_org_id_pinning(issuer, make_verifier):
    verifier = make_verifier(org_id=ORG_ID)
    assert verifier.verify(issuer.mint()).org_id == ORG_ID
    refused(verifier, issuer.mint(org_id="org-2"), "another organization")
    refused(verifier, issuer.mint(drop=("org_id",)), "another organization")
    # Without pinning any organization is accepted.
    assert make_verifier().verify(issuer.mint(org_id="org-2")).org_id == "org-2"


def test_scopes(issuer, verifier):
    token = issuer.mint(scope="orders:read profile")
    assert verifier.verify(token, required_scopes=["orders:read"]).scopes == {"orders:read", "profile"}
    assert verifier.verify(token, required_scopes="orders:read profile")
    with pytest.raises(InsufficientScope) as caught:
        verifier.verify(token, required_scopes=["orders:read", "orders:write", "orders:admin"])
    error = caught.value
    assert isinstance(error, VerificationError)
    assert (error.error, error.status_code) == ("insufficient_scope", 403)
    assert error.scopes == ("orders:admin", "orders:read", "orders:write")
    assert "orders:admin orders:write" in error.description
    with pytest.raises(InsufficientScope):
        verifier.verify(issuer.mint(drop=("scope",)), required_scopes=["orders:read"])
    # "orders" is not "orders:read": scopes are compared whole.
    with pytest.raises(InsufficientScope):
        verifier.verify(issuer.mint(scope="orders:read"), required_scopes=["orders"])


def test_scope_must_be_a_string(issuer, verifier):
    refused(verifier, issuer.mint(scope=["orders:read"]), "scope")


# -- discovery ----------------------------------------------------------------------------------

def test_metadata_issuer_mismatch(issuer, verifier):
    issuer.metadata_overrides["issuer"] = issuer.url + "/"
    with pytest.raises(VerifierUnavailable, match="issuer") as caught:
        verifier.verify(issuer.mint())
    assert caught.value.status_code == 503
    assert issuer.jwks_fetches == 0  # the keys of a mismatched issuer are never used


def test_metadata_jwks_uri_must_be_http(issuer, verifier):
    issuer.metadata_overrides["jwks_uri"] = "file:///etc/passwd"
    with pytest.raises(VerifierUnavailable, match="jwks_uri"):
        verifier.verify(issuer.mint())


def test_issuer_down_without_cached_keys(issuer, verifier, clock):
    issuer.down = True
    token = issuer.mint()
    with pytest.raises(VerifierUnavailable) as caught:
        verifier.verify(token)
    assert caught.value.status_code == 503 and token not in caught.value.description
    # Retries are bounded too: not one fetch per request.
    for _ in range(10):
        with pytest.raises(VerifierUnavailable):
            verifier.verify(token)
    assert issuer.metadata_fetches == 1
    issuer.down = False
    clock.advance(6)
    assert verifier.verify(token)


def test_issuer_unreachable_without_cached_keys(issuer, make_verifier):
    issuer.stop()
    with pytest.raises(VerifierUnavailable):
        make_verifier(timeout=1.0).verify(issuer.mint())


# -- JWKS cache ---------------------------------------------------------------------------------

def test_unknown_kid_refetches_once_then_fails(issuer, verifier, clock):
    verifier.verify(issuer.mint("rsa-1"))
    assert issuer.jwks_fetches == 1
    issuer.add_key("unpublished", "RS256", publish=False)
    token = issuer.mint("unpublished")
    clock.advance(31)
    refused(verifier, token, "key this resource server does not know")
    assert issuer.jwks_fetches == 2
    refused(verifier, token, "key this resource server does not know")
    assert issuer.jwks_fetches == 2


def test_refetch_rate_limit(issuer, verifier, clock):
    verifier.verify(issuer.mint("rsa-1"))
    clock.advance(31)
    for _ in range(50):
        refused(verifier, issuer.mint("rsa-1", headers={"kid": uuid.uuid4().hex}), "does not know")
    assert issuer.jwks_fetches == 2  # the first verify's fetch plus one
    clock.advance(31)
    refused(verifier, issuer.mint("rsa-1", headers={"kid": uuid.uuid4().hex}), "does not know")
    assert issuer.jwks_fetches == 3


def test_refetch_rate_limit_across_threads(issuer, verifier, clock):
    verifier.verify(issuer.mint("rsa-1"))
    clock.advance(31)
    tokens = [issuer.mint("rsa-1", headers={"kid": uuid.uuid4().hex}) for _ in range(50)]
    outcomes = []

    def attempt(token):
        try:
            verifier.verify(token)
            outcomes.append("accepted")
        except VerificationError as error:
            outcomes.append(error.error)

    threads = [threading.Thread(target=attempt, args=(token,)) for token in tokens]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert outcomes == ["invalid_token"] * 50
    assert issuer.jwks_fetches <= 2


def test_key_rotation_is_picked_up_through_the_unknown_kid(issuer, verifier, clock):
    verifier.verify(issuer.mint("rsa-1"))
    issuer.add_key("rsa-2", "RS256")
    clock.advance(31)
    assert verifier.verify(issuer.mint("rsa-2")).sub == "account-1"
    assert issuer.jwks_fetches == 2
    assert verifier.verify(issuer.mint("rsa-1"))  # the old key stays while the issuer publishes it
    assert issuer.jwks_fetches == 2


def test_rotation_within_the_rate_limit_waits(issuer, verifier, clock):
    """A kid first seen within min_refresh_interval of the last fetch is refused until the next window."""
    verifier.verify(issuer.mint("rsa-1"))
    issuer.add_key("rsa-3", "RS256")
    refused(verifier, issuer.mint("rsa-3"), "does not know")
    clock.advance(30)
    assert verifier.verify(issuer.mint("rsa-3"))


def test_cache_control_max_age_is_honoured(issuer, verifier, clock):
    verifier.verify(issuer.mint())
    clock.advance(59)
    verifier.verify(issuer.mint())
    assert issuer.jwks_fetches == 1
    clock.advance(2)  # past max-age=60
    verifier.verify(issuer.mint())
    assert issuer.jwks_fetches == 2


def test_max_age_is_bounded_by_max_jwks_age(issuer, make_verifier, clock):
    issuer.cache_control = "public, max-age=86400"
    verifier = make_verifier(max_jwks_age=300)
    verifier.verify(issuer.mint())
    clock.advance(299)
    verifier.verify(issuer.mint())
    assert issuer.jwks_fetches == 1
    clock.advance(2)
    verifier.verify(issuer.mint())
    assert issuer.jwks_fetches == 2


def test_key_removed_at_the_issuer_is_refused_after_a_refresh(issuer, verifier, clock):
    token = issuer.mint("ec-1")
    verifier.verify(token)
    issuer.published.remove("ec-1")
    clock.advance(61)
    verifier.verify(issuer.mint("rsa-1"))  # the stale cache refreshes
    refused(verifier, token, "does not know")


def test_issuer_down_with_cached_keys_still_verifies(issuer, verifier, clock):
    verifier.verify(issuer.mint("rsa-1"))
    issuer.down = True
    clock.advance(3600)
    assert verifier.verify(issuer.mint("rsa-1"))
    assert verifier.verify(issuer.mint("ec-1"))
    assert issuer.jwks_fetches + issuer.metadata_fetches >= 2  # it did try again
    # Unknown kids are still refused (not 503): the cached keys answer.
    refused(verifier, issuer.mint("rsa-1", headers={"kid": "nope"}), "does not know")


def test_issuer_gone_with_cached_keys_still_verifies(issuer, make_verifier, clock):
    verifier = make_verifier(timeout=1.0)
    verifier.verify(issuer.mint("rsa-1"))
    issuer.stop()
    clock.advance(3600)
    assert verifier.verify(issuer.mint("ed-1"))


def test_a_broken_jwks_keeps_the_last_good_keys(issuer, verifier, clock):
    verifier.verify(issuer.mint("rsa-1"))
    issuer.metadata_overrides["jwks_uri"] = issuer.url + "/missing"
    verifier._metadata = None
    clock.advance(61)
    assert verifier.verify(issuer.mint("rsa-1"))


def test_unusable_jwks_entries_are_skipped(issuer, verifier):
    from authserver_verifier.verifier import parse_jwks

    good = issuer.jwks()["keys"][0]
    keys = parse_jwks({"keys": [
        {"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"},
        {**good, "kid": "enc", "use": "enc"},
        {**good, "kid": "no-verify", "key_ops": ["encrypt"]},
        {**good, "kid": ""},
        {"kty": "RSA", "kid": "broken", "n": "AQAB", "e": "AQAB"},
        "not a key",
        good,
    ]})
    assert list(keys) == [good["kid"]]
