"""Client public keys: PEM and JWK parsing, algorithm pinning, refusals (authserver.crypto.keys)."""
from __future__ import annotations

import json

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from authserver.crypto.keys import jwk_thumbprint, load_public_jwk, parse_public_key
from authserver.errors import InvalidInput


def _pub_pem(private_key) -> bytes:
    return private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _priv_pem(private_key) -> bytes:
    return private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


@pytest.fixture(scope="module")
def rsa2048():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def test_rfc7638_thumbprint_example():
    # RFC 7638 §3.1: the example RSA key and its SHA-256 thumbprint.
    jwk = {
        "kty": "RSA",
        "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXj"
             "BZCiFV4n3"
             "oknjhMs"
        "tn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n"
        "91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
        "e": "AQAB",
        "alg": "RS256",
        "kid": "2011-04-29",
    }
    assert jwk_thumbprint(jwk) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


def test_pem_ec_p256_pins_es256_and_defaults_kid_to_thumbprint():
    key = ec.generate_private_key(ec.SECP256R1())
    parsed = parse_public_key(_pub_pem(key))
    assert parsed.kty == "EC" and parsed.key_type == "EC-P-256"
    assert parsed.algs == ("ES256",)
    assert parsed.kid == jwk_thumbprint(parsed.jwk)
    assert parsed.jwk["use"] == "sig"
    assert "d" not in parsed.jwk


def test_pem_rsa_allows_rs_and_ps_only(rsa2048):
    parsed = parse_public_key(_pub_pem(rsa2048), kid="r1")
    assert parsed.kid == "r1" and parsed.key_type == "RSA-2048"
    assert set(parsed.algs) == {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}


def test_ed25519_and_p521():
    assert parse_public_key(_pub_pem(ed25519.Ed25519PrivateKey.generate())).algs == ("EdDSA",)
    assert parse_public_key(_pub_pem(ec.generate_private_key(ec.SECP521R1()))).algs == ("ES512",)


def test_jwk_with_alg_pins_that_algorithm_and_keeps_its_kid(rsa2048):
    jwk = json.loads(RSAAlgorithm.to_jwk(rsa2048.public_key()))
    jwk.update({"kid": "from-jwk", "alg": "PS256"})
    parsed = parse_public_key(json.dumps(jwk))
    assert parsed.kid == "from-jwk" and parsed.algs == ("PS256",)
    reloaded = load_public_jwk(json.dumps(parsed.jwk))
    assert reloaded.algs == ("PS256",) and reloaded.kid == "from-jwk"


def test_explicit_kid_overrides_the_jwks_kid():
    key = ec.generate_private_key(ec.SECP256R1())
    jwk = json.loads(ECAlgorithm.to_jwk(key.public_key()))
    jwk["kid"] = "inside"
    assert parse_public_key(json.dumps(jwk), kid="outside").kid == "outside"


@pytest.mark.parametrize("make_text,needle", [
    (lambda: _priv_pem(ec.generate_private_key(ec.SECP256R1())), "private"),
    (lambda: ECAlgorithm.to_jwk(ec.generate_private_key(ec.SECP256R1())), "private"),
    (lambda: _pub_pem(rsa.generate_private_key(public_exponent=65537, key_size=1024)), "2048"),
    (lambda: _pub_pem(ec.generate_private_key(ec.SECP256K1())), "P-256"),
    (lambda: json.dumps({"keys": []}), "JWK Set"),
    (lambda: json.dumps({"kty": "oct", "k": "c2VjcmV0"}), ""),
    (lambda: json.dumps({"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA"}), "malformed"),
    (lambda: "-----BEGIN PUBLIC KEY-----\nnot base64\n-----END PUBLIC KEY-----\n", "PEM"),
    (lambda: "hello", ""),
    (lambda: "", "empty"),
    (lambda: b"\xff\xfe\x00", "text"),
    (lambda: "[1, 2]", "kty"),
])
def test_refused_keys(make_text, needle):
    with pytest.raises(InvalidInput) as caught:
        parse_public_key(make_text())
    assert needle.lower() in caught.value.message.lower()


def test_encryption_key_and_mismatched_alg_are_refused(rsa2048):
    jwk = json.loads(RSAAlgorithm.to_jwk(rsa2048.public_key()))
    with pytest.raises(InvalidInput):
        parse_public_key(json.dumps({**jwk, "use": "enc"}))
    with pytest.raises(InvalidInput):
        parse_public_key(json.dumps({**jwk, "alg": "ES256"}))
    with pytest.raises(InvalidInput):
        parse_public_key(json.dumps({**jwk, "alg": "HS256"}))
    with pytest.raises(InvalidInput):
        parse_public_key(json.dumps({**jwk, "alg": "none"}))


@pytest.mark.parametrize("kid", ["", "   ", "x" * 129, "tab\there"])
def test_bad_kid_is_refused(kid):
    with pytest.raises(InvalidInput):
        parse_public_key(_pub_pem(ec.generate_private_key(ec.SECP256R1())), kid=kid)
