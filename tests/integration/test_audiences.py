"""SPEC §9: every token names one API (`aud`, RFC 8707 `resource`) and its organization (`org_id`);
a client gets tokens only for APIs it was granted, only with granted scopes (RFC 6749 §3.3 grammar,
exactly); an API's own client sees only the tokens meant for its API."""
from __future__ import annotations

import pytest

from authserver.models import AccessToken, ClientGrant, UsedAssertion
from authserver.services import apis
from authserver.services.client_secrets import add_secret
from authserver.services.clients import register_client
from authserver.services.organizations import create_organization

from ..conftest import DEFAULT_API, MANAGEMENT_API, basic, get_token, make_tenant, one_transaction
from .helpers import assert_oauth_error, count, unverified_claims

ORDERS = "https://api.acme.test/orders"
BILLING = "https://api.acme.test/billing"
GLOBEX_API = "https://api.globex.test/stock"
PLATFORM = "https://platform.example.test/search"


def own_client(org_id: str, api_id: str) -> dict:
    """A client of `org_id` bound to the API (its own client), with one secret: auth headers."""
    client = register_client(org_id, "Resource server")
    apis.bind_client(api_id, client.client_id)
    new = add_secret(client.client_id)
    return basic(client.client_id, new.client_secret)


def introspect(http, token: str, headers: dict) -> dict:
    response = http.post("/oauth/introspect", data={"token": token}, headers=headers)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


@pytest.fixture
def world(app):
    """Acme with two APIs (orders, billing), Globex with one, and an operator's platform API open to all,
    each with its own bound client; Acme's client holds orders (default) and the platform API."""
    with one_transaction():
        acme = make_tenant("Acme", scope="")
        globex = make_tenant("Globex", scope="")
        operator_org = create_organization("Operator").org_id
        orders = apis.create_api(
            "Orders", ORDERS, org_id=acme.org_id, scopes=["orders:read", "orders:write", "orders:admin"]
        )
        billing = apis.create_api("Billing", BILLING, org_id=acme.org_id, scopes=["billing:read"])
        stock = apis.create_api("Stock", GLOBEX_API, org_id=globex.org_id, scopes=["stock:read"])
        platform = apis.create_api("Search", PLATFORM, scopes=["search"], open_to_all=True)
        apis.grant_client(acme.client_id, orders.api_id, "orders:read orders:write", default=True)
        apis.grant_client(acme.client_id, platform.api_id, "search")
        apis.grant_client(globex.client_id, stock.api_id, "stock:read", default=True)
        apis.grant_client(globex.client_id, platform.api_id, "search")
        return {
            "acme": acme, "globex": globex, "orders": orders, "billing": billing, "stock": stock, "platform": platform,
            "orders_rs": own_client(acme.org_id, orders.api_id), "billing_rs": own_client(acme.org_id, billing.api_id),
            "stock_rs": own_client(globex.org_id, stock.api_id),
            "platform_rs": own_client(operator_org, platform.api_id),
        }


# --- the token says whom it is for --------------------------------------------------------------------

def test_no_resource_means_the_default_api_and_all_granted_scopes(http, world):
    acme = world["acme"]
    body = get_token(http, acme)
    claims = unverified_claims(body["access_token"])
    assert claims["aud"] == ORDERS and claims["org_id"] == acme.org_id
    assert body["scope"] == claims["scope"] == "orders:read orders:write"
    record = AccessToken.query.filter_by(jti=claims["jti"]).one()
    assert record.audience == ORDERS and record.scope == "orders:read orders:write"


def test_resource_names_the_api_and_empty_resource_counts_as_omitted(http, world):
    acme = world["acme"]
    claims = unverified_claims(get_token(http, acme, resource=PLATFORM)["access_token"])
    assert claims["aud"] == PLATFORM and claims["scope"] == "search" and claims["org_id"] == acme.org_id
    assert unverified_claims(get_token(http, acme, resource="")["access_token"])["aud"] == ORDERS


@pytest.mark.parametrize("resource,why", [
    (BILLING, "an API of the same organization not granted to the client"),
    (GLOBEX_API, "another organization's API"),
    ("https://api.nowhere.test/x", "an unknown API"),
    (MANAGEMENT_API, "a platform API the client holds no grant for"),
    ("orders", "not an absolute URI"),
    (ORDERS + "#frag", "a fragment"),
    (ORDERS + "\n", "a trailing newline"),
])
def test_resource_not_granted_unknown_or_malformed_is_invalid_target(http, world, resource, why):
    acme = world["acme"]
    assertion = acme.assertion()
    response = http.post("/oauth/token", data=acme.token_form(assertion, resource=resource), headers=acme.auth())
    body = assert_oauth_error(response, 400, "invalid_target")
    assert body["error_description"], why
    assert count(AccessToken) == 0 and count(UsedAssertion) == 0
    # Nothing was used up: the same assertion still gets a token.
    assert http.post("/oauth/token", data=acme.token_form(assertion), headers=acme.auth()).status_code == 200


def test_two_resources_are_invalid_target(http, world):
    acme = world["acme"]
    from werkzeug.datastructures import MultiDict

    form = MultiDict(list(acme.token_form().items()) + [("resource", ORDERS), ("resource", PLATFORM)])
    response = http.post("/oauth/token", data=form, headers=acme.auth())
    assert_oauth_error(response, 400, "invalid_target")
    assert count(AccessToken) == 0


def test_no_resource_and_no_default_api_is_invalid_target(http, world):
    acme = world["acme"]
    apis.grant_client(acme.client_id, world["orders"].api_id, "orders:read", default=False)
    response = http.post("/oauth/token", data=acme.token_form(), headers=acme.auth())
    body = assert_oauth_error(response, 400, "invalid_target")
    assert "resource" in body["error_description"]
    assert unverified_claims(get_token(http, acme, resource=ORDERS)["access_token"])["aud"] == ORDERS


# --- scopes: the API's, granted, and the exact RFC 6749 §3.3 grammar ------------------------------------

@pytest.mark.parametrize("scope", [
    "orders:read\n", "orders:read ", " orders:read", "orders:read  orders:write", "orders:read\torders:write",
    "orders:read\r\n", 'orders"read', "orders\\read", "orders:réad", "orders:read\x7f", "orders:read\x0b",
])
def test_scope_outside_the_grammar_is_invalid_scope(http, world, scope):
    acme = world["acme"]
    response = http.post("/oauth/token", data=acme.token_form(scope=scope), headers=acme.auth())
    assert_oauth_error(response, 400, "invalid_scope")
    assert count(AccessToken) == 0 and count(UsedAssertion) == 0


@pytest.mark.parametrize("scope,resource", [
    ("orders:admin", ORDERS),          # defined by the API, not granted
    ("billing:read", ORDERS),          # another API's scope
    ("search", ORDERS),                # granted, but for another API
    ("orders:read", PLATFORM),         # granted for orders, asked for the platform API
    ("stock:read", ORDERS),            # another organization's scope name
    ("manage", ORDERS),
])
def test_scope_not_granted_for_that_api_is_invalid_scope(http, world, scope, resource):
    acme = world["acme"]
    response = http.post("/oauth/token", data=acme.token_form(scope=scope, resource=resource), headers=acme.auth())
    assert_oauth_error(response, 400, "invalid_scope")
    assert count(AccessToken) == 0


def test_requested_scopes_are_normalised(http, world):
    body = get_token(http, world["acme"], scope="orders:write orders:read orders:write")
    assert body["scope"] == "orders:read orders:write"


def test_a_scope_removed_from_the_api_leaves_every_grant_at_once(http, world):
    acme = world["acme"]
    get_token(http, acme, scope="orders:write")  # warms the worker's cache of the client's access
    apis.remove_scope(world["orders"].api_id, "orders:write")
    grant = ClientGrant.query.filter_by(client_id=acme.client_id, api_id=world["orders"].api_id).one()
    assert grant.scope == "orders:read"
    response = http.post("/oauth/token", data=acme.token_form(scope="orders:write"), headers=acme.auth())
    assert_oauth_error(response, 400, "invalid_scope")
    assert get_token(http, acme)["scope"] == "orders:read"


def test_ungrant_and_platform_access_take_effect_on_the_next_request(http, world):
    acme, globex = world["acme"], world["globex"]
    get_token(http, acme, resource=PLATFORM)
    apis.ungrant_client(acme.client_id, PLATFORM)
    assert_oauth_error(http.post("/oauth/token", data=acme.token_form(resource=PLATFORM), headers=acme.auth()),
                       400, "invalid_target")
    # A platform API closed to all keeps working only for the organizations it is opened to.
    platform = world["platform"]
    get_token(http, globex, resource=PLATFORM)
    apis.update_api(platform.api_id, open_to_all=False)
    assert_oauth_error(http.post("/oauth/token", data=globex.token_form(resource=PLATFORM), headers=globex.auth()),
                       400, "invalid_target")
    apis.open_api(platform.api_id, globex.org_id)
    assert get_token(http, globex, resource=PLATFORM)["scope"] == "search"
    apis.close_api(platform.api_id, globex.org_id)
    assert_oauth_error(http.post("/oauth/token", data=globex.token_form(resource=PLATFORM), headers=globex.auth()),
                       400, "invalid_target")


def test_a_subject_of_another_organization_is_refused(http, world):
    acme, globex = world["acme"], world["globex"]
    response = http.post("/oauth/token", data=acme.token_form(acme.assertion(sub=globex.account_id)),
                         headers=acme.auth())
    assert_oauth_error(response, 400, "invalid_grant")
    assert count(AccessToken) == 0


# --- who sees a token as active: every pair of {org API, platform API} x {same org, other org} ------------

def test_an_org_apis_own_client_sees_only_tokens_for_its_api(http, world):
    acme, globex = world["acme"], world["globex"]
    orders_token = get_token(http, acme)["access_token"]
    platform_token = get_token(http, acme, resource=PLATFORM)["access_token"]
    globex_platform_token = get_token(http, globex, resource=PLATFORM)["access_token"]
    globex_stock_token = get_token(http, globex)["access_token"]

    answer = introspect(http, orders_token, world["orders_rs"])
    assert answer["active"] is True and answer["aud"] == ORDERS and answer["org_id"] == acme.org_id
    # Same organization, another API (billing's own client): inactive.
    assert introspect(http, orders_token, world["billing_rs"]) == {"active": False}
    # Same organization's token for a platform API: not the org API's business.
    assert introspect(http, platform_token, world["orders_rs"]) == {"active": False}
    # Another organization's tokens, for its own API or a platform API: inactive.
    assert introspect(http, globex_stock_token, world["orders_rs"]) == {"active": False}
    assert introspect(http, globex_platform_token, world["orders_rs"]) == {"active": False}
    # And the other way round: Globex's API client never sees Acme's tokens.
    assert introspect(http, orders_token, world["stock_rs"]) == {"active": False}
    assert introspect(http, platform_token, world["stock_rs"]) == {"active": False}


def test_a_platform_apis_own_client_sees_every_organizations_tokens_for_it_and_nothing_else(http, world):
    acme, globex = world["acme"], world["globex"]
    for tenant in (acme, globex):
        token = get_token(http, tenant, resource=PLATFORM)["access_token"]
        answer = introspect(http, token, world["platform_rs"])
        assert answer["active"] is True and answer["aud"] == PLATFORM and answer["org_id"] == tenant.org_id
    assert introspect(http, get_token(http, acme)["access_token"], world["platform_rs"]) == {"active": False}
    assert introspect(http, get_token(http, globex)["access_token"], world["platform_rs"]) == {"active": False}


def test_unbinding_ends_introspection_at_once(http, world):
    token = get_token(http, world["acme"])["access_token"]
    assert introspect(http, token, world["orders_rs"])["active"] is True
    rs_client_id = apis.bound_clients(world["orders"])[0]
    apis.unbind_client(world["orders"].api_id, rs_client_id)
    assert introspect(http, token, world["orders_rs"]) == {"active": False}


def test_a_reused_identifier_never_accepts_the_deleted_apis_tokens(http, world):
    """Org A deletes its API; org B registers the same identifier: A's tokens stay dead for B."""
    acme, globex = world["acme"], world["globex"]
    token = get_token(http, acme)["access_token"]
    impact = apis.delete_api(world["orders"].api_id, force=True)
    assert impact.client_ids == [acme.client_id] and impact.live_tokens == 1
    reborn = apis.create_api("Orders (Globex)", ORDERS, org_id=globex.org_id, scopes=["orders:read"])
    assert introspect(http, token, own_client(globex.org_id, reborn.api_id)) == {"active": False}
    assert introspect(http, token, acme.auth()) == {"active": False}  # revoked, for its own client too


def test_the_management_api_refuses_tokens_for_other_apis(http, world):
    from authserver.services.accounts import create_account

    acme = world["acme"]
    admin = create_account(acme.org_id, "Admin", "user", email="admin@acme.test",
                           password="correct horse battery staple", is_admin=True)
    apis.grant_client(acme.client_id, MANAGEMENT_API, "manage")
    apis.update_api(world["orders"].api_id, scopes=["orders:read", "orders:write", "manage"])
    apis.grant_client(acme.client_id, ORDERS, "orders:read manage")
    assertion = lambda: acme.assertion(sub=admin.account_id)  # noqa: E731
    wrong = get_token(http, acme, assertion=assertion(), scope="manage")["access_token"]  # aud: orders
    assert unverified_claims(wrong)["aud"] == ORDERS
    response = http.get("/api/v1/clients", headers={"Authorization": f"Bearer {wrong}"})
    assert response.status_code == 401 and MANAGEMENT_API in response.get_json()["detail"]
    right = get_token(http, acme, assertion=assertion(), resource=MANAGEMENT_API)["access_token"]
    assert unverified_claims(right)["aud"] == MANAGEMENT_API
    assert http.get("/api/v1/clients", headers={"Authorization": f"Bearer {right}"}).status_code == 200


def test_the_default_platform_api_is_the_configured_audience(http, tenant):
    claims = unverified_claims(get_token(http, tenant)["access_token"])
    assert claims["aud"] == DEFAULT_API
