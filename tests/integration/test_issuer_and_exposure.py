"""What a client cannot steer through request headers, and what unauthenticated requests may see: the
HTTPS check and every absolute URL come from the configured issuer (never `Host` or
`X-Forwarded-Host`), /metrics can require a token, the API's documentation page is rendered once,
and no error page echoes a submitted private key or secret."""
from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from authserver.models import ClientKey, ClientSecret

from ..conftest import ISSUER, TOKEN_ENDPOINT, in_app_context, make_app, make_tenant, private_pem
from .api_support import API, make_manager
from .helpers import assert_oauth_error, count, unverified_claims

SPOOFED = "evil.example"
SPOOFING_HEADERS = {"Host": SPOOFED, "X-Forwarded-Host": SPOOFED, "X-Forwarded-Proto": "https"}
METRICS_TOKEN = "m" * 40


@pytest.fixture
def app_settings():
    # Trusting one proxy makes Werkzeug believe X-Forwarded-Host as well: the strongest case.
    return {"trusted_proxies": 1}


def _app(tmp_path, sqlite_template, **settings):
    return in_app_context(make_app(tmp_path, sqlite_template, **settings))


# --- the HTTPS check: from the issuer --------------------------------------------------------------

def test_an_https_issuer_refuses_plain_http_even_from_a_loopback_host(tmp_path, sqlite_template):
    with _app(tmp_path, sqlite_template, issuer="https://auth.example.com") as app:
        tenant = make_tenant()
        http = app.test_client()
        for host in ("localhost", "127.0.0.1", "[::1]", "auth.example.com"):
            response = http.post("/oauth/token", data=tenant.token_form(), headers={**tenant.auth(), "Host": host})
            assert_oauth_error(response, 400, "insecure_transport")
        # The same request over https gets past the check (the assertion's audience is http://localhost).
        over_https = http.post("/oauth/token", data=tenant.token_form(), headers=tenant.auth(),
                               base_url="https://auth.example.com")
        assert over_https.get_json()["error"] != "insecure_transport"


def test_an_http_issuer_off_loopback_serves_nothing_over_plain_http(tmp_path, sqlite_template):
    with _app(tmp_path, sqlite_template, issuer="http://auth.example.com") as app:
        tenant = make_tenant()
        response = app.test_client().post("/oauth/token", data=tenant.token_form(),
                                          headers={**tenant.auth(), "Host": "localhost"})
        assert_oauth_error(response, 400, "insecure_transport")


# --- absolute URLs: from the issuer ----------------------------------------------------------------

def test_spoofed_host_headers_change_no_url_the_server_gives(app, http):
    manager = make_manager(http)
    metadata = http.get("/.well-known/oauth-authorization-server", headers=SPOOFING_HEADERS)
    assert metadata.status_code == 200 and SPOOFED not in metadata.get_data(as_text=True)
    assert metadata.get_json()["token_endpoint"] == TOKEN_ENDPOINT

    token = http.post("/oauth/token", data=manager.tenant.token_form(), headers={**manager.tenant.auth(),
                                                                                 **SPOOFING_HEADERS})
    assert token.status_code == 200, token.get_json()
    assert unverified_claims(token.get_json()["access_token"])["iss"] == ISSUER

    created = http.post(API + "/clients", json={"name": "Spoofed"}, headers=manager.headers(**SPOOFING_HEADERS))
    assert created.status_code == 201
    assert SPOOFED not in created.headers["Location"] and created.headers["Location"].startswith(API + "/clients/")

    problem = http.get(API + "/clients/nope", headers=manager.headers(**SPOOFING_HEADERS))
    assert problem.status_code == 404 and SPOOFED not in problem.get_data(as_text=True)
    assert problem.get_json()["type"].startswith(ISSUER + API + "/docs#")

    docs = http.get(API + "/docs", headers=SPOOFING_HEADERS)
    assert docs.status_code == 200
    assert SPOOFED not in docs.get_data(as_text=True) and ISSUER + API in docs.get_data(as_text=True)

    console = http.get("/console/apps", headers=SPOOFING_HEADERS)
    assert console.status_code == 303 and SPOOFED not in console.headers["Location"]
    assert console.headers["Location"].startswith("/console/sign-in")


# --- /metrics --------------------------------------------------------------------------------------

def test_metrics_require_the_configured_bearer_token(tmp_path, sqlite_template):
    with _app(tmp_path, sqlite_template, metrics_token=METRICS_TOKEN) as app:
        http = app.test_client()
        for headers in ({}, {"Authorization": "Bearer " + METRICS_TOKEN[:-1]},
                        {"Authorization": "Bearer " + METRICS_TOKEN[:-1] + "n"},
                        {"Authorization": "Bearer " + METRICS_TOKEN + "m"},
                        {"Authorization": "Basic " + METRICS_TOKEN}, {"Authorization": METRICS_TOKEN},
                        {"Authorization": "Bearer " + METRICS_TOKEN.replace("m", "\u00e9", 1)}):
            refused = http.get("/metrics", headers=headers)
            assert refused.status_code == 401, headers
            assert refused.headers["WWW-Authenticate"].startswith("Bearer")
            assert "authserver_" not in refused.get_data(as_text=True)
        allowed = http.get("/metrics", headers={"Authorization": "bearer " + METRICS_TOKEN})
        assert allowed.status_code == 200 and "authserver_" in allowed.get_data(as_text=True)


def test_metrics_stay_open_without_a_token(http):
    assert http.get("/metrics").status_code == 200


@pytest.mark.parametrize("token", ["short", "x" * 31, "has a space" + "x" * 30, "\u00e9" * 40])
def test_a_weak_or_odd_metrics_token_is_a_configuration_error(tmp_path, token):
    from authserver.config import ConfigError, load_settings

    with pytest.raises(ConfigError, match="METRICS_TOKEN"):
        load_settings({"instance_path": str(tmp_path), "metrics_token": token})


# --- cheap unauthenticated pages, and no echo of secrets ---------------------------------------------

def test_the_api_docs_page_is_rendered_once(app, http, monkeypatch):
    app.extensions.pop("authserver.api_docs_page", None)
    renders = []
    real = app.jinja_env.from_string
    monkeypatch.setattr(app.jinja_env, "from_string", lambda *a, **k: renders.append(1) or real(*a, **k))
    pages = [http.get(API + "/docs") for _ in range(3)]
    assert all(p.status_code == 200 for p in pages) and len({p.get_data() for p in pages}) == 1
    assert len(renders) == 1


def test_no_error_page_echoes_a_submitted_private_key_or_secret(app, http):
    from tests.console_support import make_admin, signed_in

    manager = make_manager(http)
    pem = private_pem(ec.generate_private_key(ec.SECP256R1())).decode()
    body_line = pem.splitlines()[1]
    secret = manager.tenant.client_secret
    client_id = manager.tenant.client_id
    # The management API: a private key where a public one belongs, a secret in every odd field.
    answers = [
        http.post(f"{API}/clients/{client_id}/keys", json={"key": pem, "kid": "k"}, headers=manager.headers()),
        http.post(f"{API}/clients/{client_id}/keys", json={"key": pem, "kid": secret}, headers=manager.headers()),
        http.post(f"{API}/clients", json={"name": secret * 3}, headers=manager.headers()),
        http.post(f"{API}/clients/{client_id}/secrets", json={"expires_at": secret}, headers=manager.headers()),
    ]
    # The console, signed in as an admin of the same organization.
    console = signed_in(app, make_admin(org_id=manager.org_id))
    page = f"/console/apps/{client_id}"
    answers += [
        console.submit(page, page + "/keys", {"key": pem, "kid": "k1"}),
        console.submit(page, page + "/keys", {"key": pem, "kid": secret}),
        console.submit(page, page + "/secrets", {"expires_at": secret}),
    ]
    # The OAuth endpoints: a private key as an assertion, the secret in a malformed parameter.
    answers += [
        http.post("/oauth/token", data={"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
                                        "assertion": pem}, headers=manager.tenant.auth()),
        http.post("/oauth/token", data={"grant_type": secret}, headers=manager.tenant.auth()),
        http.post("/oauth/introspect", data={"token": pem}, headers=manager.tenant.auth()),
    ]
    for answer in answers:
        assert answer.status_code < 500
        text = answer.get_data(as_text=True)
        assert "PRIVATE KEY" not in text and body_line not in text and secret not in text, answer.request.path
    assert count(ClientKey) == 1 and count(ClientSecret) == 1
