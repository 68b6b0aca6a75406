"""Client keys by URL (SPEC §10): a client's jwks_uri, registered through the CLI, the management API
or the console, whose keys verify assertions like pasted keys. The JWK Set is served over real HTTPS
by tests/jwks_server.py (its own CA, on 127.0.0.1: the test app sets key_fetch_allow_insecure and
key_fetch_ca_file)."""
from __future__ import annotations

import json
import logging
import time
import uuid
from dataclasses import dataclass

import jwt
import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm
from sqlalchemy import select

from authserver import clock
from authserver.cli import main
from authserver.cli import output as cli_module
from authserver.config import ConfigError
from authserver.errors import InvalidInput
from authserver.extensions import db
from authserver.models import AccessToken, AuditEvent, Client
from authserver.services.accounts import create_account
from authserver.services.client_keys import add_key, delete_key_url, set_key_url
from authserver.services.client_secrets import add_secret
from authserver.services.clients import register_client
from authserver.services.organizations import create_organization
from tests.jwks_server import JwksServer

from ..conftest import (
    ISSUER,
    JWT_BEARER,
    TOKEN_ENDPOINT,
    basic,
    grant_scopes,
    make_app,
    public_pem,
)
from .api_support import API, assert_problem, make_manager
from .helpers import assert_oauth_error, case, count, unverified_claims

JWKS = "/jwks.json"
CLIENT_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


@pytest.fixture
def jwks_server(tmp_path):
    with JwksServer(tmp_path) as server:
        yield server


@pytest.fixture
def app_settings(jwks_server) -> dict:
    """The suite's app (SQLite or PostgreSQL), trusting the test server's CA and allowed to fetch from 127.0.0.1."""
    return {"key_fetch_allow_insecure": True, "key_fetch_ca_file": jwks_server.ca_file}


def new_key():
    return ec.generate_private_key(ec.SECP256R1())


def public_jwk(key, kid: str) -> dict:
    jwk = json.loads(ECAlgorithm.to_jwk(key.public_key()))
    jwk["kid"] = kid
    return jwk


@dataclass
class UrlClient:
    """A client with a secret and no pasted key; its keys are served by the test server."""

    org_id: str
    account_id: str
    client_id: str
    client_secret: str
    keys: dict  # kid -> private key

    def assertion(self, kid: str, key=None, **claims) -> str:
        now = clock.now()  # the server's clock, which tests move
        body = {"iss": self.client_id, "sub": self.account_id, "aud": TOKEN_ENDPOINT, "iat": now, "exp": now + 120,
                "jti": uuid.uuid4().hex, **claims}
        return jwt.encode(body, key if key is not None else self.keys[kid], algorithm="ES256", headers={"kid": kid})

    def token(self, http, kid: str, key=None):
        return http.post("/oauth/token", data={"grant_type": JWT_BEARER, "assertion": self.assertion(kid, key)},
                         headers=basic(self.client_id, self.client_secret))


def make_url_client(name: str = "Acme") -> UrlClient:
    org = create_organization(name)
    account = create_account(org.org_id, f"{name} worker", "service")
    client = register_client(org.org_id, f"{name} backend")
    grant_scopes(client.client_id, "read")
    secret = add_secret(client.client_id)
    return UrlClient(org.org_id, account.account_id, client.client_id, secret.client_secret, {})


def serve_keys(server: JwksServer, client: UrlClient, *kids: str, cache_control: str = "max-age=300") -> str:
    """Serve (new keys for) these kids at JWKS; the URL."""
    for kid in kids:
        client.keys.setdefault(kid, new_key())
    server.serve_jwks(JWKS, [public_jwk(client.keys[kid], kid) for kid in kids], cache_control=cache_control)
    return server.url(JWKS)


def client_row(client_id: str) -> Client:
    db.session.rollback()
    return db.session.execute(select(Client).where(Client.client_id == client_id)).scalar_one()


def audit_actions(org_id: str) -> list[str]:
    db.session.rollback()
    return list(
        db.session.scalars(select(AuditEvent.action).where(AuditEvent.org_id == org_id).order_by(AuditEvent.id))
    )


class Cli:
    """`authserver` in this process, on the test app's instance and database, with its key-fetch settings."""

    def __init__(self, app, server: JwksServer, **env):
        settings = app.extensions["authserver.settings"]
        self.env = {"AUTHSERVER_INSTANCE_PATH": str(settings.instance_path), "AUTHSERVER_ISSUER": ISSUER,
                    "AUTHSERVER_DATABASE_URL": settings.database_url,
                    "AUTHSERVER_KEY_FETCH_ALLOW_INSECURE": "1", "AUTHSERVER_KEY_FETCH_CA_FILE": server.ca_file, **env}

    def invoke(self, *args):
        """Run a command; the app it made closes its database connections afterwards, as its process would."""
        made = []

        def make_app_and_keep():
            made.append(make_cli_app())
            return made[-1]

        make_cli_app, cli_module.make_app = cli_module.make_app, make_app_and_keep
        try:
            result = CliRunner().invoke(main, list(args), env=self.env, catch_exceptions=False)
        finally:
            cli_module.make_app = make_cli_app
            for cli_app in made:
                with cli_app.app_context():
                    db.session.remove()
                    db.engine.dispose()
        db.session.rollback()  # the test's own session reads afresh afterwards
        return result

    def run(self, *args):
        return self.invoke(*args, "--json")

    def json(self, *args):
        result = self.run(*args)
        assert result.exit_code == 0, result.stderr[-500:]
        return json.loads(result.stdout)

    def fails(self, *args) -> str:
        result = self.run(*args)
        assert result.exit_code != 0 and result.stdout == "", result.stdout[:200]
        assert result.stderr.startswith("error: "), result.stderr[-300:]
        return result.stderr


# --- registering through each door ------------------------------------------------------------

def test_cli_registers_lists_and_deletes_a_key_url_and_its_keys_obtain_tokens(app, http, jwks_server):
    client = make_url_client()
    url = serve_keys(jwks_server, client, "url-1", "url-2")
    cli = Cli(app, jwks_server)
    version = client_row(client.client_id).keys_version

    added = cli.json("key", "add-url", client.client_id, url)
    assert added["jwks_uri"] == url and added["key_ids"] == ["url-1", "url-2"]
    assert added["last_fetch_at"] is not None and added["last_error"] is None
    row = client_row(client.client_id)
    assert row.jwks_uri == url and row.keys_version == version + 1

    response = client.token(http, "url-2")
    assert response.status_code == 200, response.get_json()
    assert unverified_claims(response.get_json()["access_token"])["client_id"] == client.client_id

    listed = cli.json("key", "list", client.client_id)
    assert listed == [{**added, "last_fetch_at": listed[0]["last_fetch_at"],
                       "next_fetch_at": listed[0]["next_fetch_at"]}]
    human = cli.invoke("key", "list", client.client_id).stdout
    assert url in human and "url-1, url-2" in human

    assert cli.json("key", "delete", client.client_id, url) == {"deleted": url}
    assert client_row(client.client_id).jwks_uri is None
    assert client_row(client.client_id).keys_version == version + 2
    refused = assert_oauth_error(client.token(http, "url-2"), 400, "invalid_grant")
    assert "kid" in refused["error_description"]
    assert cli.json("key", "list", client.client_id) == []
    assert "not found" in cli.fails("key", "delete", client.client_id, url).lower()
    assert audit_actions(client.org_id)[-2:] == ["key_url.added", "key_url.deleted"]


def test_the_management_api_registers_shows_replaces_and_deletes_a_key_url(app, http, jwks_server):
    manager = make_manager(http)
    cid = manager.tenant.client_id
    first, second = new_key(), new_key()
    jwks_server.serve_jwks("/one", [public_jwk(first, "one")])
    jwks_server.serve_jwks("/two", [public_jwk(second, "two")])
    path = f"{API}/clients/{cid}/jwks-uri"

    assert_problem(http.get(path, headers=manager.headers()), 404)
    created = http.put(path, json={"jwks_uri": jwks_server.url("/one")}, headers=manager.headers())
    assert created.status_code == 201, created.get_json()
    body = created.get_json()
    assert body["jwks_uri"] == jwks_server.url("/one") and body["key_ids"] == ["one"] and body["last_error"] is None
    shown = http.get(path, headers=manager.headers()).get_json()
    assert shown["jwks_uri"] == body["jwks_uri"] and shown["key_ids"] == ["one"]
    listed = http.get(f"{API}/clients/{cid}/keys", headers=manager.headers()).get_json()
    assert [k["kid"] for k in listed["items"]] == ["key-1"] and listed["jwks_uri"]["key_ids"] == ["one"]

    replaced = http.put(path, json={"jwks_uri": jwks_server.url("/two")}, headers=manager.headers())
    assert replaced.status_code == 200 and replaced.get_json()["key_ids"] == ["two"]
    assert client_row(cid).jwks_uri == jwks_server.url("/two")

    assert http.delete(path, headers=manager.headers()).status_code == 204
    assert_problem(http.delete(path, headers=manager.headers()), 404)
    assert http.get(f"{API}/clients/{cid}/keys", headers=manager.headers()).get_json()["jwks_uri"] is None
    assert audit_actions(manager.org_id)[-3:] == ["key_url.added", "key_url.added", "key_url.deleted"]

    # Another organization's client is not found; nothing is stored for a refused URL.
    other = make_url_client("Globex")
    assert_problem(http.put(f"{API}/clients/{other.client_id}/jwks-uri", json={"jwks_uri": jwks_server.url("/one")},
                            headers=manager.headers()), 404)
    refused = assert_problem(http.put(path, json={"jwks_uri": jwks_server.url("/missing")}, headers=manager.headers()),
                             400, field="jwks_uri")
    assert "HTTP 404" in refused["detail"]
    assert_problem(http.put(path, json={"jwks_uri": 7}, headers=manager.headers()), 422)
    assert client_row(cid).jwks_uri is None and client_row(other.client_id).jwks_uri is None


def test_the_console_registers_shows_and_removes_a_key_url(app, jwks_server, console, console_admin):
    from ..console_support import page_forms

    client = register_client(console_admin.org_id, "Payments")
    key = new_key()
    jwks_server.serve_jwks(JWKS, [public_jwk(key, "console-key")])
    page = f"/console/apps/{client.client_id}"

    refused = console.submit(page, page + "/key-url", {"jwks_uri": jwks_server.url("/nothing-here")})
    assert refused.status_code == 400
    html = refused.get_data(as_text=True)
    assert 'id="jwks_uri-error"' in html and "HTTP 404" in html
    assert client_row(client.client_id).jwks_uri is None

    done = console.submit(page, page + "/key-url", {"jwks_uri": jwks_server.url(JWKS)})
    assert done.status_code == 303
    html = console.get(page).get_data(as_text=True)
    assert jwks_server.url(JWKS) in html and "console-key" in html and "Last fetch" in html
    assert "Last error" not in html
    assert client_row(client.client_id).jwks_uri == jwks_server.url(JWKS)

    # The URL fails later: the page shows the error and the keys fetched before.
    jwks_server.redirect(JWKS, "https://elsewhere.example/jwks.json")
    clock.shift(301)
    html = console.get(page).get_data(as_text=True)
    assert "Last error" in html and "redirects are not followed" in html and "console-key" in html

    confirm = console.get(page + "/key-url/delete")
    assert confirm.status_code == 200
    assert any(f.action == page + "/key-url/delete" for f in page_forms(confirm.get_data(as_text=True)))
    removed = console.submit(page + "/key-url/delete", page + "/key-url/delete")
    assert removed.status_code == 303
    assert client_row(client.client_id).jwks_uri is None
    assert console.get(page + "/key-url/delete").status_code == 404
    assert audit_actions(console_admin.org_id)[-2:] == ["key_url.added", "key_url.deleted"]


# --- the keys at the URL ----------------------------------------------------------------------

def test_a_key_rotated_in_at_the_url_is_fetched_on_its_unknown_kid_at_most_once_a_minute(app, http, jwks_server):
    client = make_url_client()
    set_key_url(client.client_id, serve_keys(jwks_server, client, "old", cache_control="max-age=3600"))
    assert client.token(http, "old").status_code == 200
    fetched = jwks_server.count(JWKS)
    assert fetched == 1  # at registration; the token request used the cached set

    serve_keys(jwks_server, client, "old", "new", cache_control="max-age=3600")
    # Within a minute of the last fetch an unknown kid fetches nothing: refused.
    refused = assert_oauth_error(client.token(http, "new"), 400, "invalid_grant")
    assert "kid" in refused["error_description"]
    assert jwks_server.count(JWKS) == fetched

    clock.shift(61)
    response = client.token(http, "new")
    assert response.status_code == 200, response.get_json()
    assert jwks_server.count(JWKS) == fetched + 1
    assert client.token(http, "old").status_code == 200  # still served, still valid
    assert_oauth_error(client.token(http, "never-served", key=new_key()), 400, "invalid_grant")
    assert jwks_server.count(JWKS) == fetched + 1  # the next refetch waits for its minute


def test_while_the_url_is_down_the_last_good_keys_still_verify(app, http, jwks_server, caplog):
    client = make_url_client()
    set_key_url(client.client_id, serve_keys(jwks_server, client, "k1"))
    assert client.token(http, "k1").status_code == 200
    jwks_server.stop()
    clock.shift(301)  # past max-age=300: the set is fetched again, and that fails
    caplog.set_level(logging.INFO)

    for attempt in range(2):
        response = client.token(http, "k1")
        assert response.status_code == 200, (attempt, response.get_json())
    status = Cli(app, jwks_server).json("key", "list", client.client_id)[0]
    assert status["key_ids"] == [] and "connect" in status["last_error"].lower()  # a new process has no copy

    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and "key" in r.getMessage()]
    assert any(client.client_id in line for line in warnings), warnings
    assert len([line for line in warnings if client.client_id in line]) == 1  # once, not per request
    private_numbers = client.keys["k1"].private_numbers()
    for record in caplog.records:
        assert format(private_numbers.private_value, "x") not in record.getMessage()

    # An unknown kid now: refused, and the answer says the URL could not be fetched.
    refused = assert_oauth_error(client.token(http, "k2", key=new_key()), 400, "invalid_grant")
    assert "could not be fetched" in refused["error_description"]


def test_urls_that_break_the_fetch_rules_are_refused_at_registration_with_a_clear_message(app, jwks_server):
    client = make_url_client()
    version = client_row(client.client_id).keys_version
    good = new_key()
    jwks_server.answer("/huge", body=json.dumps({"keys": [public_jwk(good, "k")], "pad": "x" * 70000}).encode(),
                       headers={"Content-Type": "application/json"})
    jwks_server.redirect("/moved", jwks_server.url(JWKS))
    jwks_server.answer("/html", body=b"<html>not keys</html>", headers={"Content-Type": "text/html"})
    jwks_server.serve_jwks("/private", [json.loads(ECAlgorithm.to_jwk(good))])
    cases = [
        (jwks_server.url("/huge"), "larger than 65536 bytes"),
        (jwks_server.url("/moved"), "redirects are not followed"),
        (jwks_server.url("/html"), "not a JSON JWK Set"),
        (jwks_server.url("/private"), "private key material"),
        (jwks_server.url("/absent"), "HTTP 404"),
        ("https://user:pw@127.0.0.1/jwks", "credentials"),
        ("ftp://127.0.0.1/jwks", "must use https"),
        ("not a url", "printable ASCII without spaces"),
        ("", "empty"),
    ]
    for url, needle in cases:
        with case(url):
            with pytest.raises(InvalidInput) as caught:
                set_key_url(client.client_id, url)
            assert needle in caught.value.message and caught.value.field == "jwks_uri"
    row = client_row(client.client_id)
    assert row.jwks_uri is None and row.keys_version == version
    assert "key_url.added" not in audit_actions(client.org_id)


def test_plain_http_and_loopback_are_refused_unless_insecure_fetching_is_allowed(app, jwks_server):
    client = make_url_client()
    strict = Cli(app, jwks_server, AUTHSERVER_KEY_FETCH_ALLOW_INSECURE="0")
    assert "must use https" in strict.fails("key", "add-url", client.client_id, "http://keys.example.com/jwks.json")
    refused = strict.fails("key", "add-url", client.client_id, serve_keys(jwks_server, client, "k"))
    assert "loopback" in refused and "public addresses" in refused
    assert client_row(client.client_id).jwks_uri is None
    # The same URL with insecure fetching allowed (development and tests): accepted.
    assert Cli(app, jwks_server).json("key", "add-url", client.client_id, jwks_server.url(JWKS))["key_ids"] == ["k"]


def test_deleting_the_url_refuses_its_keys_at_once_and_leaves_pasted_keys_working(app, http, jwks_server):
    client = make_url_client()
    pasted = new_key()
    add_key(client.client_id, public_pem(pasted), kid="pasted")
    set_key_url(client.client_id, serve_keys(jwks_server, client, "from-url"))
    assert client.token(http, "from-url").status_code == 200  # the worker's cache holds the URL's keys now
    assert client.token(http, "pasted", key=pasted).status_code == 200
    tokens = count(AccessToken, AccessToken.client_id == client.client_id)

    delete_key_url(client.client_id)
    refused = assert_oauth_error(client.token(http, "from-url"), 400, "invalid_grant")
    assert "kid" in refused["error_description"]
    assert count(AccessToken, AccessToken.client_id == client.client_id) == tokens
    assert client.token(http, "pasted", key=pasted).status_code == 200


def test_a_pasted_key_wins_a_kid_the_url_also_serves(app, http, jwks_server):
    client = make_url_client()
    pasted = new_key()
    add_key(client.client_id, public_pem(pasted), kid="shared")
    set_key_url(client.client_id, serve_keys(jwks_server, client, "shared", "url-only"))
    assert client.token(http, "shared", key=pasted).status_code == 200
    refused = assert_oauth_error(client.token(http, "shared"), 400, "invalid_grant")  # the URL's "shared"
    assert "signature" in refused["error_description"]
    assert client.token(http, "url-only").status_code == 200


def test_url_keys_authenticate_the_client_with_private_key_jwt(app, http, jwks_server):
    client = make_url_client()
    set_key_url(client.client_id, serve_keys(jwks_server, client, "auth-key"))
    now = int(time.time())
    client_assertion = jwt.encode(
        {"iss": client.client_id, "sub": client.client_id, "aud": TOKEN_ENDPOINT, "iat": now, "exp": now + 60,
         "jti": uuid.uuid4().hex}, client.keys["auth-key"], algorithm="ES256", headers={"kid": "auth-key"})
    form = {"grant_type": JWT_BEARER, "assertion": client.assertion("auth-key"),
            "client_assertion_type": CLIENT_ASSERTION_TYPE, "client_assertion": client_assertion}
    response = http.post("/oauth/token", data=form)
    assert response.status_code == 200, response.get_json()
    delete_key_url(client.client_id)
    form.update(assertion=client.assertion("auth-key"), client_assertion=jwt.encode(
        {"iss": client.client_id, "sub": client.client_id, "aud": TOKEN_ENDPOINT, "iat": now, "exp": now + 60,
         "jti": uuid.uuid4().hex}, client.keys["auth-key"], algorithm="ES256", headers={"kid": "auth-key"}))
    assert_oauth_error(http.post("/oauth/token", data=form), 401, "invalid_client")
    assert count(AccessToken, AccessToken.client_id == client.client_id) == 1


# --- settings ---------------------------------------------------------------------------------

def test_the_key_fetch_settings_are_validated(tmp_path, sqlite_template):
    with pytest.raises(ConfigError, match="KEY_FETCH_ALLOW_INSECURE"):
        make_app(tmp_path / "a", sqlite_template, key_fetch_allow_insecure="sometimes")
    with pytest.raises(ConfigError, match="KEY_FETCH_CA_FILE"):
        make_app(tmp_path / "b", sqlite_template, key_fetch_ca_file=str(tmp_path / "missing.pem"))
    not_pem = tmp_path / "not-a-ca.pem"
    not_pem.write_text("this is no certificate\n")
    with pytest.raises(ConfigError, match="KEY_FETCH_CA_FILE"):
        make_app(tmp_path / "c", sqlite_template, key_fetch_ca_file=str(not_pem))
    default = make_app(tmp_path / "d", sqlite_template)
    settings = default.extensions["authserver.settings"]
    assert settings.key_fetch_allow_insecure is False and settings.key_fetch_ca_file == ""
    assert default.extensions["authserver.services"].key_fetcher.allow_insecure is False
