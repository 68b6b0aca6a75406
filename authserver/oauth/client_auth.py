"""Client authentication at the OAuth endpoints: client_secret_basic, client_secret_post or
private_key_jwt (RFC 7523 §2.2), exactly one."""
from __future__ import annotations

import base64
import binascii
from typing import TYPE_CHECKING
from urllib.parse import unquote_plus

from authlib.oauth2.rfc6749 import ClientMixin
from authlib.oauth2.rfc6749.authenticate_client import ClientAuthentication

from .. import clock, token_store
from ..services.app_services import AppServices
from ..services.client_secrets import (
    REFUSED_EXPIRED,
    REFUSED_LEAKED,
    REFUSED_MALFORMED,
    AuthenticatedSecret,
    SecretRefusal,
    authenticate_client_secret,
)
from ..services.token_issuance import ClientAssertionReplayed, ReplayCacheUnavailable
from .assertions import AssertionRules, ClientKeySet, VerifiedAssertion, parse_assertion, verify_assertion
from .constants import (
    AUTH_CLIENT_SECRET_BASIC,
    AUTH_CLIENT_SECRET_POST,
    AUTH_PRIVATE_KEY_JWT,
    CLIENT_ASSERTION_TYPE_JWT_BEARER,
    CLIENT_AUTH_METHODS,
    GRANT_TYPE_JWT_BEARER,
    HEADER_AUTHORIZATION,
    PARAM_CLIENT_ASSERTION,
    PARAM_CLIENT_ASSERTION_TYPE,
    PATH_INTROSPECT,
    PATH_REVOKE,
    PATH_TOKEN,
)
from .errors import InvalidClientError, InvalidRequestError, SlowDownError, TemporarilyUnavailableError

if TYPE_CHECKING:
    from .server import OAuthCaches


class AuthenticatedClient(ClientMixin):
    """A client that proved who it is on this request (Authlib's client model): with a secret, or with
    a client assertion signed by one of its keys."""

    def __init__(self, match: AuthenticatedSecret | token_store.ClientRecord, auth_method: str,
                 client_assertion: VerifiedAssertion | None = None):
        self.client_id = match.client_id
        self.org_id = match.org_id
        self.keys_version = match.keys_version
        self.access_version = match.access_version
        self.secret_id = getattr(match, "secret_id", None)  # None: authenticated without a secret
        self.auth_method = auth_method
        # private_key_jwt at the token endpoint: its jti is used up together with the token it obtains.
        self.client_assertion = client_assertion

    def get_client_id(self):
        return self.client_id

    def get_allowed_scope(self, scope):  # scopes are resolved per API by the grant (oauth/grants.py)
        return ""

    def check_endpoint_auth_method(self, method, endpoint):
        return method in CLIENT_AUTH_METHODS

    def check_grant_type(self, grant_type):
        return grant_type == GRANT_TYPE_JWT_BEARER

    def check_client_secret(self, client_secret):
        # The secret was matched against its stored hash when this object was built.
        return isinstance(authenticate_client_secret(self.client_id, client_secret), AuthenticatedSecret)


UNKNOWN_CLIENT_OR_WRONG_SECRET = "Client authentication failed: unknown client or wrong secret."


def secret_failure_description(refusal: SecretRefusal | None) -> str:
    """The invalid_client description of a failed secret. Expired and leaked are said only to a
    caller who presented that very secret with its client id (SecretRefusal); a malformed secret
    is told apart by its public checksum alone, which says nothing about any client."""
    if refusal is None:
        return UNKNOWN_CLIENT_OR_WRONG_SECRET
    if refusal.reason == REFUSED_EXPIRED:
        return (f"Client authentication failed: this client secret expired at {clock.isoformat(refusal.at)}. "
                "Add a new secret for the client and use it instead.")
    if refusal.reason == REFUSED_LEAKED:
        return ("Client authentication failed: this client secret was reported leaked and is disabled. "
                "Add a new secret for the client, use it instead, and delete this one.")
    if refusal.reason == REFUSED_MALFORMED:
        return ("Client authentication failed: the client secret is malformed (its checksum does not match); "
                "it may be truncated or mistyped.")
    return UNKNOWN_CLIENT_OR_WRONG_SECRET


def _parse_basic(header: str) -> tuple[str, str]:
    """RFC 6749 §2.3.1: Basic with the form-urlencoded client id and secret."""
    scheme, _, encoded = header.partition(" ")
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise InvalidClientError(
            "The Basic authorization header is not valid base64 of client_id:client_secret.", basic_used=True
        ) from None
    client_id, sep, secret = decoded.partition(":")
    if not sep or not client_id or not secret:
        raise InvalidClientError("The Basic authorization header must carry client_id:client_secret.", basic_used=True)
    client_id, secret = unquote_plus(client_id), unquote_plus(secret)
    if "\x00" in client_id or "\x00" in secret:  # never valid, and PostgreSQL text refuses it (a 500 otherwise)
        raise InvalidClientError(UNKNOWN_CLIENT_OR_WRONG_SECRET, basic_used=True)
    return client_id, secret


def counted_failure(services: AppServices, request) -> SlowDownError | None:
    """Count a failed client authentication per source address and per the client id it named; the
    error to answer instead once either is over its limit (None while within them)."""
    limits = services.rate_limiter
    decisions = [limits.hit(limits.policies.auth_failures_per_address, request.remote_addr or "unknown")]
    client_id = getattr(request, "attempted_client_id", None)
    if client_id:
        decisions.append(limits.hit(limits.policies.auth_failures_per_client, client_id[:64]))
    refused = [d for d in decisions if not d.allowed]
    if refused:
        return SlowDownError(
            "Too many failed client authentications; retry later.", max(d.retry_after for d in refused)
        )
    return None


CLIENT_ASSERTION_REPLAYED = "The client_assertion was already used: each jti is accepted once."
# Unknown client, unknown kid, bad signature: one answer, which does not tell whether the client exists.
CLIENT_ASSERTION_KEY_FAILURE = ("Client authentication failed: unknown client, or the client_assertion's signature "
                                "does not verify with a key registered for it (check its kid, alg and key).")
ENDPOINT_PATHS = {"token": PATH_TOKEN, "introspection": PATH_INTROSPECT, "revocation": PATH_REVOKE}
ENDPOINT_LABELS = {"token": "token endpoint URL", "introspection": "introspection endpoint URL",
                   "revocation": "revocation endpoint URL"}


def client_assertion_rules(endpoint: str) -> AssertionRules:
    """RFC 7523 §3 as it applies to a client assertion at one endpoint: aud is the issuer or that endpoint's URL."""
    return AssertionRules(
        parameter=PARAM_CLIENT_ASSERTION,
        endpoint_path=ENDPOINT_PATHS[endpoint],
        endpoint_label=ENDPOINT_LABELS[endpoint],
        error=InvalidClientError,
        key_failure=CLIENT_ASSERTION_KEY_FAILURE,
    )


class SecretClientAuthentication(ClientAuthentication):
    """Authlib's client-auth registry, narrowed to the secret methods and private_key_jwt, checked strictly."""

    def __init__(self, services: AppServices, caches: OAuthCaches):
        super().__init__(None)
        self.services = services
        self.caches = caches

    def authenticate(self, request, methods, endpoint="token"):
        """Authenticate, with failure limits that never lock out a correct client: failed attempts are
        counted per source address and per client id, and once either is over its limit further
        *failed* attempts answer 429. A correct secret is never refused by these limits, and the
        success path pays nothing for them."""
        try:
            return self._authenticate(request, methods, endpoint)
        except InvalidClientError:
            slow_down = counted_failure(self.services, request)
            if slow_down is not None:
                raise slow_down from None
            raise

    def _authenticate(self, request, methods, endpoint):
        header = request.headers.get(HEADER_AUTHORIZATION, "")
        basic = header[:6].lower() == "basic "
        form = request.form
        if any(name in request.args for name in ("client_secret", "client_id", PARAM_CLIENT_ASSERTION)):
            raise InvalidRequestError("Client credentials must not be sent in the URL query (RFC 6749 section 2.3.1).")
        post_id = form.get("client_id")
        post_secret = form.get("client_secret")
        assertion_type = form.get(PARAM_CLIENT_ASSERTION_TYPE)
        client_assertion = form.get(PARAM_CLIENT_ASSERTION)
        if assertion_type is not None or client_assertion is not None:
            if basic or post_secret is not None:
                raise InvalidRequestError("Use exactly one client authentication method: a client_assertion "
                                          "(private_key_jwt) or a client secret (Basic or form), not both.")
            return self._authenticate_with_assertion(request, methods, endpoint, assertion_type, client_assertion,
                                                     post_id)
        if basic:
            client_id, secret = _parse_basic(header)
            if post_secret is not None or (post_id is not None and post_id != client_id):
                raise InvalidRequestError(
                    "Use exactly one client authentication method: Basic or form parameters, not both."
                )
            method = AUTH_CLIENT_SECRET_BASIC
        elif post_id is not None or post_secret is not None:
            if not post_id:
                raise InvalidClientError("client_id is missing.")
            if not post_secret:
                raise InvalidClientError(
                    "Client authentication is required: public clients are not supported, send client_secret too "
                    "(or a client_assertion signed by the client's key instead of client_id: private_key_jwt)."
                )
            client_id, secret, method = post_id, post_secret, AUTH_CLIENT_SECRET_POST
        else:
            raise InvalidClientError(
                "Client authentication is required: use HTTP Basic (client_secret_basic), client_id and "
                "client_secret in the form (client_secret_post), or a client_assertion signed by the client's key "
                "(private_key_jwt)."
            )
        request.attempted_client_id = client_id
        if method not in methods:
            raise InvalidClientError(f"This endpoint does not accept {method}.", basic_used=basic)
        match = authenticate_client_secret(client_id, secret)
        if not isinstance(match, AuthenticatedSecret):
            raise InvalidClientError(secret_failure_description(match), basic_used=basic)
        request.auth_method = method
        return AuthenticatedClient(match, method)

    def _authenticate_with_assertion(self, request, methods, endpoint, assertion_type, client_assertion, post_id):
        """private_key_jwt (RFC 7523 §2.2 and §3, RFC 7521 §4.2): the client_assertion names the client
        (iss = sub = client_id) and is signed by one of its keys, pasted or at its key URL."""
        if not assertion_type:
            raise InvalidRequestError(f"client_assertion_type is missing: send {CLIENT_ASSERTION_TYPE_JWT_BEARER} "
                                      "with the client_assertion.")
        if not client_assertion:
            raise InvalidRequestError(
                "client_assertion is missing: send the signed JWT with the client_assertion_type."
            )
        if assertion_type != CLIENT_ASSERTION_TYPE_JWT_BEARER:
            raise InvalidClientError(
                f"The client_assertion_type is not supported: use {CLIENT_ASSERTION_TYPE_JWT_BEARER}."
            )
        services, caches = self.services, self.caches
        rules = client_assertion_rules(endpoint)
        jws = parse_assertion(client_assertion, services.settings, rules)
        issuer = jws.claims.get("iss")
        if not isinstance(issuer, str) or not issuer:
            raise InvalidClientError("The client_assertion lacks the required claim iss: the client_id.")
        if post_id is not None and post_id != issuer:
            raise InvalidRequestError("The client_id parameter names another client than the client_assertion's iss.")
        request.attempted_client_id = issuer
        if AUTH_PRIVATE_KEY_JWT not in methods:
            raise InvalidClientError(f"This endpoint does not accept {AUTH_PRIVATE_KEY_JWT}.")
        # A client id is 32 characters; anything else names no client (and never reaches the database).
        record = token_store.client_by_id(issuer) if len(issuer) <= 64 and issuer.isprintable() else None
        keys = caches.client_keys.keys_for(record.client_id, record.keys_version) if record else ClientKeySet({})
        verified = verify_assertion(jws, issuer, keys, services.settings, rules)
        if verified.subject != issuer:
            raise InvalidClientError("The client_assertion's sub must be the client_id, the same as its iss.")
        request.auth_method = AUTH_PRIVATE_KEY_JWT
        if endpoint == "token":
            # Used up in the token's own transaction, so a refused token request uses nothing up.
            return AuthenticatedClient(record, AUTH_PRIVATE_KEY_JWT, client_assertion=verified)
        try:
            services.issuance.use_client_assertion(record.client_id, verified.jti, verified.expires_at)
        except ClientAssertionReplayed:
            raise InvalidClientError(CLIENT_ASSERTION_REPLAYED) from None
        except ReplayCacheUnavailable:
            raise TemporarilyUnavailableError(
                description="The replay cache is unreachable; try again shortly."
            ) from None
        return AuthenticatedClient(record, AUTH_PRIVATE_KEY_JWT)
