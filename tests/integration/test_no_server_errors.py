"""No input a client can send makes any door answer 5xx or log a traceback: generated forms, headers and
assertions at the OAuth endpoints (answered with RFC 6749 JSON), JWT headers and claims of odd types at
every endpoint that reads a JWT, the console's forms and the query strings of the console and the
management API, on SQLite and PostgreSQL. The management API's whole surface is swept by schemathesis
in test_api_openapi.py."""
from __future__ import annotations

import base64
import json
import time
import uuid
from urllib.parse import quote

import jwt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from authserver.models import AccessToken

from ..conftest import JWT_BEARER, TOKEN_ENDPOINT
from ..log_leaks import no_traceback_logged
from .api_support import make_manager
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
    lambda header, payload, sig: (
        f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(payload).encode())}.{b64url(sig)}"
    ),
    st.dictionaries(
        st.sampled_from(["alg", "kid", "typ", "crit", "jku", "jwk", "x5c", "b64", "zip"]), json_value, max_size=5
    ),
    st.dictionaries(
        st.sampled_from(["iss", "sub", "aud", "exp", "nbf", "iat", "jti", "scope"]), json_value, max_size=8
    ),
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
    authorization=st.none()
    | header_text
    | st.builds(lambda raw: "Basic " + base64.b64encode(raw).decode(), st.binary(max_size=80)),
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
    from ..conftest import basic
    from .helpers import assert_nothing_issued, assert_oauth_error, b64url_json, case

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
                if path == "/oauth/introspect" and response.status_code == 200:
                    assert response.get_json() == {"active": False}


# --- JWT parts of odd types, on every endpoint that reads a JWT ------------------------------------------

CLIENT_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
SWEEP = settings(max_examples=30, deadline=None, database=None, derandomize=True,
                 suppress_health_check=list(HealthCheck))
# Text no database can hold or compare as such: lone surrogates, NUL, CR/LF, and very long values.
odd_text = (
    st.text(st.characters() | st.characters(categories=["Cs"]) | st.sampled_from("\x00\r\n\t\u2028\ufeff"), max_size=40)
    | st.builds(lambda c, n: c * n, st.sampled_from(["a", "\x00", "\u00e9", "\ud800", "\r\n", "/"]),
                st.sampled_from([64, 255, 256, 1025, 5000]))
)


def _nested(depth: int, leaf):
    value = leaf
    for _ in range(depth):
        value = {"a": value} if depth % 2 else [value]
    return value


odd_value = st.one_of(
    odd_text,
    st.integers(min_value=-(2**70), max_value=2**70) | st.sampled_from([2**63, -(2**63) - 1, 10**400, 0, -1]),
    st.floats(allow_nan=True, allow_infinity=True), st.booleans(), st.none(),
    st.builds(_nested, st.sampled_from([2, 50, 400]), st.just("x")),
    st.lists(odd_text, max_size=3), st.dictionaries(odd_text, odd_text, max_size=2),
)
odd_claims = st.dictionaries(st.sampled_from(["iss", "sub", "aud", "exp", "nbf", "iat", "jti", "client_id", "scope",
                                              "typ", "org_id"]), odd_value, min_size=1, max_size=3)
odd_header = st.dictionaries(st.sampled_from(["kid", "typ", "crit", "jku", "x5u", "cty", "b64"]), odd_value, max_size=2)


def _json(value) -> str:
    return json.dumps(value, allow_nan=True)


def _signed(tenant, claims: dict, header: dict, *, typ: str | None = None) -> str:
    """A JWS signed by the tenant's own key: valid claims overridden by the odd ones, so every check runs."""
    now = int(time.time())
    body = {"iss": tenant.client_id, "sub": tenant.account_id, "aud": TOKEN_ENDPOINT, "iat": now, "exp": now + 60,
            "jti": uuid.uuid4().hex, **claims}
    head = {"kid": tenant.kid, **({"typ": typ} if typ else {}), **header}
    signing_input = f"{b64url(_json(head | {'alg': tenant.alg}).encode())}.{b64url(_json(body).encode())}"
    algorithm = jwt.get_algorithm_by_name(tenant.alg)
    signature = algorithm.sign(signing_input.encode(), algorithm.prepare_key(tenant.private_key))
    return f"{signing_input}.{b64url(signature)}"


@SWEEP
@given(claims=odd_claims, header=odd_header, grant=st.booleans())
def test_odd_claims_and_headers_in_signed_assertions_never_get_a_server_error(http, tenant, claims, header, grant):
    assertion = _signed(tenant, claims, header)
    with no_traceback_logged():
        if grant:
            _check(http.post("/oauth/token", data=tenant.token_form(assertion), headers=tenant.auth()))
        else:  # the same JWT as client authentication (private_key_jwt)
            _check(http.post("/oauth/token", data={"grant_type": JWT_BEARER, "assertion": tenant.assertion(),
                                                   "client_assertion_type": CLIENT_ASSERTION_TYPE,
                                                   "client_assertion": assertion}))


@SWEEP
@given(claims=odd_claims, header=odd_header, signed=st.booleans(), path=st.sampled_from(PATHS[1:]))
def test_odd_tokens_at_introspection_revocation_and_the_api_never_get_a_server_error(
        http, tenant, claims, header, signed, path):
    if signed:
        token = _signed(tenant, {"client_id": tenant.client_id, **claims}, header, typ="at+jwt")
    else:
        token = f"{b64url(_json({'alg': 'RS256', **header}).encode())}.{b64url(_json(claims).encode())}.c2ln"
    with no_traceback_logged():
        response = http.post(path, data={"token": token}, headers=tenant.auth())
        _check(response)
        assert response.status_code in (200, 400, 413)
        if path == "/oauth/introspect" and response.status_code == 200:
            assert response.get_json() == {"active": False}
        api = http.get("/api/v1/clients", headers={"Authorization": f"Bearer {token}"})
        assert api.status_code == 401, api.get_data(as_text=True)[:300]
        authenticated = http.post(path, data={"token": "x", "client_assertion_type": CLIENT_ASSERTION_TYPE,
                                              "client_assertion": _signed(tenant, claims, header)})
        _check(authenticated)


# --- the console's forms and the query strings of both web doors ---------------------------------------------

def _form_body(fields: dict) -> bytes:
    """A form body as a browser would send it; a lone surrogate becomes its (invalid) UTF-8 bytes."""
    return "&".join(f"{quote(k)}={quote(v.encode('utf-8', 'surrogatepass'))}" for k, v in fields.items()).encode()


def _query(value: str) -> str:
    return quote(value.encode("utf-8", "surrogatepass"), safe="")


@pytest.fixture
def console_forms(console):
    """The signed-in console, an app of its organization, and a CSRF token for its session."""
    created = console.submit("/console/apps/new", "/console/apps/new", {"name": "Target app"})
    assert created.status_code == 303
    app_page = created.headers["Location"].split("#")[0]
    csrf = console.form(app_page, app_page + "/keys").fields["csrf_token"]
    return console, app_page, csrf


CONSOLE_FORMS = [  # (action, the fields its form has); "{app}" is the target app's page
    ("/console/apps/new", ("name", "description")),
    ("{app}/edit", ("name", "description")),
    ("{app}/secrets", ("expires_in_days", "expires_at")),
    ("{app}/keys", ("key", "kid")),
    ("{app}/key-url", ("jwks_uri",)),
    ("/console/accounts", ("name",)),
    ("/console/apis/new", ("name", "identifier", "scopes")),
    ("/console/account/password", ("current_password", "new_password", "new_password_again")),
]


@settings(max_examples=60, deadline=None, database=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(form=st.sampled_from(CONSOLE_FORMS), values=st.lists(odd_text, min_size=3, max_size=3))
def test_odd_text_in_every_console_form_never_gets_a_server_error(console_forms, form, values):
    console, app_page, csrf = console_forms
    action, names = form
    fields = {"csrf_token": csrf, **dict(zip(names, values, strict=False))}
    with no_traceback_logged():
        response = console.post(action.format(app=app_page), data=_form_body(fields),
                                content_type="application/x-www-form-urlencoded")
    assert response.status_code < 500, (action, response.status_code)
    assert response.status_code in (200, 303, 400, 403, 404, 409, 413, 429), (action, response.status_code)


@settings(max_examples=10, deadline=None, database=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(email=odd_text, password=odd_text, next_url=odd_text | st.builds("/console/{}".format, odd_text))
def test_odd_sign_in_forms_and_next_never_get_a_server_error(app, email, password, next_url):
    from ..console_support import Console

    browser = Console(app.test_client())
    csrf = browser.form("/console/sign-in", "/console/sign-in").fields["csrf_token"]
    with no_traceback_logged():
        page = browser.get("/console/sign-in?next=" + _query(next_url))
        assert page.status_code == 200
        body = _form_body({"csrf_token": csrf, "email": email, "password": password, "next": next_url})
        response = browser.post("/console/sign-in?next=" + _query(next_url), data=body,
                                content_type="application/x-www-form-urlencoded")
    assert response.status_code in (400, 429), response.status_code
    assert "\r" not in response.headers.get("Location", "") and "\n" not in response.headers.get("Location", "")


@pytest.fixture
def api_manager(app, http):
    return make_manager(http, "Paging")


paging_value = odd_text | st.integers(min_value=-(2**80), max_value=2**80).map(str) | st.sampled_from(
    ["99999999999999999999999", "-9223372036854775809", "9223372036854775808", "1e400", "NaN", "0x10", " 1"])


@settings(max_examples=25, deadline=None, database=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(value=paging_value, name=st.sampled_from(["before", "limit", "kind", "after", "page", "next"]))
def test_odd_query_strings_of_the_console_and_the_api_never_get_a_server_error(console, api_manager, value, name):
    query = f"?{name}={_query(value)}"
    with no_traceback_logged():
        for path in ("/console/audit", "/console/apps", "/console/sign-in"):
            assert console.get(path + query).status_code < 500, path
        for path in ("/api/v1/audit-events", "/api/v1/accounts", "/api/v1/clients"):
            response = console.http.get(path + query, headers=api_manager.headers())
            assert response.status_code < 500, (path, response.get_data(as_text=True)[:300])

