"""Trusted issuers in the console (workload identity federation, SPEC §10): an admin adds an issuer
served over real HTTPS by tests/jwks_server.py, maps its tokens to an account with rules, allows an
app, and that app's token request with the issuer's assertion succeeds; bad inputs are form errors
that store nothing; another organization sees 404; deletion does what its confirmation says."""
from __future__ import annotations

import html
import json
from urllib.parse import quote

import pytest
from sqlalchemy import select

from authserver.extensions import db
from authserver.models import AuditEvent, TrustedIssuer, TrustedIssuerClient, TrustedIssuerRule
from authserver.services import trusted_issuers as issuers
from authserver.services.accounts import create_account
from authserver.services.clients import register_client
from tests.jwks_server import JwksServer

from ..conftest import JWT_BEARER, basic
from ..console_support import make_admin, page_forms, signed_in
from .federation_support import AUDIENCE, WORKLOAD, LocalIssuer
from .helpers import assert_oauth_error, case, count, unverified_claims
from .test_console_destructive_dialogs import confirm_text, dialog_text
from .test_federation import new_client

ISSUERS = "/console/issuers"
NEW_ISSUER = ISSUERS + "/new"
NAMESPACE = "kubernetes.io/namespace"


@pytest.fixture
def jwks_server(tmp_path):
    with JwksServer(tmp_path) as server:
        yield server


@pytest.fixture
def app_settings(jwks_server) -> dict:
    """The suite's app, trusting the test server's CA and allowed to fetch from 127.0.0.1."""
    return {"key_fetch_allow_insecure": True, "key_fetch_ca_file": jwks_server.ca_file}


@pytest.fixture
def local_issuer(jwks_server) -> LocalIssuer:
    return LocalIssuer(jwks_server)


def text(response) -> str:
    return html.unescape(response.get_data(as_text=True))


def stored() -> tuple[int, int, int, int]:
    return count(TrustedIssuer), count(TrustedIssuerRule), count(TrustedIssuerClient), count(AuditEvent)


def token(http, client: tuple[str, str], assertion: str):
    return http.post("/oauth/token", data={"grant_type": JWT_BEARER, "assertion": assertion},
                     headers=basic(*client))


def add_issuer(console, issuer_url: str, audience: str = AUDIENCE, **fields):
    return console.submit(NEW_ISSUER, NEW_ISSUER, {"issuer_url": issuer_url, "audience": audience,
                                                   "key_source": "discovery", **fields})


def only_issuer_id() -> str:
    db.session.rollback()
    return db.session.scalars(select(TrustedIssuer.issuer_id)).one()


def add_rule(console, issuer_id: str, account_id: str, claims: str, **fields):
    page = f"{ISSUERS}/{issuer_id}"
    return console.submit(page, f"{page}/rules", {"account_id": account_id, "claims": claims, "scope": "",
                                                  "resource": "", **fields})


def allow(console, issuer_id: str, client_id: str):
    page = f"{ISSUERS}/{issuer_id}"
    return console.submit(page, f"{page}/clients", {"client_id": client_id})


@pytest.fixture
def federated(app, console, console_admin, local_issuer):
    """Through the console: the local issuer trusted by discovery, one rule to the payments worker, one allowed app."""
    account = create_account(console_admin.org_id, "payments worker", "service")
    client = new_client(console_admin.org_id)
    assert add_issuer(console, local_issuer.url).status_code == 303
    issuer_id = only_issuer_id()
    assert add_rule(console, issuer_id, account.account_id, f"sub={WORKLOAD}").status_code == 303
    assert allow(console, issuer_id, client[0]).status_code == 303
    return issuer_id, account.account_id, client


# --- adding an issuer, rules and apps -----------------------------------------------------------

def test_an_issuer_added_in_the_console_lets_its_workload_get_a_token(app, http, console, console_admin,
                                                                     local_issuer):
    empty = console.get(ISSUERS)
    assert empty.status_code == 200 and "No trusted issuers yet" in text(empty)
    assert f'href="{ISSUERS}"' in empty.get_data(as_text=True)  # the nav link
    worker = create_account(console_admin.org_id, "payments worker", "service")
    reader = create_account(console_admin.org_id, "report reader", "service")
    client = new_client(console_admin.org_id, "Cluster runner")

    added = add_issuer(console, local_issuer.url + "  ", " " + AUDIENCE)
    assert added.status_code == 303, text(added)[:800]
    issuer_id = only_issuer_id()
    assert added.headers["Location"].endswith(f"{ISSUERS}/{issuer_id}")
    row = db.session.get(TrustedIssuer, issuer_id)
    assert (row.org_id, row.issuer_url, row.audience, row.jwks_uri, row.jwks) == (
        console_admin.org_id, local_issuer.url, AUDIENCE, None, None)

    # Rules in order: the second limited to one scope; the claim lines tolerate blank lines and spaces.
    first = add_rule(console, issuer_id, worker.account_id, f"sub = {WORKLOAD}\n\n{NAMESPACE}=payments\r\n")
    assert first.status_code == 303 and first.headers["Location"].endswith("#rules")
    assert add_rule(console, issuer_id, reader.account_id, "sub=reports", scope="read").status_code == 303
    rules = issuers.list_rules(issuer_id)
    assert [(r.position, r.account_id, issuers.rule_conditions(r), r.scope, r.resource) for r in rules] == [
        (1, worker.account_id, {"sub": WORKLOAD, NAMESPACE: "payments"}, None, None),
        (2, reader.account_id, {"sub": "reports"}, "read", None)]
    assert allow(console, issuer_id, client[0]).status_code == 303
    assert [c.client_id for c in issuers.allowed_clients(issuer_id)] == [client[0]]

    detail = text(console.get(f"{ISSUERS}/{issuer_id}"))
    assert local_issuer.jwks_uri in detail and "issuer-key-1" in detail
    assert detail.index(f"sub={WORKLOAD}") < detail.index("sub=reports")
    assert "Cluster runner" in detail and f"{NAMESPACE}=payments" in detail
    # The app's select offers only the apps not allowed yet.
    allow_forms = [f for f in page_forms(detail) if f.posts_to(f"{ISSUERS}/{issuer_id}/clients")]
    assert allow_forms == []
    listing = text(console.get(ISSUERS))
    for shown in (local_issuer.url, AUDIENCE, "Discovery", "badge-on\">OK<", "Cluster runner"):
        assert shown in listing, shown
    assert '<td data-label="Rules">2</td>' in listing

    # The workload's own token, presented by the allowed app, obtains a token for the mapped account.
    response = token(http, client, local_issuer.assertion(**{NAMESPACE: "payments"}))
    assert response.status_code == 200, response.get_json()
    claims = unverified_claims(response.get_json()["access_token"])
    assert claims["sub"] == worker.account_id and claims["client_id"] == client[0]
    limited = token(http, client, local_issuer.assertion(sub="reports"))
    assert limited.status_code == 200 and limited.get_json()["scope"] == "read"
    assert unverified_claims(limited.get_json()["access_token"])["sub"] == reader.account_id
    assert_oauth_error(token(http, client, local_issuer.assertion()), 400, "invalid_grant")  # no namespace claim

    db.session.rollback()
    events = db.session.execute(select(AuditEvent.action, AuditEvent.actor)
                                .where(AuditEvent.org_id == console_admin.org_id,
                                       AuditEvent.action.like("trusted_issuer.%")).order_by(AuditEvent.id)).all()
    assert events == [("trusted_issuer.created", console_admin.account_id),
                      ("trusted_issuer.rule_added", console_admin.account_id),
                      ("trusted_issuer.rule_added", console_admin.account_id),
                      ("trusted_issuer.client_allowed", console_admin.account_id)]


def test_a_pasted_key_set_and_a_key_url_are_the_other_key_sources(app, console, local_issuer, jwks_server):
    pasted = add_issuer(console, "https://ci.example/oidc", key_source="jwks", jwks=json.dumps(local_issuer.jwks()))
    assert pasted.status_code == 303, text(pasted)[:800]
    by_url = add_issuer(console, local_issuer.url, key_source="jwks_uri", jwks_uri=local_issuer.jwks_uri)
    assert by_url.status_code == 303, text(by_url)[:800]
    db.session.rollback()
    rows = {r.issuer_url: r for r in db.session.scalars(select(TrustedIssuer))}
    assert json.loads(rows["https://ci.example/oidc"].jwks)["keys"][0]["kid"] == "issuer-key-1"
    assert rows[local_issuer.url].jwks_uri == local_issuer.jwks_uri and rows[local_issuer.url].jwks is None
    listing = text(console.get(ISSUERS))
    assert "Pasted JWK Set" in listing and "JWK Set URL" in listing


# --- bad inputs -----------------------------------------------------------------------------------

def test_bad_inputs_are_form_errors_that_store_nothing(app, console, console_admin, federated, local_issuer,
                                                       jwks_server):
    issuer_id, account_id, client = federated
    page = f"{ISSUERS}/{issuer_id}"
    stranger = create_account(make_admin(org_name="Globex").org_id, "theirs", "service")
    their_app = register_client(stranger.org_id, "Their app")
    register_client(console_admin.org_id, "Second app")  # so that the page offers an app to allow
    private_jwk = {"kty": "EC", "crv": "P-256", "x": "a" * 43, "y": "b" * 43, "d": "c" * 43, "kid": "leak"}
    cases = {
        "ftp issuer URL": (lambda: add_issuer(console, "ftp://issuer.example"), 400, "must use https"),
        "empty audience": (lambda: add_issuer(console, local_issuer.url + "/x", "  "), 400, "audience is required"),
        "duplicate issuer": (lambda: add_issuer(console, local_issuer.url), 409, "already trusts the issuer"),
        "issuer without keys": (lambda: add_issuer(console, jwks_server.url("/missing")), 400, "HTTP 404"),
        "empty key URL": (lambda: add_issuer(console, "https://ci.example/a", key_source="jwks_uri", jwks_uri=""),
                          400, "jwks_uri must be a URL"),
        "JWK Set that is no JSON": (lambda: add_issuer(console, "https://ci.example/b", key_source="jwks",
                                                       jwks="{not json"), 400, "JWK Set"),
        "private JWK": (lambda: add_issuer(console, "https://ci.example/c", key_source="jwks",
                                           jwks=json.dumps({"keys": [private_jwk]})), 400, "private"),
        "unknown key source": (lambda: add_issuer(console, "https://ci.example/d", key_source="magic"), 400,
                               "Choose how the issuer's keys are obtained"),
        "claim line without =": (lambda: add_rule(console, issuer_id, account_id, f"sub={WORKLOAD}\nrepository"),
                                 400, "must be NAME=VALUE, not 'repository'"),
        "no claim": (lambda: add_rule(console, issuer_id, account_id, " \n "), 400, "at least one claim condition"),
        "claim named twice": (lambda: add_rule(console, issuer_id, account_id, "sub=a\nsub=b"), 400, "named twice"),
        "account of another organization": (lambda: add_rule(console, issuer_id, stranger.account_id, "sub=x"),
                                            400, "No account with this id in the issuer's organization"),
        "bad scope": (lambda: add_rule(console, issuer_id, account_id, "sub=x", scope='a"b'), 400, "scope"),
        "app of another organization": (lambda: allow(console, issuer_id, their_app.client_id), 400,
                                        "No client with this id in the issuer's organization"),
    }
    before = stored()
    for label, (submit, status, words) in cases.items():
        with case(label):
            response = submit()
            body = text(response)
            assert response.status_code == status, body[:800]
            assert words in body, body[:3000]
            assert 'class="field-error"' in body or 'class="notice notice-error"' in body
            assert stored() == before
    # A private key typed into the form is never sent back.
    response = add_issuer(console, "https://ci.example/c", key_source="jwks", jwks=json.dumps({"keys": [private_jwk]}))
    assert "c" * 43 not in response.get_data(as_text=True)
    # The form keeps what was typed.
    kept = text(add_rule(console, issuer_id, account_id, "repository"))
    assert ">repository</textarea>" in kept
    # An already allowed app (a stale select) is a conflict.
    csrf = page_forms(text(console.get(page)))[-1].fields["csrf_token"]  # the page offers no allowed app again
    again = console.post(f"{page}/clients", data={"csrf_token": csrf, "client_id": client[0]})
    assert again.status_code == 409 and "already allowed" in text(again)
    assert stored() == before


@pytest.mark.parametrize("app_settings", [{}])  # the production default: no plain http, no loopback
def test_an_http_issuer_url_is_refused_without_the_development_setting(app, console):
    before = stored()
    response = add_issuer(console, "http://issuer.example")
    assert response.status_code == 400 and "The issuer URL must use https." in text(response)
    assert 'value="http://issuer.example"' in text(response)
    assert stored() == before


# --- isolation ------------------------------------------------------------------------------------

def test_another_organizations_admin_gets_404_for_the_issuers_pages(app, federated, local_issuer):
    issuer_id, account_id, client = federated
    rule_id = issuers.list_rules(issuer_id)[0].rule_id
    other = signed_in(app, make_admin(org_name="Globex"))
    page = f"{ISSUERS}/{issuer_id}"
    listing = text(other.get(ISSUERS))
    assert local_issuer.url not in listing and issuer_id not in listing
    for url in (page, f"{page}/delete", f"{page}/rules/{rule_id}/delete", f"{page}/clients/{client[0]}/delete"):
        with case(url):
            response = other.get(url)
            assert response.status_code == 404 and local_issuer.url not in text(response)
    csrf = page_forms(text(other.get(NEW_ISSUER)))[-1].fields["csrf_token"]
    before = stored()
    posts = {f"{page}/delete": {}, f"{page}/rules": {"account_id": account_id, "claims": "sub=x"},
             f"{page}/rules/{rule_id}/delete": {}, f"{page}/clients": {"client_id": client[0]},
             f"{page}/clients/{client[0]}/delete": {}}
    for url, data in posts.items():
        with case(url):
            assert other.post(url, data={"csrf_token": csrf, **data}).status_code == 404
    assert stored() == before
    # Without a CSRF token nothing changes either, even for the issuer's own admin.
    assert other.post(f"{NEW_ISSUER}", data={"issuer_url": "https://x.example", "audience": "a",
                                             "key_source": "discovery"}).status_code == 400
    assert stored() == before


# --- deleting -------------------------------------------------------------------------------------

def test_deleting_the_issuer_does_what_its_confirmation_says(app, http, console, federated, local_issuer):
    issuer_id, account_id, client = federated
    page = f"{ISSUERS}/{issuer_id}"
    issued = token(http, client, local_issuer.assertion())
    assert issued.status_code == 200
    access_token = issued.get_json()["access_token"]

    message = confirm_text(console.get(f"{page}/delete").get_data(as_text=True))
    assert message == dialog_text(console.get(page).get_data(as_text=True), "delete-issuer")
    for claim in (f"The trusted issuer {local_issuer.url}, its 1 rule and the permission of 1 app",
                  "its assertions are refused from the very next token request",
                  "Access tokens already issued through it stay valid until they expire (at most 1 hour)",
                  "The accounts and apps themselves are not affected"):
        assert claim in message, claim

    deleted = console.submit(f"{page}/delete", f"{page}/delete", {})
    assert deleted.status_code == 303 and deleted.headers["Location"].endswith(ISSUERS)
    assert (count(TrustedIssuer), count(TrustedIssuerRule), count(TrustedIssuerClient)) == (0, 0, 0)
    refused = assert_oauth_error(token(http, client, local_issuer.assertion()), 400, "invalid_grant")
    assert "trusted issuer" in refused["error_description"]
    introspected = http.post("/oauth/introspect", data={"token": access_token}, headers=basic(*client)).get_json()
    assert introspected["active"] is True and introspected["sub"] == account_id  # issued before: still valid
    assert count(AuditEvent, AuditEvent.action == "trusted_issuer.deleted", AuditEvent.object_id == issuer_id) == 1
    assert console.get(page).status_code == 404


def test_deleting_a_rule_and_disallowing_the_app_take_effect_on_the_next_request(app, http, console, federated,
                                                                                  local_issuer):
    issuer_id, account_id, client = federated
    page = f"{ISSUERS}/{issuer_id}"
    assert token(http, client, local_issuer.assertion()).status_code == 200

    disallow = f"{page}/clients/{client[0]}/delete"
    message = confirm_text(console.get(disallow).get_data(as_text=True))
    assert message == dialog_text(console.get(page).get_data(as_text=True), "disallow-1")
    assert "can no longer present this issuer's assertions from the very next token request" in message
    assert console.submit(disallow, disallow, {}).status_code == 303
    assert count(TrustedIssuerClient) == 0
    assert_oauth_error(token(http, client, local_issuer.assertion()), 400, "invalid_grant")
    assert allow(console, issuer_id, client[0]).status_code == 303
    assert token(http, client, local_issuer.assertion()).status_code == 200

    rule_id = issuers.list_rules(issuer_id)[0].rule_id
    delete_rule = f"{page}/rules/{rule_id}/delete"
    message = confirm_text(console.get(delete_rule).get_data(as_text=True))
    assert message == dialog_text(console.get(page).get_data(as_text=True), "delete-rule-1")
    assert console.submit(delete_rule, delete_rule, {}).status_code == 303
    assert count(TrustedIssuerRule) == 0
    refused = assert_oauth_error(token(http, client, local_issuer.assertion()), 400, "invalid_grant")
    assert account_id not in refused["error_description"]
    actions = [a for a, in db.session.execute(select(AuditEvent.action).where(AuditEvent.object_id == issuer_id)
                                              .order_by(AuditEvent.id))]
    assert actions[-3:] == ["trusted_issuer.client_disallowed", "trusted_issuer.client_allowed",
                            "trusted_issuer.rule_deleted"]


ODD = ["\x00", "\ud800", "x" * 5000, "é\u202e", " ", "=", "a=b\x00", "{\"keys\": [{}]}"]


def test_odd_text_in_every_issuer_form_is_refused_not_crashed_on(app, console, federated):
    issuer_id, account_id, client = federated
    page = f"{ISSUERS}/{issuer_id}"
    csrf = page_forms(text(console.get(page)))[-1].fields["csrf_token"]
    forms = {  # no fetch: the odd issuer URLs come with a pasted key set
        NEW_ISSUER: ("issuer_url", "audience", "jwks", {"key_source": "jwks"}),
        f"{page}/rules": ("account_id", "claims", "scope", {"resource": "urn:x"}),
        f"{page}/clients": ("client_id", {}),
    }
    before = stored()
    for action, (*names, fixed) in forms.items():
        for value in ODD:
            with case((action, value[:20])):
                fields = {"csrf_token": csrf, **fixed, **dict.fromkeys(names, value)}
                body = "&".join(f"{quote(k)}={quote(v.encode('utf-8', 'surrogatepass'))}" for k, v in fields.items())
                response = console.post(action, data=body.encode(), content_type="application/x-www-form-urlencoded")
                assert response.status_code in (400, 409), response.status_code
    assert stored() == before
