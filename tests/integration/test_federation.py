"""Workload identity federation (SPEC §10, trusted issuers) at the token endpoint: a client exchanges
a JWT signed by a trusted external issuer (served over real HTTPS by tests/jwks_server.py: OIDC
discovery and a JWK Set) for an access token of the account a rule maps it to."""
from __future__ import annotations

from dataclasses import dataclass

import pytest
from sqlalchemy import select

from authserver import clock
from authserver.errors import Conflict, InvalidInput, NotFound
from authserver.extensions import db
from authserver.models import AccessToken, AuditEvent, TrustedIssuer, TrustedIssuerRule, UsedAssertion
from authserver.services import trusted_issuers as issuers
from authserver.services.accounts import create_account, disable_account
from authserver.services.client_secrets import add_secret
from authserver.services.clients import register_client
from authserver.services.organizations import create_organization
from tests.jwks_server import JwksServer

from ..conftest import DEFAULT_API, JWT_BEARER, basic, grant_scopes
from .federation_support import AUDIENCE, JWKS_PATH, WORKLOAD, LocalIssuer
from .helpers import assert_oauth_error, case, count, unverified_claims


@pytest.fixture
def jwks_server(tmp_path):
    with JwksServer(tmp_path) as server:
        yield server


@pytest.fixture
def app_settings(jwks_server) -> dict:
    """The suite's app (SQLite or PostgreSQL), trusting the test server's CA and allowed to fetch from 127.0.0.1."""
    return {"key_fetch_allow_insecure": True, "key_fetch_ca_file": jwks_server.ca_file}


@pytest.fixture
def local_issuer(jwks_server) -> LocalIssuer:
    return LocalIssuer(jwks_server)


@dataclass
class Workload:
    """An organization trusting the local issuer: the account its rule maps to, and an allowed client."""

    org_id: str
    account_id: str
    client_id: str
    client_secret: str
    issuer_id: str

    def token(self, http, assertion: str, client: tuple[str, str] | None = None, **form):
        client_id, secret = client or (self.client_id, self.client_secret)
        return http.post("/oauth/token", data={"grant_type": JWT_BEARER, "assertion": assertion, **form},
                         headers=basic(client_id, secret))


def new_client(org_id: str, name: str = "CI runner") -> tuple[str, str]:
    client = register_client(org_id, name)
    grant_scopes(client.client_id, "read write")
    return client.client_id, add_secret(client.client_id).client_secret


def make_workload(local_issuer: LocalIssuer, name: str = "Acme", **issuer_options) -> Workload:
    org = create_organization(name)
    account = create_account(org.org_id, f"{name} payments worker", "service")
    client_id, secret = new_client(org.org_id)
    issuer = issuers.add_issuer(org.org_id, local_issuer.url, AUDIENCE, **issuer_options)
    issuers.add_rule(issuer.issuer_id, account.account_id, [f"sub={WORKLOAD}"])
    issuers.allow_client(issuer.issuer_id, client_id)
    return Workload(org.org_id, account.account_id, client_id, secret, issuer.issuer_id)


@pytest.fixture
def workload(app, local_issuer) -> Workload:
    return make_workload(local_issuer)


def refused(response, *words: str) -> str:
    description = assert_oauth_error(response, 400, "invalid_grant")["error_description"]
    for word in words:
        assert word in description, description
    return description


# --- success --------------------------------------------------------------------------------

def test_an_assertion_of_a_trusted_issuer_obtains_a_token_for_the_mapped_account(http, workload, local_issuer):
    assertion = local_issuer.assertion()
    response = workload.token(http, assertion)
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["token_type"] == "Bearer" and body["scope"] == "read write"
    claims = unverified_claims(body["access_token"])
    assert claims["sub"] == workload.account_id and claims["client_id"] == workload.client_id
    assert claims["aud"] == DEFAULT_API and claims["org_id"] == workload.org_id
    db.session.rollback()
    row = db.session.execute(select(AccessToken).where(AccessToken.jti == claims["jti"])).scalar_one()
    assert row.account_id == workload.account_id and row.client_id == workload.client_id and row.scope == "read write"
    # The issuer's jti is used up in the issuer's own replay scope, never the client's.
    assert count(UsedAssertion, UsedAssertion.client_id == workload.issuer_id) == 1
    assert count(UsedAssertion, UsedAssertion.client_id == workload.client_id) == 0
    # Nothing of the assertion is echoed anywhere, and the setup is audited.
    assert assertion not in response.get_data(as_text=True)
    actions = list(db.session.scalars(select(AuditEvent.action).where(AuditEvent.org_id == workload.org_id)))
    assert {"trusted_issuer.created", "trusted_issuer.rule_added", "trusted_issuer.client_allowed"} <= set(actions)


def test_a_scope_and_api_limited_rule_bounds_the_token(http, workload, local_issuer):
    limited = create_account(workload.org_id, "read-only job", "service")
    issuers.add_rule(workload.issuer_id, limited.account_id, ["sub=job", "repository=acme/site"], scope="read",
                     resource=DEFAULT_API)
    job = dict(sub="job", repository="acme/site")
    body = workload.token(http, local_issuer.assertion(**job)).get_json()
    assert body["scope"] == "read" and unverified_claims(body["access_token"])["sub"] == limited.account_id
    response = workload.token(http, local_issuer.assertion(**job), scope="read write")
    assert assert_oauth_error(response, 400, "invalid_scope")
    response = workload.token(http, local_issuer.assertion(**job), resource="https://other.example/api")
    assert "only for" in assert_oauth_error(response, 400, "invalid_target")["error_description"]


# --- keys -----------------------------------------------------------------------------------

def test_a_key_rotated_at_the_issuer_is_fetched_for_its_unknown_kid(http, workload, local_issuer, jwks_server):
    assert workload.token(http, local_issuer.assertion()).status_code == 200
    local_issuer.publish("issuer-key-1", "issuer-key-2")
    fetches = jwks_server.count(JWKS_PATH)
    clock.shift(61)  # an unknown kid refetches at most once a minute
    response = workload.token(http, local_issuer.assertion("issuer-key-2"))
    assert response.status_code == 200, response.get_json()
    assert jwks_server.count(JWKS_PATH) == fetches + 1
    # A kid the issuer never published is refused without another fetch within the minute.
    stranger = stranger_key()
    refused(workload.token(http, local_issuer.assertion("issuer-key-9", key=stranger)), "kid")
    assert jwks_server.count(JWKS_PATH) == fetches + 1


def test_while_the_issuer_is_down_its_last_keys_verify_and_without_any_keys_the_answer_is_clear(
        app, http, workload, local_issuer, jwks_server):
    assert workload.token(http, local_issuer.assertion()).status_code == 200
    jwks_server.stop()
    clock.shift(400)  # past the JWK Set's max-age: refetching fails, the stale copy serves
    response = workload.token(http, local_issuer.assertion())
    assert response.status_code == 200, response.get_json()

    # A process that never fetched the keys (they were forgotten) has none at all.
    fetcher = app.extensions["authserver.services"].key_fetcher
    fetcher.forget(local_issuer.url + "/.well-known/openid-configuration")
    fetcher.forget(local_issuer.jwks_uri)
    description = refused(workload.token(http, local_issuer.assertion()), "trusted issuer's keys cannot be fetched")
    assert "connect" in description.lower()


def test_an_oversized_key_set_and_a_key_url_at_a_private_address_are_refused(app, http, workload, local_issuer,
                                                                             jwks_server):
    fetcher = app.extensions["authserver.services"].key_fetcher
    fetcher.forget(local_issuer.jwks_uri)
    jwks_server.answer(JWKS_PATH, body=b'{"keys": [' + b" " * 70000 + b"]}")
    refused(workload.token(http, local_issuer.assertion()), "larger than")

    # Discovery naming a link-local key URL (cloud metadata), and a redirect there: never fetched.
    fetcher.forget(local_issuer.url + "/.well-known/openid-configuration")
    jwks_server.serve_json("/issuer/.well-known/openid-configuration",
                           {"issuer": local_issuer.url, "jwks_uri": "https://169.254.169.254/keys"})
    refused(workload.token(http, local_issuer.assertion()), "link-local")
    fetcher.forget(local_issuer.url + "/.well-known/openid-configuration")
    jwks_server.redirect("/issuer/.well-known/openid-configuration", "https://169.254.169.254/openid-configuration")
    refused(workload.token(http, local_issuer.assertion()), "redirects are not followed")
    assert count(AccessToken) == 0


# --- claims ---------------------------------------------------------------------------------

def test_every_rfc_7523_check_applies_to_the_issuers_assertions(http, workload, local_issuer):
    now = clock.now()
    cases = {
        "aud does not contain the audience": (local_issuer.assertion(aud="https://elsewhere.example"), "aud"),
        "aud list without it": (local_issuer.assertion(aud=["a", "b"]), "aud"),
        "expired": (local_issuer.assertion(exp=now - 120, iat=now - 200, nbf=now - 200), "expired"),
        "nbf in the future": (local_issuer.assertion(nbf=now + 600), "not valid yet"),
        "iat in the future": (local_issuer.assertion(iat=now + 600), "not valid yet"),
        "too long a lifetime": (local_issuer.assertion(lifetime=3600), "too far ahead"),
        "no exp": (local_issuer.assertion(drop=("exp",)), "exp"),
        "no sub": (local_issuer.assertion(drop=("sub",)), "sub"),
        "bad jti": (local_issuer.assertion(jti=""), "jti"),
        "another issuer's signature": (local_issuer.assertion(key=stranger_key()), "signature"),
    }
    for label, (assertion, word) in cases.items():
        description = refused(workload.token(http, assertion), word)
        assert assertion not in description, label
    assert count(AccessToken) == 0 and count(UsedAssertion) == 0


def stranger_key():
    from cryptography.hazmat.primitives.asymmetric import ec

    return ec.generate_private_key(ec.SECP256R1())


def test_no_matching_rule_maps_nothing_and_the_first_matching_rule_wins(http, workload, local_issuer):
    description = refused(workload.token(http, local_issuer.assertion(sub="system:serviceaccount:payments:other")),
                          "No rule")
    assert "payments:other" not in description  # the claims are not echoed

    deployer = create_account(workload.org_id, "deployer", "service")
    releaser = create_account(workload.org_id, "releaser", "service")
    issuers.add_rule(workload.issuer_id, deployer.account_id, ["repository=acme/site", "ref=refs/heads/main"])
    issuers.add_rule(workload.issuer_id, releaser.account_id, ["repository=acme/site"])
    main_branch = local_issuer.assertion(sub="repo:acme/site", repository="acme/site", ref="refs/heads/main")
    other_branch = local_issuer.assertion(sub="repo:acme/site", repository="acme/site", ref="refs/heads/dev")
    assert unverified_claims(workload.token(http, main_branch).get_json()["access_token"])["sub"] == deployer.account_id
    other_claims = unverified_claims(workload.token(http, other_branch).get_json()["access_token"])
    assert other_claims["sub"] == releaser.account_id
    # The rule for WORKLOAD comes first and still wins for its sub, whatever else matches later.
    both = local_issuer.assertion(repository="acme/site")
    assert unverified_claims(workload.token(http, both).get_json()["access_token"])["sub"] == workload.account_id
    # A non-string claim never equals the text of a condition unless it is its JSON form.
    refused(workload.token(http, local_issuer.assertion(sub="x", repository=["acme/site"])), "No rule")


def test_a_jti_is_accepted_once_per_issuer_whichever_client_presents_it(http, workload, local_issuer):
    assertion = local_issuer.assertion()
    assert workload.token(http, assertion).status_code == 200
    refused(workload.token(http, assertion), "already used")
    second = new_client(workload.org_id, "Second runner")
    issuers.allow_client(workload.issuer_id, second[0])
    refused(workload.token(http, assertion, client=second), "already used")
    # Without a jti the issuer gives no single-use promise: each use is judged on its own.
    no_jti = local_issuer.assertion(drop=("jti",))
    assert workload.token(http, no_jti).status_code == 200
    assert workload.token(http, no_jti, client=second).status_code == 200


# --- who may present what -------------------------------------------------------------------

def test_only_allowed_clients_of_the_issuers_organization_may_present_its_assertions(http, workload, local_issuer):
    not_allowed = new_client(workload.org_id, "Not allowed")
    refused(workload.token(http, local_issuer.assertion(), client=not_allowed), "trusted issuer")

    # Another organization trusting the same issuer URL: its client is allowed there, not here.
    other = make_workload(local_issuer, "Globex")
    body = workload.token(http, local_issuer.assertion(), client=(other.client_id, other.client_secret)).get_json()
    assert unverified_claims(body["access_token"])["sub"] == other.account_id
    with pytest.raises(NotFound):
        issuers.allow_client(workload.issuer_id, other.client_id)
    with pytest.raises(NotFound):
        issuers.add_rule(workload.issuer_id, other.account_id, [f"sub={WORKLOAD}"])

    issuers.disallow_client(workload.issuer_id, workload.client_id)
    refused(workload.token(http, local_issuer.assertion()), "trusted issuer")


def test_a_disabled_account_and_a_deleted_issuer_obtain_nothing_from_the_next_request_on(http, workload, local_issuer):
    disable_account(workload.account_id)
    refused(workload.token(http, local_issuer.assertion()), "not an active account")

    second = create_account(workload.org_id, "second worker", "service")
    issuers.add_rule(workload.issuer_id, second.account_id, ["sub=second"])
    assert workload.token(http, local_issuer.assertion(sub="second")).status_code == 200
    issuers.delete_issuer(workload.issuer_id)
    refused(workload.token(http, local_issuer.assertion(sub="second")), "trusted issuer")
    assert count(TrustedIssuer) == 0 and count(TrustedIssuerRule) == 0
    assert count(AccessToken) == 1  # the token it obtained before stays


def test_the_clients_own_assertions_work_beside_federation(http, workload, tenant):
    from ..conftest import get_token

    assert get_token(http, tenant)["scope"] == "read write"
    # An iss naming another client (not a URL) keeps the own-assertion rule and its message.
    response = http.post("/oauth/token", data=tenant.token_form(tenant.assertion(iss=workload.client_id)),
                         headers=tenant.auth())
    refused(response, "client_id of the authenticated client")


# --- the service's rules --------------------------------------------------------------------

def test_the_service_refuses_bad_registrations_and_stores_nothing(app, local_issuer, jwks_server):
    org = create_organization("Initech")
    account = create_account(org.org_id, "worker", "service")
    bad = {
        "plain http": dict(issuer_url="http://issuer.example", audience=AUDIENCE),
        "query": dict(issuer_url=local_issuer.url + "?x=1", audience=AUDIENCE),
        "no audience": dict(issuer_url=local_issuer.url, audience=" "),
        "both key sources": dict(issuer_url=local_issuer.url, audience=AUDIENCE, jwks_uri=local_issuer.jwks_uri,
                                 jwks=local_issuer.jwks()),
        "private jwk": dict(issuer_url=local_issuer.url, audience=AUDIENCE, jwks={"keys": [{"kty": "oct", "k": "x"}]}),
        "no discovery": dict(issuer_url=jwks_server.url("/nowhere"), audience=AUDIENCE),
    }
    app.extensions["authserver.services"].key_fetcher.allow_insecure = False  # plain http refused as in production
    try:
        with pytest.raises(InvalidInput, match="https"):
            issuers.add_issuer(org.org_id, **bad.pop("plain http"))
    finally:
        app.extensions["authserver.services"].key_fetcher.allow_insecure = True
    for label, options in bad.items():
        with case(label), pytest.raises(InvalidInput):
            issuers.add_issuer(org.org_id, **options)
    assert count(TrustedIssuer) == 0

    issuer = issuers.add_issuer(org.org_id, local_issuer.url, AUDIENCE, jwks=local_issuer.jwks())
    with pytest.raises(Conflict):
        issuers.add_issuer(org.org_id, local_issuer.url, "other")
    for claims in ([], ["novalue"], ["=x"], ["a=1", "a=2"], {"sub": 7}):
        with pytest.raises(InvalidInput):
            issuers.add_rule(issuer.issuer_id, account.account_id, claims)
    with pytest.raises(InvalidInput):
        issuers.add_rule(issuer.issuer_id, account.account_id, ["sub=x"], scope="bad scope\\")
    assert count(TrustedIssuerRule) == 0
