"""The Flask decorator's answers (RFC 6750 §3) and the RFC 9728 protected resource metadata."""
from __future__ import annotations

import json
import re
import time

import flask
import pytest
from authserver_verifier import Verifier, register_protected_resource_metadata, require_token

from .local_issuer import AUDIENCE, ORG_ID

METADATA_URL = "https://api.example.com/.well-known/oauth-protected-resource/orders"


def challenge_params(value: str) -> dict:
    assert value.startswith("Bearer ")
    return dict(re.findall(r'(\w+)="([^"]*)"', value))


@pytest.fixture
def app(make_verifier, issuer):
    verifier = make_verifier(org_id=ORG_ID, introspection_client=("api-client", "api-secret"))
    app = flask.Flask(__name__)

    @app.get("/orders")
    @require_token(verifier, scopes=["orders:read"])
    def orders():
        token = flask.g.access_token
        return {"sub": token.sub, "client_id": token.client_id, "scopes": sorted(token.scopes)}

    @app.get("/open")
    @require_token(verifier)
    def anything():
        return {"sub": flask.g.access_token.sub}

    @app.post("/orders/cancel")
    @require_token(verifier, scopes="orders:write", introspect=True)
    def cancel():
        return {"cancelled_by": flask.g.access_token.sub}

    register_protected_resource_metadata(app, verifier, scopes_supported=["orders:read", "orders:write"],
                                         resource_name="Orders")
    return app


@pytest.fixture
def client(app):
    return app.test_client()


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def test_valid_token(issuer, client):
    answer = client.get("/orders", headers=bearer(issuer.mint(scope="orders:read")))
    assert answer.status_code == 200
    assert answer.json == {"sub": "account-1", "client_id": "client-1", "scopes": ["orders:read"]}


def test_scheme_is_case_insensitive(issuer, client):
    assert client.get("/orders", headers={"Authorization": "bearer " + issuer.mint()}).status_code == 200


def test_no_credentials(client):
    answer = client.get("/orders")
    assert answer.status_code == 401
    assert "error" not in answer.json and answer.json["error_description"]
    params = challenge_params(answer.headers["WWW-Authenticate"])
    assert params == {"realm": AUDIENCE, "scope": "orders:read", "resource_metadata": METADATA_URL}


def test_another_scheme_is_like_no_credentials(client):
    answer = client.get("/orders", headers={"Authorization": "Basic YTpi"})
    assert answer.status_code == 401
    assert "error" not in challenge_params(answer.headers["WWW-Authenticate"])


def test_expired_token(issuer, client):
    now = int(time.time())
    token = issuer.mint(iat=now - 7200, exp=now - 3600)
    answer = client.get("/orders", headers=bearer(token))
    assert answer.status_code == 401
    assert answer.json == {"error": "invalid_token", "error_description": "The access token has expired."}
    params = challenge_params(answer.headers["WWW-Authenticate"])
    assert params["error"] == "invalid_token"
    assert params["error_description"] == "The access token has expired."
    assert params["realm"] == AUDIENCE and params["resource_metadata"] == METADATA_URL
    assert token not in answer.get_data(as_text=True) and token not in answer.headers["WWW-Authenticate"]
    assert answer.headers["Cache-Control"] == "no-store"


def test_wrong_organization(issuer, client):
    answer = client.get("/open", headers=bearer(issuer.mint(org_id="org-2")))
    assert answer.status_code == 401 and answer.json["error"] == "invalid_token"


def test_insufficient_scope(issuer, client):
    answer = client.get("/orders", headers=bearer(issuer.mint(scope="profile")))
    assert answer.status_code == 403
    assert answer.json["error"] == "insufficient_scope"
    params = challenge_params(answer.headers["WWW-Authenticate"])
    assert params["error"] == "insufficient_scope" and params["scope"] == "orders:read"


@pytest.mark.parametrize("headers, query", [
    ({}, "?access_token=abc"),
    ({"Authorization": "Bearer"}, ""),
    ({"Authorization": "Bearer two tokens"}, ""),
    ({"Authorization": "Bearer a\"b"}, ""),
])
def test_malformed_requests(client, headers, query):
    answer = client.get("/orders" + query, headers=headers)
    assert answer.status_code == 400
    assert answer.json["error"] == "invalid_request"
    assert challenge_params(answer.headers["WWW-Authenticate"])["error"] == "invalid_request"


def test_token_in_query_and_header(issuer, client):
    token = issuer.mint()
    answer = client.get("/orders?access_token=" + token, headers=bearer(token))
    assert answer.status_code == 400 and answer.json["error"] == "invalid_request"


def test_token_in_form_body_is_not_accepted(issuer, client):
    answer = client.post("/orders/cancel", data={"access_token": issuer.mint()})
    assert answer.status_code == 401 and "error" not in answer.json


def test_issuer_down_without_keys(issuer, client):
    issuer.down = True
    answer = client.get("/orders", headers=bearer(issuer.mint()))
    assert answer.status_code == 503
    assert answer.json["error"] == "temporarily_unavailable"
    assert "WWW-Authenticate" not in answer.headers and answer.headers["Retry-After"]
    assert issuer.url not in answer.get_data(as_text=True)  # internal details stay in the log


def test_introspecting_view(issuer, client):
    token = issuer.mint(scope="orders:read orders:write")
    now = int(time.time())
    issuer.introspection_answer = {"active": True, "iss": issuer.url, "aud": AUDIENCE, "org_id": ORG_ID,
                                   "sub": "account-1", "client_id": "client-1", "scope": "orders:read orders:write",
                                   "iat": now, "exp": now + 300, "jti": "j"}
    answer = client.post("/orders/cancel", headers=bearer(token))
    assert answer.status_code == 200 and answer.json == {"cancelled_by": "account-1"}
    issuer.introspection_answer = {"active": False}  # revoked
    answer = client.post("/orders/cancel", headers=bearer(token))
    assert answer.status_code == 401 and answer.json["error"] == "invalid_token"
    assert "not active" in answer.json["error_description"]


def test_introspect_without_a_client_is_a_configuration_error(issuer):
    with pytest.raises(ValueError):
        require_token(Verifier(issuer.url, AUDIENCE), introspect=True)


def test_challenge_description_is_a_valid_quoted_string():
    from authserver_verifier import bearer_challenge

    value = bearer_challenge(realm='a "b"', error="invalid_token", description="back\\slash \"quoted\"\nnewline")
    assert "\n" not in value and "\\" not in value
    assert challenge_params(value)["error_description"] == "back slash 'quoted' newline"


# -- RFC 9728 -----------------------------------------------------------------------------------

def test_protected_resource_metadata_document(issuer):
    verifier = Verifier(issuer.url, AUDIENCE)
    assert verifier.protected_resource_metadata() == {
        "resource": AUDIENCE, "authorization_servers": [issuer.url], "bearer_methods_supported": ["header"]}
    document = verifier.protected_resource_metadata(scopes_supported=["orders:write", "orders:read"],
                                                    resource_name="Orders")
    assert document["scopes_supported"] == ["orders:read", "orders:write"]
    assert document["resource_name"] == "Orders"
    assert verifier.resource_metadata_url == METADATA_URL


def test_protected_resource_metadata_route(client, issuer):
    answer = client.get("/.well-known/oauth-protected-resource/orders")
    assert answer.status_code == 200 and answer.mimetype == "application/json"
    assert json.loads(answer.get_data()) == {
        "resource": AUDIENCE, "authorization_servers": [issuer.url], "bearer_methods_supported": ["header"],
        "scopes_supported": ["orders:read", "orders:write"], "resource_name": "Orders"}
    assert client.get("/.well-known/oauth-protected-resource").status_code == 404
    assert client.post("/.well-known/oauth-protected-resource/orders").status_code == 405


@pytest.mark.parametrize("audience, path", [
    ("https://api.example.com", "/.well-known/oauth-protected-resource"),
    ("https://api.example.com/", "/.well-known/oauth-protected-resource"),
    ("https://api.example.com/v1/orders", "/.well-known/oauth-protected-resource/v1/orders"),
])
def test_well_known_path_follows_the_identifier(issuer, audience, path):
    app = flask.Flask(__name__)
    assert register_protected_resource_metadata(app, Verifier(issuer.url, audience)) == path
    answer = app.test_client().get(path)
    assert answer.status_code == 200 and answer.json["resource"] == audience


def test_identifier_that_is_not_a_url_needs_an_explicit_path(issuer):
    verifier = Verifier(issuer.url, "urn:example:orders")
    assert verifier.resource_metadata_url is None
    with pytest.raises(ValueError):
        register_protected_resource_metadata(flask.Flask(__name__), verifier)
    app = flask.Flask(__name__)
    register_protected_resource_metadata(app, verifier, path="/.well-known/oauth-protected-resource")
    assert app.test_client().get("/.well-known/oauth-protected-resource").json["resource"] == "urn:example:orders"


def test_the_example_resource_server(issuer, monkeypatch):
    import runpy
    from pathlib import Path

    example = Path(__file__).resolve().parents[2] / "verifier" / "examples" / "resource_server.py"
    monkeypatch.setenv("AUTHSERVER_ISSUER", issuer.url)
    monkeypatch.setenv("API_ORG_ID", ORG_ID)
    monkeypatch.delenv("API_CLIENT_ID", raising=False)
    client = runpy.run_path(str(example))["app"].test_client()
    assert client.get("/orders").status_code == 401
    answer = client.get("/orders", headers=bearer(issuer.mint(scope="orders:read")))
    assert answer.status_code == 200 and answer.json["for"] == "account-1"
    assert client.delete("/orders/7", headers=bearer(issuer.mint(scope="orders:read"))).status_code == 403
    assert client.get("/.well-known/oauth-protected-resource/orders").json["resource"] == AUDIENCE
