"""Client authentication at the OAuth endpoints: client_secret_basic or client_secret_post, exactly one."""
from __future__ import annotations

import base64
import binascii
from urllib.parse import unquote_plus

from authlib.oauth2.rfc6749 import ClientMixin
from authlib.oauth2.rfc6749.authenticate_client import ClientAuthentication

from ..services.client_secrets import AuthenticatedSecret, authenticate_client_secret
from .constants import AUTH_CLIENT_SECRET_BASIC, AUTH_CLIENT_SECRET_POST, GRANT_TYPE_JWT_BEARER, HEADER_AUTHORIZATION
from .errors import InvalidClientError, InvalidRequestError, SlowDownError


class AuthenticatedClient(ClientMixin):
    """A client that proved a secret on this request (Authlib's client model)."""

    def __init__(self, match: AuthenticatedSecret, auth_method: str):
        self.client_id = match.client_id
        self.org_id = match.org_id
        self.keys_version = match.keys_version
        self.access_version = match.access_version
        self.secret_id = match.secret_id
        self.auth_method = auth_method

    def get_client_id(self):
        return self.client_id

    def get_allowed_scope(self, scope):  # scopes are resolved per API by the grant (oauth/grants.py)
        return ""

    def check_endpoint_auth_method(self, method, endpoint):
        return method in (AUTH_CLIENT_SECRET_BASIC, AUTH_CLIENT_SECRET_POST)

    def check_grant_type(self, grant_type):
        return grant_type == GRANT_TYPE_JWT_BEARER

    def check_client_secret(self, client_secret):
        # The secret was matched against its stored hash when this object was built.
        return authenticate_client_secret(self.client_id, client_secret) is not None


def _parse_basic(header: str) -> tuple[str, str]:
    """RFC 6749 §2.3.1: Basic with the form-urlencoded client id and secret."""
    scheme, _, encoded = header.partition(" ")
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise InvalidClientError("The Basic authorization header is not valid base64 of client_id:client_secret.", basic_used=True) from None
    client_id, sep, secret = decoded.partition(":")
    if not sep or not client_id or not secret:
        raise InvalidClientError("The Basic authorization header must carry client_id:client_secret.", basic_used=True)
    client_id, secret = unquote_plus(client_id), unquote_plus(secret)
    if "\x00" in client_id or "\x00" in secret:  # never valid, and PostgreSQL text refuses it (a 500 otherwise)
        raise InvalidClientError("Client authentication failed: unknown client or wrong secret.", basic_used=True)
    return client_id, secret


class SecretClientAuthentication(ClientAuthentication):
    """Authlib's client-auth registry, narrowed to the two secret methods and checked strictly."""

    def __init__(self, runtime):
        super().__init__(None)
        self.runtime = runtime

    def authenticate(self, request, methods, endpoint="token"):
        """Authenticate, with failure limits that never lock out a correct client: failed attempts are
        counted per source address and per client id, and once either is over its limit further
        *failed* attempts answer 429. A correct secret is never refused by these limits, and the
        success path pays nothing for them."""
        try:
            return self._authenticate(request, methods)
        except InvalidClientError:
            settings = self.runtime.settings
            limiter = self.runtime.rate_limiter
            decisions = [limiter.hit("authfail:addr:" + (request.remote_addr or "unknown"),
                                     settings.rate_limit_auth_failures_per_address)]
            client_id = getattr(request, "attempted_client_id", None)
            if client_id:
                decisions.append(limiter.hit("authfail:client:" + client_id[:64], settings.rate_limit_auth_failures_per_client))
            refused = [d for d in decisions if not d.allowed]
            if refused:
                raise SlowDownError("Too many failed client authentications; retry later.",
                                    max(d.retry_after for d in refused)) from None
            raise

    def _authenticate(self, request, methods):
        header = request.headers.get(HEADER_AUTHORIZATION, "")
        basic = header[:6].lower() == "basic "
        form = request.form
        if "client_secret" in request.args or "client_id" in request.args:
            raise InvalidRequestError("Client credentials must not be sent in the URL query (RFC 6749 section 2.3.1).")
        post_id = form.get("client_id")
        post_secret = form.get("client_secret")
        if basic:
            client_id, secret = _parse_basic(header)
            if post_secret is not None or (post_id is not None and post_id != client_id):
                raise InvalidRequestError("Use exactly one client authentication method: Basic or form parameters, not both.")
            method = AUTH_CLIENT_SECRET_BASIC
        elif post_id is not None or post_secret is not None:
            if not post_id:
                raise InvalidClientError("client_id is missing.")
            if not post_secret:
                raise InvalidClientError(
                    "Client authentication is required: public clients are not supported, send client_secret too."
                )
            client_id, secret, method = post_id, post_secret, AUTH_CLIENT_SECRET_POST
        else:
            raise InvalidClientError(
                "Client authentication is required: use HTTP Basic (client_secret_basic) or client_id and client_secret in the form (client_secret_post)."
            )
        request.attempted_client_id = client_id
        if method not in methods:
            raise InvalidClientError(f"This endpoint does not accept {method}.", basic_used=basic)
        match = authenticate_client_secret(client_id, secret)
        if match is None:
            raise InvalidClientError("Client authentication failed: unknown client or wrong secret.", basic_used=basic)
        request.auth_method = method
        return AuthenticatedClient(match, method)
