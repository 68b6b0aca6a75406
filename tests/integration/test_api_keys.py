"""/clients/{client_id}/keys: public keys as PEM, JWK text or a JWK object; never private keys."""
from __future__ import annotations

import json

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from authserver.extensions import db
from authserver.models import ClientKey
from authserver.services.client_keys import MAX_KEYS_PER_CLIENT

from ..conftest import private_pem, public_pem
from .api_support import API, assert_problem


def keys_url(client_id: str) -> str:
    return f"{API}/clients/{client_id}/keys"


def kids_of(client_id: str) -> set[str]:
    return {k.kid for k in db.session.query(ClientKey).filter_by(client_id=client_id)}


def test_pem_key_registers_lists_shows_and_deletes(http, manager):
    h = manager.headers()
    cid = manager.tenant.client_id
    key = ed25519.Ed25519PrivateKey.generate()
    created = http.post(keys_url(cid), json={"key": public_pem(key).decode(), "kid": "ed-1"}, headers=h)
    assert created.status_code == 201
    body = created.get_json()
    assert body["kid"] == "ed-1" and body["kty"] == "OKP" and body["key_type"] == "Ed25519"
    assert body["jwk"]["crv"] == "Ed25519" and "d" not in body["jwk"]
    assert created.headers["Location"] == f"{keys_url(cid)}/ed-1"
    assert kids_of(cid) == {"key-1", "ed-1"}

    assert {k["kid"] for k in http.get(keys_url(cid), headers=h).get_json()["items"]} == {"key-1", "ed-1"}
    assert http.get(f"{keys_url(cid)}/ed-1", headers=h).get_json() == body

    assert http.delete(f"{keys_url(cid)}/ed-1", headers=h).status_code == 204
    assert kids_of(cid) == {"key-1"}
    assert_problem(http.get(f"{keys_url(cid)}/ed-1", headers=h), 404)
    assert_problem(http.delete(f"{keys_url(cid)}/ed-1", headers=h), 404)


def test_jwk_object_and_jwk_text_are_accepted(http, manager, rsa_key):
    cid = manager.tenant.client_id
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(rsa_key.public_key()))
    as_object = http.post(keys_url(cid), json={**jwk, "kid": "rsa-object"}, headers=manager.headers())
    assert as_object.status_code == 201, as_object.get_json()
    assert as_object.get_json()["key_type"] == "RSA-2048"
    ec_jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(ec.generate_private_key(ec.SECP384R1()).public_key()))
    as_text = http.post(keys_url(cid), json={"key": json.dumps(ec_jwk)}, headers=manager.headers())
    assert as_text.status_code == 201
    # without a kid, the RFC 7638 thumbprint names the key
    assert as_text.get_json()["kid"] and as_text.get_json()["key_type"] == "EC-P-384"
    assert len(kids_of(cid)) == 3


def test_key_registered_through_the_api_verifies_assertions(http, manager):
    key = ec.generate_private_key(ec.SECP256R1())
    kid = "api/rotated 2"  # kids may hold slashes and spaces
    created = http.post(keys_url(manager.tenant.client_id), json={"key": public_pem(key).decode(), "kid": kid},
                        headers=manager.headers())
    assert created.status_code == 201
    assertion = manager.tenant.assertion(key=key, headers={"kid": kid})
    token = http.post("/oauth/token", data=manager.tenant.token_form(assertion, scope="read"),
                      headers=manager.tenant.auth())
    assert token.status_code == 200, token.get_json()
    from urllib.parse import quote

    assert (
        http.get(f"{keys_url(manager.tenant.client_id)}/{quote(kid, safe='')}", headers=manager.headers()).status_code
        == 200
    )
    assert (
        http.delete(
            f"{keys_url(manager.tenant.client_id)}/{quote(kid, safe='')}", headers=manager.headers()
        ).status_code
        == 204
    )
    again = http.post(
        "/oauth/token",
        data=manager.tenant.token_form(manager.tenant.assertion(key=key, headers={"kid": kid})),
        headers=manager.tenant.auth(),
    )
    assert again.status_code == 400 and again.get_json()["error"] == "invalid_grant"


@pytest.mark.parametrize("make_body", [
    lambda: {"key": private_pem(ec.generate_private_key(ec.SECP256R1())).decode()},
    lambda: {**json.loads(jwt.algorithms.ECAlgorithm.to_jwk(ec.generate_private_key(ec.SECP256R1()))), "kid": "priv"},
    lambda: {"key": "-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----"},
    lambda: {"key": public_pem(rsa.generate_private_key(public_exponent=65537, key_size=1024)).decode()},
    lambda: {"key": public_pem(ec.generate_private_key(ec.SECP256K1())).decode()},
    lambda: {"key": ""},
    lambda: {"kty": "oct", "k": "c2VjcmV0"},
    lambda: {"kty": "EC", "crv": "P-256", "x": "bad", "y": "bad"},
    lambda: {"key": json.dumps({"keys": []})},
])
def test_bad_keys_are_refused_and_nothing_is_stored(http, manager, make_body):
    response = http.post(keys_url(manager.tenant.client_id), json=make_body(), headers=manager.headers())
    body = assert_problem(response, 400)
    assert body["type"].endswith("#problem-invalid-input")
    assert "PRIVATE KEY" not in response.get_data(as_text=True)
    assert kids_of(manager.tenant.client_id) == {"key-1"}


@pytest.mark.parametrize("payload,field", [
    ({}, "text.key"),
    ({"key": 12}, "text.key"),
    ({"key": "x", "kid": 3}, "text.kid"),
    ({"key": "x", "use": "sig"}, "text.use"),
    ({"kty": 1}, "jwk.kty"),
])
def test_key_schema_violations_are_422(http, manager, payload, field):
    assert_problem(http.post(keys_url(manager.tenant.client_id), json=payload, headers=manager.headers()), 422,
                   field=field)


def test_duplicate_kid_and_key_limit_are_conflicts(http, manager):
    cid = manager.tenant.client_id
    dup = http.post(keys_url(cid), json={"key": public_pem(ec.generate_private_key(ec.SECP256R1())).decode(),
                                         "kid": "key-1"}, headers=manager.headers())
    assert_problem(dup, 409, field="kid")
    for n in range(MAX_KEYS_PER_CLIENT - 1):
        pem = public_pem(ec.generate_private_key(ec.SECP256R1())).decode()
        assert http.post(keys_url(cid), json={"key": pem, "kid": f"k{n}"}, headers=manager.headers()).status_code == 201
    over = http.post(keys_url(cid), json={"key": public_pem(ec.generate_private_key(ec.SECP256R1())).decode()},
                     headers=manager.headers())
    assert_problem(over, 409)
    assert len(kids_of(cid)) == MAX_KEYS_PER_CLIENT
