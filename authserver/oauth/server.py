"""Authlib's AuthorizationServer, wired to authserver's stores and strict request handling."""
from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from functools import cached_property

from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.oauth2.rfc6749 import OAuth2Payload, OAuth2Request
from flask import Response
from flask import request as flask_request

from ..config import issuer_allows_plain_http
from ..services.app_services import AppServices
from .access import ClientAccessCache
from .assertions import ClientKeyCache
from .client_auth import SecretClientAuthentication
from .constants import GRANT_TYPE_JWT_BEARER
from .federation import TrustedIssuerCache
from .grants import ConfidentialJWTBearerGrant
from .introspection import AccessTokenIntrospection
from .revocation import AccessTokenRevocation


@dataclass(frozen=True)
class OAuthCaches:
    """Per-process caches of the OAuth endpoints that spare the hot path work: each client's parsed keys,
    each client's API access, each trusted issuer's keys and rules (all keyed on versions bumped in SQL)."""

    client_keys: ClientKeyCache
    client_access: ClientAccessCache
    trusted_issuers: TrustedIssuerCache


class FormPayload(OAuth2Payload):
    """OAuth parameters from the form body only: RFC 6749 §3.2 token requests are POSTed form bodies."""

    def __init__(self, request):
        self._request = request

    @property
    def data(self):
        return self._request.form

    @cached_property
    def datalist(self):
        values = defaultdict(list)
        for key in self._request.form:
            values[key].extend(self._request.form.getlist(key))
        return values


def secure_transport(request, issuer: str) -> bool:
    """RFC 6749 §3.2 (TLS): judged from the configured issuer, never from the Host header. Under an https
    issuer a request must have arrived over https (the scheme trusted proxies report); plain http is
    served only under an http issuer on a loopback address."""
    return request.scheme == "https" or issuer_allows_plain_http(issuer)


class FormOAuth2Request(OAuth2Request):
    def __init__(self, request, issuer: str):
        # OAuth2Request.__init__ rebuilds and re-parses the full URL on every request to apply its
        # transport rule; the views apply it from the configured issuer instead (secure_transport).
        self.method = request.method
        self.headers = request.headers
        self._body = None
        self.client = None
        self.auth_method = None
        self.user = None
        self.authorization_code = None
        self.refresh_token = None
        self.credential = None
        self._scope = None
        self._request = request
        self._issuer = issuer
        self.payload = FormPayload(request)
        self.scope = None

    @property
    def uri(self):
        return self._issuer + self._request.path  # the issuer's URL, never one built from the Host header

    @property
    def args(self):
        return self._request.args

    @property
    def remote_addr(self):
        return self._request.remote_addr

    @property
    def form(self):
        return self._request.form


class AuthServer(AuthorizationServer):
    def __init__(self, services: AppServices, caches: OAuthCaches):
        super().__init__()
        self.services = services
        self.caches = caches
        self._client_auth = SecretClientAuthentication(services, caches)
        self.register_grant(ConfidentialJWTBearerGrant)
        self.register_endpoint(AccessTokenIntrospection)
        self.register_endpoint(AccessTokenRevocation)

    def query_client(self, client_id):  # clients are found by their secret, see client_auth
        return None

    def save_token(self, token, request):  # tokens are stored by the grant, in its transaction
        return None

    def create_oauth2_request(self, request):
        return FormOAuth2Request(flask_request._get_current_object(), self.services.settings.issuer)

    def handle_response(self, status_code, payload, headers):
        if isinstance(payload, dict):
            payload = json.dumps(payload, separators=(", ", ": "))
        return Response(payload, status=status_code, headers=headers)

    def handle_error_response(self, request, error):
        self.services.metrics.oauth_error(getattr(error, "error", "unknown"))
        if not error.description and error.error == "unsupported_grant_type":
            # Authlib renders `description` only, and leaves this one empty (every error answer carries one).
            error.description = f"The grant_type is not supported: use {GRANT_TYPE_JWT_BEARER}."
        return super().handle_error_response(request, error)
