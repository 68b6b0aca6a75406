"""Trusted issuers through the CLI and the management API: every command and route, with bad inputs
answered clearly and nothing stored by a refused change. The issuer is served over real HTTPS by
tests/jwks_server.py."""
from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from authserver.extensions import db
from authserver.models import AuditEvent, TrustedIssuer, TrustedIssuerClient, TrustedIssuerRule
from authserver.services.accounts import create_account
from authserver.services.clients import register_client
from authserver.services.organizations import create_organization
from tests.jwks_server import JwksServer

from .api_support import API, assert_problem, make_manager
from .federation_support import AUDIENCE, WORKLOAD, LocalIssuer
from .helpers import case, count
from .test_client_keys_by_url import Cli


@pytest.fixture
def jwks_server(tmp_path):
    with JwksServer(tmp_path) as server:
        yield server


@pytest.fixture
def app_settings(jwks_server) -> dict:
    return {"key_fetch_allow_insecure": True, "key_fetch_ca_file": jwks_server.ca_file}


@pytest.fixture
def local_issuer(jwks_server) -> LocalIssuer:
    return LocalIssuer(jwks_server)


def audit_actions(org_id: str) -> list[str]:
    db.session.rollback()
    query = select(AuditEvent.action).where(AuditEvent.org_id == org_id).order_by(AuditEvent.id)
    return list(db.session.scalars(query))


# --- CLI ------------------------------------------------------------------------------------

def test_every_issuer_command_works_and_refuses_bad_input_clearly(app, jwks_server, local_issuer, tmp_path):
    cli = Cli(app, jwks_server)
    org = create_organization("Acme")
    account = create_account(org.org_id, "payments worker", "service")
    client = register_client(org.org_id, "CI runner")
    other_org = create_organization("Globex")
    other_account = create_account(other_org.org_id, "theirs", "service")
    other_client = register_client(other_org.org_id, "theirs")

    added = cli.json("issuer", "add", org.org_id, local_issuer.url, "--audience", AUDIENCE)
    issuer_id = added["issuer_id"]
    assert list(added) == ["issuer_id"]
    rule = cli.json("issuer", "rule", "add", issuer_id, "--account", account.account_id, "--claim", f"sub={WORKLOAD}",
                    "--claim", " kubernetes.io/namespace = payments ")  # spaces around name and value: dropped
    assert rule["claims"] == {"sub": WORKLOAD, "kubernetes.io/namespace": "payments"} and rule["position"] == 1
    assert cli.json("issuer", "allow", issuer_id, client.client_id) == {"issuer_id": issuer_id,
                                                                        "client_id": client.client_id}
    listed = cli.json("issuer", "list", org.org_id)
    assert [i["issuer_url"] for i in listed] == [local_issuer.url] and listed[0]["keys_from"] == "discovery"
    shown = cli.json("issuer", "show", issuer_id)
    assert shown["keys"]["jwks_uri"] == local_issuer.jwks_uri and shown["keys"]["key_ids"] == ["issuer-key-1"]
    assert [r["rule_id"] for r in shown["rules"]] == [rule["rule_id"]] and shown["clients"] == [client.client_id]
    human = cli.invoke("issuer", "show", issuer_id).stdout
    assert local_issuer.url in human and f"sub={WORKLOAD}" in human and client.client_id in human
    assert cli.json("issuer", "rule", "list", issuer_id) == [rule]

    # Bad inputs: one line on stderr, the CLI's exit codes (2 invalid, 3 not found, 4 conflict), nothing stored.
    before = (count(TrustedIssuer), count(TrustedIssuerRule), count(TrustedIssuerClient))
    refusals = {
        ("issuer", "add", org.org_id, local_issuer.url, "--audience", AUDIENCE): (4, "already trusts"),
        ("issuer", "add", org.org_id, "ftp://issuer.example", "--audience", AUDIENCE): (2, "https"),
        ("issuer", "add", org.org_id, local_issuer.url + "/x", "--audience", ""): (2, "audience"),
        ("issuer", "add", org.org_id, jwks_server.url("/missing"), "--audience", AUDIENCE): (2, "HTTP 404"),
        ("issuer", "add", "org_nope", local_issuer.url, "--audience", AUDIENCE): (3, "Organization not found"),
        ("issuer", "add", org.org_id, local_issuer.url + "/y", "--audience", AUDIENCE,
         "--jwks-file", str(tmp_path / "absent.json")): (2, "cannot read"),
        ("issuer", "rule", "add", issuer_id, "--account", account.account_id): (2, "at least one claim"),
        ("issuer", "rule", "add", issuer_id, "--account", account.account_id, "--claim", "sub"): (2, "NAME=VALUE"),
        ("issuer", "rule", "add", issuer_id, "--account", other_account.account_id, "--claim", "sub=x"): (3, "account"),
        ("issuer", "rule", "add", "issuer_nope", "--account", account.account_id, "--claim", "sub=x"): (3, "not found"),
        ("issuer", "allow", issuer_id, other_client.client_id): (3, "client"),
        ("issuer", "allow", issuer_id, client.client_id): (4, "already allowed"),
        ("issuer", "disallow", issuer_id, other_client.client_id): (3, "not allowed"),
        ("issuer", "rule", "delete", issuer_id, "rule_nope"): (3, "Rule not found"),
        ("issuer", "show", "issuer_nope"): (3, "not found"),
    }
    for args, (code, words) in refusals.items():
        with case(args):
            result = cli.run(*args)
            assert result.exit_code == code and result.stdout == "", (result.exit_code, result.stdout[:200])
            assert result.stderr.startswith("error: ") and words in result.stderr, result.stderr
            assert result.stderr.count("\n") == 1
    assert (count(TrustedIssuer), count(TrustedIssuerRule), count(TrustedIssuerClient)) == before

    # A pasted JWK Set for an issuer that publishes none.
    jwks_file = tmp_path / "jwks.json"
    jwks_file.write_text(json.dumps(local_issuer.jwks()))
    pasted = cli.json("issuer", "add", org.org_id, "https://ci.example/oidc", "--audience", AUDIENCE,
                      "--jwks-file", str(jwks_file))
    assert cli.json("issuer", "show", pasted["issuer_id"])["keys"] == {
        "source": "jwks", "jwks_uri": None, "key_ids": ["issuer-key-1"], "last_fetch_at": None, "last_error": None}

    assert cli.json("issuer", "disallow", issuer_id, client.client_id) == {"issuer_id": issuer_id,
                                                                           "disallowed": client.client_id}
    assert cli.json("issuer", "rule", "delete", issuer_id, rule["rule_id"]) == {"deleted": rule["rule_id"]}
    assert cli.json("issuer", "delete", issuer_id) == {"deleted": issuer_id}
    assert count(TrustedIssuer, TrustedIssuer.issuer_id == issuer_id) == 0
    assert audit_actions(org.org_id)[-7:] == [
        "trusted_issuer.created", "trusted_issuer.rule_added", "trusted_issuer.client_allowed",
        "trusted_issuer.created", "trusted_issuer.client_disallowed", "trusted_issuer.rule_deleted",
        "trusted_issuer.deleted"]
    for command in (("issuer",), ("issuer", "add"), ("issuer", "rule", "add"), ("issuer", "allow")):
        assert cli.invoke(*command, "--help").exit_code == 0


# --- management API -------------------------------------------------------------------------

def test_the_management_api_manages_issuers_rules_and_clients(app, http, local_issuer, jwks_server):
    manager = make_manager(http)
    other = make_manager(http, "Globex")
    h = manager.headers()
    account = create_account(manager.org_id, "payments worker", "service")

    created = http.post(f"{API}/issuers", json={"issuer_url": local_issuer.url, "audience": AUDIENCE}, headers=h)
    assert created.status_code == 201, created.get_json()
    body = created.get_json()
    issuer_id = body["issuer_id"]
    assert created.headers["Location"].endswith(f"{API}/issuers/{issuer_id}")
    assert body["keys"]["source"] == "discovery" and body["keys"]["key_ids"] == ["issuer-key-1"]
    assert body["rules"] == [] and body["clients"] == []

    rule = http.post(f"{API}/issuers/{issuer_id}/rules", headers=h, json={
        "account_id": account.account_id, "claims": {"sub": WORKLOAD}, "scope": "read"})
    assert rule.status_code == 201, rule.get_json()
    rule_id = rule.get_json()["rule_id"]
    allowed = http.post(f"{API}/issuers/{issuer_id}/clients", json={"client_id": manager.tenant.client_id}, headers=h)
    assert allowed.status_code == 201 and allowed.get_json()["client_id"] == manager.tenant.client_id

    assert [i["issuer_id"] for i in http.get(f"{API}/issuers", headers=h).get_json()["items"]] == [issuer_id]
    detail = http.get(f"{API}/issuers/{issuer_id}", headers=h).get_json()
    assert [r["rule_id"] for r in detail["rules"]] == [rule_id] and detail["rules"][0]["scope"] == "read"
    assert http.get(f"{API}/issuers/{issuer_id}/rules", headers=h).get_json()["items"] == detail["rules"]
    assert http.get(f"{API}/issuers/{issuer_id}/clients", headers=h).get_json()["items"] == detail["clients"]

    # Another organization sees none of it; bad inputs are clear and store nothing.
    assert http.get(f"{API}/issuers", headers=other.headers()).get_json()["items"] == []
    assert_problem(http.get(f"{API}/issuers/{issuer_id}", headers=other.headers()), 404)
    assert_problem(http.delete(f"{API}/issuers/{issuer_id}", headers=other.headers()), 404)
    before = (count(TrustedIssuer), count(TrustedIssuerRule), count(TrustedIssuerClient))
    bad = [
        ("post", "/issuers", {"issuer_url": local_issuer.url, "audience": AUDIENCE}, 409, "issuer_url"),
        ("post", "/issuers", {"issuer_url": "http://plain.example", "audience": AUDIENCE}, 400, "issuer_url"),
        ("post", "/issuers", {"issuer_url": local_issuer.url + "/2", "audience": ""}, 400, "audience"),
        ("post", "/issuers", {"issuer_url": local_issuer.url + "/3", "audience": AUDIENCE,
                              "jwks_uri": jwks_server.url("/missing")}, 400, "jwks_uri"),
        ("post", "/issuers", {"issuer_url": local_issuer.url + "/4", "audience": AUDIENCE,
                              "jwks": {"keys": [{"kty": "RSA", "n": "x", "e": "AQAB", "d": "secret"}]}}, 400, "jwks"),
        ("post", "/issuers", {"issuer_url": 7, "audience": AUDIENCE}, 422, "issuer_url"),
        ("post", f"/issuers/{issuer_id}/rules", {"account_id": account.account_id, "claims": {}}, 400, "claims"),
        ("post", f"/issuers/{issuer_id}/rules", {"account_id": other.user_id, "claims": {"sub": "x"}}, 404,
         "account_id"),
        ("post", f"/issuers/{issuer_id}/rules", {"account_id": account.account_id, "claims": {"sub": 1}}, 422, None),
        ("post", f"/issuers/{issuer_id}/rules", {"account_id": account.account_id, "claims": {"sub": "x"},
                                                 "resource": "not a uri"}, 400, "resource"),
        ("post", f"/issuers/{issuer_id}/clients", {"client_id": other.tenant.client_id}, 404, "client_id"),
        ("post", f"/issuers/{issuer_id}/clients", {"client_id": manager.tenant.client_id}, 409, "client_id"),
        ("delete", f"/issuers/{issuer_id}/clients/{other.tenant.client_id}", None, 404, None),
        ("delete", f"/issuers/{issuer_id}/rules/rule_nope", None, 404, None),
    ]
    for method, path, payload, status, field in bad:
        with case((method, path, payload)):
            response = getattr(http, method)(API + path, json=payload, headers=h)
            problem = assert_problem(response, status, field=field)
            assert problem.get("detail")
    assert (count(TrustedIssuer), count(TrustedIssuerRule), count(TrustedIssuerClient)) == before

    assert http.delete(f"{API}/issuers/{issuer_id}/clients/{manager.tenant.client_id}", headers=h).status_code == 204
    assert http.delete(f"{API}/issuers/{issuer_id}/rules/{rule_id}", headers=h).status_code == 204
    assert http.delete(f"{API}/issuers/{issuer_id}", headers=h).status_code == 204
    assert_problem(http.get(f"{API}/issuers/{issuer_id}", headers=h), 404)
    assert audit_actions(manager.org_id)[-6:] == [
        "trusted_issuer.created", "trusted_issuer.rule_added", "trusted_issuer.client_allowed",
        "trusted_issuer.client_disallowed", "trusted_issuer.rule_deleted", "trusted_issuer.deleted"]
