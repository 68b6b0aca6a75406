"""The shape of a token request (SPEC §4, RFC 6749 §3.2, §3.3, §5.2): method, content type, size,
repeated parameters, grant type and scope."""
from __future__ import annotations

import io
from urllib.parse import urlencode

import pytest

from authserver.models import AccessToken

from ..conftest import JWT_BEARER, get_token
from .helpers import (
    assert_no_store,
    assert_nothing_issued,
    assert_oauth_error,
    case,
    count,
    token_record,
    unverified_claims,
)


def test_get_on_the_token_endpoint_is_405_json(http, tenant):
    response = http.get("/oauth/token", headers=tenant.auth())
    assert response.status_code == 405
    assert response.mimetype == "application/json"
    assert response.get_json()["error"] == "invalid_request"
    assert "POST" in response.headers.get("Allow", "")
    for method in ("put", "delete", "patch"):
        assert getattr(http, method)("/oauth/token").status_code == 405


def test_unknown_oauth_path_is_404_json(http):
    response = http.post("/oauth/nope", data={"a": "b"})
    assert response.status_code == 404 and response.mimetype == "application/json"


def test_non_form_content_type_is_invalid_request(http, tenant):
    for content_type, payload in (
        ("application/json", '{"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer"}'),
        ("text/plain", urlencode(tenant.token_form())),
        ("multipart/form-data; boundary=xyz", "--xyz--"),
        (None, urlencode(tenant.token_form())),
    ):
        headers = dict(tenant.auth())
        if content_type:
            headers["Content-Type"] = content_type
        with case(content_type):
            assert_oauth_error(http.post("/oauth/token", data=payload, headers=headers), 400, "invalid_request")
            assert_nothing_issued()


def test_form_with_charset_parameter_is_accepted(http, tenant):
    response = http.post("/oauth/token", data=urlencode(tenant.token_form()),
                         headers={**tenant.auth(), "Content-Type": "application/x-www-form-urlencoded; charset=UTF-8"})
    assert response.status_code == 200, response.get_json()


def test_json_body_with_valid_credentials_gets_no_token(http, tenant):
    import json

    response = http.post("/oauth/token", data=json.dumps(tenant.token_form()),
                         headers={**tenant.auth(), "Content-Type": "application/json"})
    assert_oauth_error(response, 400, "invalid_request")
    assert_nothing_issued()


def test_repeated_parameter_is_invalid_request(http, tenant):
    for repeated in ("assertion", "grant_type", "scope", "client_id", "client_secret"):
        form = list(
            tenant.token_form(client_id=tenant.client_id, client_secret=tenant.client_secret, scope="read").items()
        )
        form.append((repeated, dict(form)[repeated]))
        response = http.post("/oauth/token", data=urlencode(form), content_type="application/x-www-form-urlencoded")
        with case(repeated):
            assert_oauth_error(response, 400, "invalid_request")
            assert_nothing_issued()


def test_oversized_body_is_413(http, tenant):
    form = tenant.token_form(padding="x" * 20000)
    response = http.post("/oauth/token", data=form, headers=tenant.auth())
    assert response.status_code == 413, response.get_data(as_text=True)[:200]
    assert response.mimetype == "application/json"
    assert response.get_json()["error"] == "invalid_request"
    assert_nothing_issued()


def test_oversized_body_without_content_length_is_refused(http, tenant):
    """A chunked body has no Content-Length: the limit must still hold."""
    body = urlencode(tenant.token_form(padding="x" * 40000)).encode()
    response = http.post(
        "/oauth/token", input_stream=io.BytesIO(body),
        headers={**tenant.auth(), "Transfer-Encoding": "chunked", "Content-Type": "application/x-www-form-urlencoded"},
        environ_overrides={"wsgi.input_terminated": True},  # as gunicorn sets it for a chunked body
    )
    assert response.status_code == 413, response.get_data(as_text=True)[:200]
    assert response.get_json()["error"] == "invalid_request"
    assert_nothing_issued()


@pytest.mark.parametrize("chunked", [False, True])
def test_body_of_exactly_the_limit_is_accepted(http, tenant, chunked):
    form = urlencode(tenant.token_form(padding=""))
    body = (form + "x" * (16384 - len(form))).encode()
    assert len(body) == 16384
    headers = {**tenant.auth(), "Content-Type": "application/x-www-form-urlencoded"}
    if chunked:
        response = http.post(
            "/oauth/token",
            input_stream=io.BytesIO(body),
            headers={**headers, "Transfer-Encoding": "chunked"},
            environ_overrides={"wsgi.input_terminated": True},
        )
    else:
        response = http.post("/oauth/token", data=body, headers=headers)
    assert response.status_code == 200, response.get_json()


# --- grant types ----------------------------------------------------------------------------

def test_unsupported_grant_type(http, tenant):
    for grant_type in (
        "client_credentials",
        "password",
        "authorization_code",
        "refresh_token",
        "urn:ietf:params:oauth:grant-type:saml2-bearer",
        "urn:ietf:params:oauth:grant-type:token-exchange",
        "urn:ietf:params:oauth:grant-type:device_code",
        JWT_BEARER.upper(),
        JWT_BEARER + " ",
    ):
        form = tenant.token_form(grant_type=grant_type, username="u", password="p", code="c", refresh_token="r")
        with case(grant_type):
            body = assert_oauth_error(
                http.post("/oauth/token", data=form, headers=tenant.auth()), 400, "unsupported_grant_type"
            )
            assert JWT_BEARER in body["error_description"]
            assert_nothing_issued()


def test_missing_grant_type(http, tenant):
    form = tenant.token_form()
    del form["grant_type"]
    response = http.post("/oauth/token", data=form, headers=tenant.auth())
    assert response.status_code == 400, response.get_json()
    assert response.get_json()["error"] == "invalid_request"
    assert "grant_type" in response.get_json()["error_description"]
    assert_no_store(response)
    assert_nothing_issued()


def test_unsupported_grant_type_without_credentials_gets_no_token(http, tenant):
    # The grant type is checked first (it says nothing about any client), then client authentication.
    response = http.post("/oauth/token", data={"grant_type": "client_credentials"})
    assert response.status_code == 400
    assert response.get_json()["error"] == "unsupported_grant_type"
    assert_nothing_issued()


# --- scope ------------------------------------------------------------------------------------

def test_scope_omitted_means_the_clients_default_scopes(http, tenant):
    body = get_token(http, tenant)
    assert body["scope"] == "read write"
    claims = unverified_claims(body["access_token"])
    assert claims["scope"] == "read write"
    assert token_record(claims["jti"]).scope == "read write"


def test_subset_scope_is_granted_exactly(http, tenant):
    body = get_token(http, tenant, scope="read")
    assert body["scope"] == "read"
    claims = unverified_claims(body["access_token"])
    assert claims["scope"] == "read"
    assert token_record(claims["jti"]).scope == "read"


def test_scope_is_normalised(http, tenant):
    body = get_token(http, tenant, scope="write read write")
    assert body["scope"] == "read write"


def test_scope_beyond_the_clients_is_invalid_scope(http, tenant):
    for scope in ("admin", "read admin", "manage", "READ", "read,write", "read\twrite", 'read "write"'):
        response = http.post("/oauth/token", data=tenant.token_form(scope=scope), headers=tenant.auth())
        with case(scope):
            assert_oauth_error(response, 400, "invalid_scope")
            assert_nothing_issued()


def test_client_without_scopes_gets_an_empty_scope(http, app):
    from ..conftest import make_tenant

    bare = make_tenant("Bare", scope="")
    body = get_token(http, bare)
    assert body["scope"] == ""
    response = http.post("/oauth/token", data=bare.token_form(scope="read"), headers=bare.auth())
    assert_oauth_error(response, 400, "invalid_scope")
    assert count(AccessToken) == 1


def test_token_response_fields(http, tenant):
    response = http.post("/oauth/token", data=tenant.token_form(), headers=tenant.auth())
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    assert_no_store(response)
    body = response.get_json()
    assert "refresh_token" not in body
    assert body["token_type"] == "Bearer"
    assert isinstance(body["expires_in"], int) and body["expires_in"] > 0
    assert response.headers.get("Pragma") in (None, "no-cache")
