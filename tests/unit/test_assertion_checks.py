"""The claim and header checks of client-signed JWTs (authserver.oauth.assertions, RFC 7523 §3, RFC 8725),
with keys made here and real signatures."""
from __future__ import annotations

import math
import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from authserver.config import load_settings
from authserver.crypto.keys import parse_public_key
from authserver.oauth.assertions import GRANT_RULES, AssertionRules, verify_assertion
from authserver.oauth.errors import InvalidGrantError, InvalidRequestError

ISSUER = "https://as.example.test"
CLIENT = "0123456789abcdef0123456789abcdef"


def public_pem(private_key) -> str:
    return private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


@pytest.fixture(scope="module")
def ec_key():
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture(scope="module")
def settings(tmp_path_factory):
    return load_settings({"instance_path": str(tmp_path_factory.mktemp("instance")), "issuer": ISSUER})


@pytest.fixture(scope="module")
def keys(ec_key):
    return {"k1": parse_public_key(public_pem(ec_key), kid="k1")}


def claims(**changes) -> dict:
    now = int(time.time())
    base = {"iss": CLIENT, "sub": "acc_1", "aud": ISSUER + "/oauth/token", "exp": now + 120, "iat": now, "jti": "j-1"}
    base.update(changes)
    return {name: value for name, value in base.items() if value is not None}


def sign(private_key, body: dict, alg: str = "ES256", **header) -> str:
    return jwt.encode(body, private_key, algorithm=alg, headers={"kid": "k1", **header})


def refusal(assertion: str, keys, settings, rules: AssertionRules = GRANT_RULES) -> str:
    with pytest.raises(InvalidGrantError) as caught:
        verify_assertion(assertion, CLIENT, keys, settings, rules)
    return caught.value.description


def test_a_valid_assertion_gives_its_subject_jti_and_expiry(ec_key, keys, settings):
    body = claims(exp=time.time() + 60.5)
    verified = verify_assertion(sign(ec_key, body), CLIENT, keys, settings)
    assert (verified.subject, verified.jti, verified.expires_at) == ("acc_1", "j-1", math.ceil(body["exp"]))


@pytest.mark.parametrize("aud", [ISSUER, ISSUER + "/oauth/token", ["https://other.example", ISSUER]])
def test_the_issuer_or_the_token_endpoint_is_an_accepted_audience(ec_key, keys, settings, aud):
    assert verify_assertion(sign(ec_key, claims(aud=aud)), CLIENT, keys, settings).subject == "acc_1"


@pytest.mark.parametrize("changes,expected", [
    ({"iss": None}, "lacks the required claim iss"),
    ({"sub": None}, "lacks the required claim sub"),
    ({"aud": None}, "lacks the required claim aud"),
    ({"exp": None}, "lacks the required claim exp"),
    ({"jti": None}, "lacks the required claim jti"),
    ({"iss": "another-client"}, "iss must be the client_id"),
    ({"aud": "https://other.example/oauth/token"}, "aud must be this server's issuer"),
    ({"aud": [ISSUER + "x"]}, "aud must be this server's issuer"),
    ({"exp": "tomorrow"}, "exp must be a NumericDate"),
    ({"exp": int(time.time()) - 3600}, "has expired"),
    ({"exp": int(time.time()) + 86400}, "exp is too far ahead"),
    ({"nbf": int(time.time()) + 3600}, "not valid yet"),
    ({"iat": int(time.time()) + 3600}, "not valid yet"),
    ({"iat": "now"}, "iat must be a NumericDate"),
    ({"sub": ""}, "sub must be a non-empty string"),
    ({"sub": "acc\x00"}, "sub must be a non-empty string"),
    ({"sub": 42}, "sub must be a non-empty string"),
    ({"jti": "j" * 256}, "jti must be a string of 1 to 255"),
    ({"jti": ""}, "jti must be a string of 1 to 255"),
])
def test_each_claim_rule_refuses_with_its_own_description(ec_key, keys, settings, changes, expected):
    description = refusal(sign(ec_key, claims(**changes)), keys, settings)
    assert expected in description and description.startswith("The assertion")


def test_a_signature_by_another_key_is_refused(keys, settings):
    other = ec.generate_private_key(ec.SECP256R1())
    assert "signature does not verify" in refusal(sign(other, claims()), keys, settings)


def test_an_alg_that_does_not_fit_the_key_is_refused(keys, settings):
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    assert "does not fit the selected EC-P-256 key" in refusal(sign(rsa_key, claims(), "RS256"), keys, settings)


@pytest.mark.parametrize("alg", ["HS256", "none"])
def test_symmetric_and_unsigned_assertions_are_refused_before_any_key(keys, settings, alg):
    token = jwt.encode(claims(), "s" * 32 if alg == "HS256" else None, algorithm=alg, headers={"kid": "k1"})
    assert "alg is not accepted" in refusal(token, keys, settings)


def test_critical_headers_are_refused(ec_key, keys, settings):
    assert "critical header" in refusal(sign(ec_key, claims(), crit=["exp"], exp=1), keys, settings)


def test_an_unknown_kid_and_a_missing_kid_among_several_keys_are_refused(ec_key, keys, settings):
    assert "kid does not name a key" in refusal(sign(ec_key, claims(), kid="nope"), keys, settings)
    second = ec.generate_private_key(ec.SECP256R1())
    two = {**keys, "k2": parse_public_key(public_pem(second), kid="k2")}
    token = jwt.encode(claims(), ec_key, algorithm="ES256")
    assert "must carry a kid" in refusal(token, two, settings)
    assert verify_assertion(token, CLIENT, keys, settings).jti == "j-1"  # one key: no kid needed


def test_an_oversized_assertion_is_an_invalid_request(ec_key, keys, settings):
    token = sign(ec_key, claims(pad="x" * settings.assertion_max_bytes))
    with pytest.raises(InvalidRequestError, match="larger than"):
        verify_assertion(token, CLIENT, keys, settings)


def test_key_failures_answer_one_description_when_the_rules_say_so(ec_key, keys, settings):
    rules = AssertionRules(parameter="client_assertion", endpoint_path="/oauth/introspect",
                           endpoint_label="introspection endpoint URL",
                           error=lambda description: InvalidGrantError(description=description),
                           key_failure="The client could not be authenticated.")
    other = ec.generate_private_key(ec.SECP256R1())
    assert refusal(sign(ec_key, claims(), kid="nope"), keys, settings, rules) == rules.key_failure
    assert refusal(sign(other, claims()), keys, settings, rules) == rules.key_failure
    # claim errors still say what is wrong, and the client assertion's own audience applies
    body = claims(aud=ISSUER + "/oauth/token")
    assert "aud must be this server's issuer or introspection endpoint URL" in refusal(sign(ec_key, body), keys,
                                                                                      settings, rules)
