"""Metadata (RFC 8414), JWKS (RFC 7517) and JWT access tokens (RFC 9068), verified the way a
resource server does: PyJWT's PyJWKClient fetching the jwks_uri of the metadata over real HTTP."""
from __future__ import annotations

import threading

import jwt
import pytest
import requests
from werkzeug.serving import make_server

from authserver import clock
from authserver.extensions import db
from authserver.services.signing_keys import current_signing_key, rotate_signing_key

from ..conftest import DEFAULT_API, ISSUER, JWT_BEARER, get_token, make_app, make_tenant
from .helpers import unverified_claims

RFC9068_CLAIMS = {"iss", "sub", "aud", "org_id", "client_id", "scope", "jti", "iat", "exp"}
PRIVATE_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "oth", "k"}


# --- metadata and JWKS through the test client --------------------------------------------------

def test_metadata_document(http):
    response = http.get("/.well-known/oauth-authorization-server")
    assert response.status_code == 200 and response.mimetype == "application/json"
    meta = response.get_json()
    assert meta["issuer"] == ISSUER
    assert meta["token_endpoint"] == ISSUER + "/oauth/token"
    assert meta["jwks_uri"] == ISSUER + "/oauth/jwks"
    assert meta["introspection_endpoint"] == ISSUER + "/oauth/introspect"
    assert meta["revocation_endpoint"] == ISSUER + "/oauth/revoke"
    assert meta["grant_types_supported"] == [JWT_BEARER]
    assert meta["response_types_supported"] == []
    for field in ("token_endpoint_auth_methods_supported", "introspection_endpoint_auth_methods_supported",
                  "revocation_endpoint_auth_methods_supported"):
        assert sorted(meta[field]) == ["client_secret_basic", "client_secret_post", "private_key_jwt"], field
    for field in ("token_endpoint_auth_signing_alg_values_supported",
                  "introspection_endpoint_auth_signing_alg_values_supported",
                  "revocation_endpoint_auth_signing_alg_values_supported"):
        assert set(meta[field]) == {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512",
                                    "EdDSA"}, field
    assert set(meta["scopes_supported"]) >= {"read", "write", "manage"}
    assert meta["resource_indicators_supported"] is True
    assert "authorization_endpoint" not in meta  # no browser flows


def test_jwks_publishes_public_signing_keys_only(app, http):
    response = http.get("/oauth/jwks")
    assert response.status_code == 200
    assert response.mimetype in ("application/jwk-set+json", "application/json")
    keys = response.get_json()["keys"]
    assert current_signing_key().kid in [key["kid"] for key in keys]
    for key in keys:
        assert not PRIVATE_MEMBERS & set(key), sorted(key)
        assert key["use"] == "sig" and key["alg"] == "RS256" and key["kid"]
        jwt.PyJWK.from_dict(key)  # a usable public key


def test_access_token_header_and_claims(http, tenant):
    token = get_token(http, tenant, scope="write")["access_token"]
    header = jwt.get_unverified_header(token)
    assert header["typ"] == "at+jwt"
    assert header["alg"] == "RS256"
    kids = [k["kid"] for k in http.get("/oauth/jwks").get_json()["keys"]]
    assert header["kid"] in kids
    claims = unverified_claims(token)
    assert set(claims) == RFC9068_CLAIMS
    assert claims["iss"] == ISSUER and claims["aud"] == ISSUER
    assert claims["sub"] == tenant.account_id and claims["client_id"] == tenant.client_id
    assert claims["org_id"] == tenant.org_id
    assert claims["scope"] == "write"
    assert claims["exp"] - claims["iat"] == 3600


def test_signing_key_rotation_keeps_old_tokens_valid(app, http, tenant):
    old_token = get_token(http, tenant)["access_token"]
    old_kid = jwt.get_unverified_header(old_token)["kid"]
    new_key = rotate_signing_key()
    settings = app.extensions["authserver.settings"]
    # The new key is published at once but signs only after the activation delay.
    assert new_key.kid in {k["kid"] for k in http.get("/oauth/jwks").get_json()["keys"]}
    clock.shift(settings.signing_key_refresh + 1)  # workers re-read the keys
    assert jwt.get_unverified_header(get_token(http, tenant)["access_token"])["kid"] == old_kid
    clock.shift(settings.signing_key_activation_delay)
    new_token = get_token(http, tenant)["access_token"]
    assert jwt.get_unverified_header(new_token)["kid"] == new_key.kid != old_kid

    jwks = http.get("/oauth/jwks").get_json()
    assert {old_kid, new_key.kid} <= {k["kid"] for k in jwks["keys"]}
    key_set = jwt.PyJWKSet.from_dict(jwks)
    for token in (old_token, new_token):
        kid = jwt.get_unverified_header(token)["kid"]
        # The server clock moved ahead, PyJWT's did not: allow for it.
        jwt.decode(token, key_set[kid].key, algorithms=["RS256"], audience=ISSUER, issuer=ISSUER,
                   leeway=settings.signing_key_refresh + settings.signing_key_activation_delay + 60)
        answer = http.post("/oauth/introspect", data={"token": token}, headers=tenant.auth()).get_json()
        assert answer["active"] is True, kid

    # Once every token the old key signed has expired, the old key leaves the JWKS.
    clock.shift(3600 + 60 + 1)
    published = [k["kid"] for k in http.get("/oauth/jwks").get_json()["keys"]]
    assert new_key.kid in published and old_kid not in published


# --- a real HTTP server for PyJWKClient ---------------------------------------------------------

class LiveServer:
    def __init__(self, tmp_path, template):
        self._app = None
        self.server = make_server("127.0.0.1", 0, self._dispatch, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.app = make_app(tmp_path, template, issuer=self.url)
        self._app = self.app
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def _dispatch(self, environ, start_response):
        return self._app(environ, start_response)

    def close(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)
        with self.app.app_context():
            db.engine.dispose()


@pytest.fixture
def live(tmp_path, sqlite_template):
    server = LiveServer(tmp_path, sqlite_template)
    ctx = server.app.app_context()
    ctx.push()
    try:
        yield server
    finally:
        db.session.remove()
        ctx.pop()
        server.close()
        clock.reset()


def _token_over_http(live, tenant, **form) -> str:
    meta = requests.get(live.url + "/.well-known/oauth-authorization-server", timeout=10).json()
    assertion = tenant.assertion(aud=meta["token_endpoint"])
    response = requests.post(meta["token_endpoint"], data={"grant_type": JWT_BEARER, "assertion": assertion, **form},
                             auth=(tenant.client_id, tenant.client_secret), timeout=10)
    assert response.status_code == 200, response.text[:200]
    assert "no-store" in response.headers.get("Cache-Control", "")
    return response.json()["access_token"]


def test_pyjwkclient_verifies_access_tokens_from_the_metadata_jwks_uri(live):
    tenant = make_tenant()
    meta = requests.get(live.url + "/.well-known/oauth-authorization-server", timeout=10).json()
    assert meta["issuer"] == live.url and meta["jwks_uri"] == live.url + "/oauth/jwks"
    token = _token_over_http(live, tenant, scope="read")

    jwks_client = jwt.PyJWKClient(meta["jwks_uri"], timeout=10)
    signing_key = jwks_client.get_signing_key_from_jwt(token)
    header = jwt.get_unverified_header(token)
    assert header["typ"] == "at+jwt" and signing_key.key_id == header["kid"]
    claims = jwt.decode(token, signing_key.key, algorithms=["RS256"], audience=DEFAULT_API, issuer=live.url,
                        options={"require": sorted(RFC9068_CLAIMS)})
    assert set(claims) == RFC9068_CLAIMS
    assert claims["client_id"] == tenant.client_id and claims["sub"] == tenant.account_id
    assert claims["scope"] == "read"

    # A token whose signature was tampered with does not verify with the published key.
    header_b64, payload_b64, signature = token.split(".")
    forged = f"{header_b64}.{payload_b64}.{signature[:-6]}AAAAAA"
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(forged, signing_key.key, algorithms=["RS256"], audience=DEFAULT_API)


def test_pyjwkclient_follows_a_signing_key_rotation(live):
    tenant = make_tenant()
    old_token = _token_over_http(live, tenant)
    # PyJWKClient refetches the set for an unknown kid, at most once per cooldown (30 s by default);
    # a resource server sees a rotated key within that time. The test does not wait for it.
    jwks_client = jwt.PyJWKClient(live.url + "/oauth/jwks", timeout=10, cooldown_duration=0)
    old_key = jwks_client.get_signing_key_from_jwt(old_token)

    new_row = rotate_signing_key()
    settings = live.app.extensions["authserver.settings"]
    shifted = settings.signing_key_refresh + settings.signing_key_activation_delay + 1
    clock.shift(shifted)
    new_token = _token_over_http(live, tenant)
    assert jwt.get_unverified_header(new_token)["kid"] == new_row.kid

    # The client has the old key set cached; an unknown kid makes it fetch the JWKS again.
    new_key = jwks_client.get_signing_key_from_jwt(new_token)
    assert new_key.key_id == new_row.kid != old_key.key_id
    for token, key in ((old_token, jwks_client.get_signing_key_from_jwt(old_token)), (new_token, new_key)):
        # The server clock moved ahead, PyJWT's did not: allow for it.
        jwt.decode(token, key.key, algorithms=["RS256"], audience=DEFAULT_API, issuer=live.url, leeway=shifted + 60)
        answer = requests.post(live.url + "/oauth/introspect", data={"token": token},
                               auth=(tenant.client_id, tenant.client_secret), timeout=10)
        assert answer.status_code == 200 and answer.json()["active"] is True
    published = {k["kid"] for k in requests.get(live.url + "/oauth/jwks", timeout=10).json()["keys"]}
    assert published == {old_key.key_id, new_row.kid}


def test_token_error_over_http_is_no_store_json(live):
    tenant = make_tenant()
    response = requests.post(live.url + "/oauth/token", data={"grant_type": JWT_BEARER, "assertion": "x"},
                             auth=(tenant.client_id, "wrong"), timeout=10)
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
    assert response.headers["WWW-Authenticate"].lower().startswith("basic")
    assert "no-store" in response.headers.get("Cache-Control", "")
