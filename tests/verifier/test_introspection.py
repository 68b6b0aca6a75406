"""introspect(): RFC 7662 with client_secret_basic against the local issuer."""
from __future__ import annotations

import base64
import time

import pytest
from authserver_verifier import InsufficientScope, InvalidToken, VerifierUnavailable

from .local_issuer import AUDIENCE, ORG_ID


def active_answer(issuer, **overrides) -> dict:
    now = int(time.time())
    answer = {"active": True, "iss": issuer.url, "aud": AUDIENCE, "org_id": ORG_ID, "sub": "account-1",
              "client_id": "client-1", "scope": "orders:read", "jti": "j-1", "iat": now, "exp": now + 300,
              "token_type": "Bearer"}
    answer.update(overrides)
    return {k: v for k, v in answer.items() if v is not None}


@pytest.fixture
def introspecting(make_verifier):
    return make_verifier(introspection_client=("api client:1", "s3cret/+&="), org_id=ORG_ID)


def test_active_token(issuer, introspecting):
    issuer.introspection_answer = active_answer(issuer)
    token = issuer.mint()
    access_token = introspecting.introspect(token, required_scopes=["orders:read"])
    assert (access_token.sub, access_token.client_id, access_token.org_id) == ("account-1", "client-1", ORG_ID)
    assert access_token.scopes == {"orders:read"} and access_token.aud == AUDIENCE
    request = issuer.introspection_requests[-1]
    assert request["form"]["token"] == token
    assert request["content_type"] == "application/x-www-form-urlencoded"
    # RFC 6749 §2.3.1: id and secret are form-urlencoded, then joined with ":" and base64-encoded.
    scheme, credentials = request["authorization"].split(" ")
    assert scheme == "Basic"
    assert base64.b64decode(credentials).decode() == "api+client%3A1:s3cret%2F%2B%26%3D"


def test_inactive_token(issuer, introspecting):
    issuer.introspection_answer = {"active": False}
    token = issuer.mint()
    with pytest.raises(InvalidToken, match="not active") as caught:
        introspecting.introspect(token)
    assert caught.value.status_code == 401 and token not in caught.value.description


@pytest.mark.parametrize("overrides, match", [
    ({"active": "true"}, "not active"),
    ({"aud": "https://api.example.com/billing"}, "another API"),
    ({"aud": None}, "another API"),
    ({"org_id": "org-2"}, "another organization"),
    ({"iss": "https://evil.example.com"}, "another authorization server"),
    ({"exp": int(time.time()) - 3600}, "expired"),
    ({"sub": None}, "sub"),
])
def test_answers_that_are_refused(issuer, introspecting, overrides, match):
    issuer.introspection_answer = active_answer(issuer, **overrides)
    with pytest.raises(InvalidToken, match=match):
        introspecting.introspect(issuer.mint())


def test_scope_from_the_answer(issuer, introspecting):
    issuer.introspection_answer = active_answer(issuer, scope="orders:read")
    with pytest.raises(InsufficientScope):
        introspecting.introspect(issuer.mint(), required_scopes=["orders:write"])


@pytest.mark.parametrize("status", [401, 500])
def test_introspection_endpoint_failures_are_unavailable(issuer, introspecting, status):
    issuer.introspection_answer = {"_status": status}
    with pytest.raises(VerifierUnavailable) as caught:
        introspecting.introspect(issuer.mint())
    assert caught.value.status_code == 503


def test_introspection_needs_a_client(issuer, verifier):
    with pytest.raises(ValueError, match="introspection_client"):
        verifier.introspect(issuer.mint())
