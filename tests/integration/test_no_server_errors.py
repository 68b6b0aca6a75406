"""No input a client can send makes the OAuth endpoints answer 5xx (issue: "no 5xx for any input a
client can send"): generated forms, headers and assertions, each answered with RFC 6749 JSON."""
from __future__ import annotations

import base64
import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from authserver.models import AccessToken

from ..conftest import JWT_BEARER
from .helpers import b64url, count

PATHS = ("/oauth/token", "/oauth/introspect", "/oauth/revoke")
NAMES = ("grant_type", "assertion", "scope", "client_id", "client_secret", "token", "token_type_hint", "x")
text = st.text(min_size=0, max_size=300)
# What an HTTP client can put in a header value (no line breaks; latin-1 on the wire).
header_text = st.text(st.characters(codec="latin-1", exclude_characters="\r\n"), max_size=300)
json_value = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=10,
)
# JWS-shaped strings whose header and payload are arbitrary JSON: the paths past "is it a JWT".
jws_shaped = st.builds(
    lambda header, payload, sig: f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(payload).encode())}.{b64url(sig)}",
    st.dictionaries(st.sampled_from(["alg", "kid", "typ", "crit", "jku", "jwk", "x5c", "b64", "zip"]), json_value, max_size=5),
    st.dictionaries(st.sampled_from(["iss", "sub", "aud", "exp", "nbf", "iat", "jti", "scope"]), json_value, max_size=8),
    st.binary(max_size=80),
)


def _check(response) -> None:
    assert response.status_code < 500, (response.status_code, response.get_data(as_text=True)[:300])
    if response.status_code != 200:
        body = response.get_json(silent=True)
        assert isinstance(body, dict) and isinstance(body.get("error"), str), response.get_data(as_text=True)[:300]


@settings(max_examples=120, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    path=st.sampled_from(PATHS),
    form=st.dictionaries(st.sampled_from(NAMES), text | jws_shaped, max_size=6),
    authorization=st.none() | header_text | st.builds(lambda raw: "Basic " + base64.b64encode(raw).decode(), st.binary(max_size=80)),
    use_tenant=st.booleans(),
)
def test_generated_requests_never_get_a_server_error(http, tenant, path, form, authorization, use_tenant):
    headers = {}
    if use_tenant:
        headers.update(tenant.auth())
    elif authorization is not None:
        headers["Authorization"] = authorization
    _check(http.post(path, data=form, headers=headers))


@settings(max_examples=120, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(assertion=jws_shaped, scope=st.none() | text)
def test_generated_assertions_from_an_authenticated_client_never_get_a_server_error(http, tenant, assertion, scope):
    form = {"grant_type": JWT_BEARER, "assertion": assertion}
    if scope is not None:
        form["scope"] = scope
    response = http.post("/oauth/token", data=form, headers=tenant.auth())
    _check(response)
    assert response.status_code != 200  # none of these is signed by the client's key
    assert count(AccessToken) == 0


@settings(max_examples=60, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=st.binary(max_size=400), content_type=st.sampled_from(
    ["application/x-www-form-urlencoded", "application/x-www-form-urlencoded; charset=latin-1", "application/json",
     "multipart/form-data", "text/plain", ""]))
def test_raw_bodies_never_get_a_server_error(http, tenant, raw, content_type):
    for path in PATHS:
        _check(http.post(path, data=raw, headers={**tenant.auth(), "Content-Type": content_type}))


def test_nul_characters_are_refused_not_crashed_on(http, tenant):
    """PostgreSQL text cannot hold NUL: every place a client can put one must answer 4xx, not 500."""
    from .helpers import assert_nothing_issued, assert_oauth_error, b64url_json, case
    from ..conftest import basic

    with case("form value"):
        assert_oauth_error(http.post("/oauth/token", data=tenant.token_form(client_id="c\x00", client_secret="s\x00")),
                           400, "invalid_request")
    for client_id, secret in (("c\x00", "s"), (tenant.client_id, "s\x00"), ("c%00", "s"), (tenant.client_id, "s%00")):
        with case(("basic", client_id, secret)):
            assert_oauth_error(http.post("/oauth/token", data=tenant.token_form(), headers=basic(client_id, secret)),
                               401, "invalid_client")
    for claim in ("sub", "jti"):
        with case(claim):
            assertion = tenant.assertion(**{claim: "x\x00y"})
            assert_oauth_error(http.post("/oauth/token", data=tenant.token_form(assertion), headers=tenant.auth()),
                               400, "invalid_grant")
    with case("assertion kid"):
        assertion = tenant.assertion(headers={"kid": "k\x00"})
        assert_oauth_error(http.post("/oauth/token", data=tenant.token_form(assertion), headers=tenant.auth()),
                           400, "invalid_grant")
    assert_nothing_issued()
    for kid in ("\x00", "a\x00b", "k" * 5000):
        forged = f"{b64url_json({'alg': 'RS256', 'kid': kid, 'typ': 'at+jwt'})}.{b64url_json({'jti': 'x'})}.c2ln"
        for path in ("/oauth/introspect", "/oauth/revoke"):
            with case((path, kid[:10])):
                response = http.post(path, data={"token": forged}, headers=tenant.auth())
                assert response.status_code == 200, response.get_data(as_text=True)[:200]
                if path == "/oauth/introspect":
                    assert response.get_json() == {"active": False}
