"""Nothing crosses organizations: every operation on another organization's object answers 404 and
changes nothing; lists show only the caller's own objects."""
from __future__ import annotations

import json

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from authserver.api.routing import OPERATIONS
from authserver.extensions import db
from authserver.models import (
    Account,
    Api,
    ApiClient,
    ApiScope,
    AuditEvent,
    Client,
    ClientGrant,
    ClientKey,
    ClientSecret,
    TrustedIssuer,
    TrustedIssuerClient,
    TrustedIssuerRule,
)
from authserver.services import apis as api_service
from authserver.services import trusted_issuers as issuer_service
from authserver.services.client_keys import set_key_url
from authserver.services.clients import register_client, update_client
from tests.jwks_server import JwksServer

from ..conftest import one_transaction, public_pem
from .api_support import API, assert_problem, png_bytes

OBJECT_OPERATIONS = [op for op in OPERATIONS if op.path_parameters]


SCOPE = "orders:read"


@pytest.fixture
def key_server(tmp_path):
    """A JWK Set on 127.0.0.1 over https, so clients can have a key URL."""
    with JwksServer(tmp_path) as server:
        jwk = json.loads(ECAlgorithm.to_jwk(ec.generate_private_key(ec.SECP256R1()).public_key()))
        server.serve_jwks("/jwks.json", [{**jwk, "kid": "from-url"}])
        yield server


@pytest.fixture
def app_settings(key_server) -> dict:
    return {"key_fetch_allow_insecure": True, "key_fetch_ca_file": key_server.ca_file}


def valid_request(op, key_url: str = "", ids: dict | None = None) -> dict:
    """Arguments of a request that would succeed on the caller's own object."""
    ids = ids or {}
    if op.endpoint == "create_rule":
        return {"json": {"account_id": ids.get("account_id", "missing"), "claims": {"sub": "planted"}}}
    if op.endpoint == "allow_client":
        return {"json": {"client_id": ids.get("other_client_id", "missing")}}
    if op.endpoint == "put_key_url":
        return {"json": {"jwks_uri": key_url}}
    if op.endpoint == "update_client":
        return {"json": {"name": "Hijacked", "description": "Taken over"}}
    if op.endpoint == "update_api":
        return {"json": {"name": "Hijacked", "scopes": [{"name": "planted"}]}}
    if op.endpoint == "delete_api":
        return {"query_string": {"force": "true"}}
    if op.endpoint == "add_api_scope":
        return {"json": {"name": "planted"}}
    if op.endpoint == "put_grant":
        return {"json": {"scope": SCOPE, "default": True}}
    if op.endpoint == "put_client_icon":
        return {"data": png_bytes(), "content_type": "image/png"}
    if op.endpoint == "create_key":
        return {"json": {"key": public_pem(ec.generate_private_key(ec.SECP256R1())).decode(), "kid": "planted"}}
    if op.endpoint == "update_account":
        return {"json": {"disabled": True}}
    return {}


def with_an_api(tenant, identifier: str, key_url: str = "") -> dict:
    """The tenant's organization gets an API with one scope; the tenant's client holds access to it
    (as its default) and is its own client. Returns the path parameters that name all of it."""
    jwk = json.loads(ECAlgorithm.to_jwk(ec.generate_private_key(ec.SECP256R1()).public_key()))
    with one_transaction():  # one COMMIT for all of it, and the ids read before it
        api = api_service.create_api("Orders", identifier, org_id=tenant.org_id, scopes=[SCOPE, "orders:write"])
        api_service.grant_client(tenant.client_id, api.api_id, SCOPE, default=True)
        api_service.bind_client(api.api_id, tenant.client_id)
        update_client(tenant.client_id, icon=png_bytes())  # so the icon routes have something to find
        if key_url:
            set_key_url(tenant.client_id, key_url)  # so the key URL routes have something to find
        # A trusted issuer (pasted keys: nothing to fetch) with a rule, the tenant's client allowed, and a
        # second client that is not allowed yet.
        issuer = issuer_service.add_issuer(tenant.org_id, "https://ci.example.test", "authserver",
                                           jwks={"keys": [{**jwk, "kid": "ci-1"}]})
        rule = issuer_service.add_rule(issuer.issuer_id, tenant.account_id, {"sub": "repo:acme/app"})
        issuer_service.allow_client(issuer.issuer_id, tenant.client_id)
        other = register_client(tenant.org_id, "Second app")
        return {"client_id": tenant.client_id, "secret_id": tenant.secret_id, "kid": tenant.kid,
                "account_id": tenant.account_id, "api_id": api.api_id, "name": SCOPE, "issuer_id": issuer.issuer_id,
                "rule_id": rule.rule_id, "other_client_id": other.client_id}


def snapshot(org_id: str) -> dict:
    db.session.expire_all()
    clients = db.session.query(Client).filter_by(org_id=org_id).all()
    client_ids = [c.client_id for c in clients]
    api_ids = [a.api_id for a in db.session.query(Api).filter_by(org_id=org_id)]
    return {
        "clients": [(c.client_id, c.name, c.description, c.icon, c.jwks_uri, c.keys_version) for c in clients],
        "apis": sorted((a.api_id, a.name, a.identifier) for a in db.session.query(Api).filter_by(org_id=org_id)),
        "scopes": sorted((s.api_id, s.name) for s in db.session.query(ApiScope).filter(ApiScope.api_id.in_(api_ids))),
        "grants": sorted(
            (g.client_id, g.api_id, g.scope, g.is_default)
            for g in db.session.query(ClientGrant).filter(ClientGrant.client_id.in_(client_ids))
        ),
        "bound": sorted(
            (b.api_id, b.client_id) for b in db.session.query(ApiClient).filter(ApiClient.api_id.in_(api_ids))
        ),
        "secrets": sorted(
            s.secret_id for s in db.session.query(ClientSecret).filter(ClientSecret.client_id.in_(client_ids))
        ),
        "keys": sorted(k.kid for k in db.session.query(ClientKey).filter(ClientKey.client_id.in_(client_ids))),
        "accounts": sorted((a.account_id, a.disabled_at) for a in db.session.query(Account).filter_by(org_id=org_id)),
        "issuers": sorted(
            (i.issuer_id, i.issuer_url, i.audience) for i in db.session.query(TrustedIssuer).filter_by(org_id=org_id)
        ),
        "rules": sorted(
            (r.rule_id, r.account_id)
            for r in db.session.query(TrustedIssuerRule)
            .join(TrustedIssuer, TrustedIssuer.issuer_id == TrustedIssuerRule.issuer_id)
            .filter(TrustedIssuer.org_id == org_id)
        ),
        "allowed": sorted(
            (a.issuer_id, a.client_id)
            for a in db.session.query(TrustedIssuerClient).filter(TrustedIssuerClient.client_id.in_(client_ids))
        ),
        "events": db.session.query(AuditEvent).filter_by(org_id=org_id).count(),
    }


def test_every_object_operation_is_covered():
    assert {op.endpoint for op in OBJECT_OPERATIONS} == {
        "get_client", "update_client", "delete_client", "get_client_icon", "put_client_icon", "delete_client_icon",
        "list_secrets", "create_secret", "get_secret", "delete_secret", "list_keys", "create_key", "get_key",
        "delete_key", "get_key_url", "put_key_url", "delete_key_url", "get_account", "update_account",
        "get_api", "update_api", "delete_api", "add_api_scope", "remove_api_scope", "bind_api_client",
        "unbind_api_client", "list_grants", "put_grant", "delete_grant", "get_issuer", "delete_issuer", "list_rules",
        "create_rule", "delete_rule", "list_allowed_clients", "allow_client", "disallow_client",
    }


@pytest.mark.parametrize("op", OBJECT_OPERATIONS, ids=lambda op: f"{op.method} {op.path}")
def test_another_organizations_objects_are_404(http, manager, other_manager, op, key_server):
    victim = other_manager.tenant
    key_url = key_server.url("/jwks.json")
    ids = with_an_api(victim, "https://api.globex.test/orders", key_url)
    before = snapshot(victim.org_id)
    path = API + op.path.format(**{name: ids[name] for name in op.path_parameters})
    own = with_an_api(manager.tenant, "https://api.acme.test/orders", key_url)  # the caller's own ids in bodies
    response = http.open(path, method=op.method, headers=manager.headers(), **valid_request(op, key_url, own))
    body = assert_problem(response, 404)
    assert body["type"].endswith("#problem-not-found")
    assert snapshot(victim.org_id) == before
    # The answer is the one an id that exists nowhere gets: it does not tell the object exists.
    nowhere = {name: ("0" * 32 if name == "client_id" else "missing") for name in op.path_parameters}
    missing = http.open(API + op.path.format(**nowhere), method=op.method, headers=manager.headers(),
                        **valid_request(op, key_url, own))
    assert assert_problem(missing, 404) == body


@pytest.mark.parametrize("op", OBJECT_OPERATIONS, ids=lambda op: f"{op.method} {op.path}")
def test_the_same_request_on_ones_own_object_is_not_404(http, manager, op, key_server):
    """The control of the test above: what answers 404 across organizations works at home."""
    key_url = key_server.url("/jwks.json")
    ids = with_an_api(manager.tenant, "https://api.acme.test/orders", key_url)
    path = API + op.path.format(**{name: ids[name] for name in op.path_parameters})
    response = http.open(path, method=op.method, headers=manager.headers(), **valid_request(op, key_url, ids))
    assert 200 <= response.status_code < 300, (op.endpoint, response.status_code, response.get_data(as_text=True))


def test_lists_show_only_the_callers_objects(http, manager, other_manager):
    own_api = with_an_api(manager.tenant, "https://api.acme.test/orders")["api_id"]
    with_an_api(other_manager.tenant, "https://api.globex.test/orders")

    platform = {a.api_id for a in db.session.query(Api).filter(Api.org_id.is_(None))}

    def items(path, who):
        found = http.get(API + path, headers=who.headers()).get_json()["items"]
        return [item for item in found if item.get("api_id") not in platform]  # platform APIs are everyone's

    for path, key, own in [("/clients", "client_id", manager.tenant.client_id),
                           ("/accounts", "account_id", manager.tenant.account_id),
                           ("/apis", "api_id", own_api),
                           (f"/clients/{manager.tenant.client_id}/grants", "api_id", own_api)]:
        mine = {item[key] for item in items(path, manager)}
        theirs = {item[key] for item in items(path.replace(manager.tenant.client_id, other_manager.tenant.client_id),
                                              other_manager)}
        assert own in mine and own not in theirs and mine.isdisjoint(theirs), path


def test_secrets_and_keys_of_another_org_cannot_be_reached_through_ones_own_client(http, manager, other_manager):
    own, victim = manager.tenant.client_id, other_manager.tenant
    assert_problem(http.get(f"{API}/clients/{own}/secrets/{victim.secret_id}", headers=manager.headers()), 404)
    assert_problem(http.delete(f"{API}/clients/{own}/secrets/{victim.secret_id}", headers=manager.headers()), 404)
    assert db.session.get(ClientSecret, victim.secret_id) is not None


def test_a_user_of_one_org_cannot_be_a_subject_for_another(http, manager, other_manager):
    # The other org's admin, asserted by this org's client, gets no token at all (SPEC §4: sub of the
    # client's organization), so it cannot reach this org's API either.
    response = http.post("/oauth/token", headers=manager.tenant.auth(),
                         data=manager.tenant.token_form(manager.tenant.assertion(sub=other_manager.user_id),
                                                        scope="manage"))
    assert response.status_code == 400 and response.get_json()["error"] == "invalid_grant"
