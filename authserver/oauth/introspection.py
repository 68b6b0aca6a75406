"""Token introspection (RFC 7662)."""
from __future__ import annotations

from authlib.oauth2.rfc7662 import IntrospectionEndpoint

from ..access_tokens import decode_access_token
from ..services.tokens import active_token_record
from .constants import CLIENT_AUTH_METHODS, TOKEN_TYPE_BEARER
from .errors import InvalidRequestError


class AccessTokenIntrospection(IntrospectionEndpoint):
    CLIENT_AUTH_METHODS = CLIENT_AUTH_METHODS

    def check_params(self, request, client):
        # token_type_hint is only a hint (RFC 7662 §2.1): unknown values are ignored, not refused.
        if not request.form.get("token"):
            raise InvalidRequestError("The token parameter is missing.")

    def query_token(self, token_string, token_type_hint):
        services = self.server.services
        claims = decode_access_token(token_string, services.keyring, services.settings.issuer)
        return active_token_record(claims) if claims is not None else None

    def check_permission(self, token, client, request):
        """A client sees the tokens issued to itself; an API's own client sees the tokens whose
        aud is its API (an organization's API: only that organization's tokens). Anything else is
        answered like an unknown token (RFC 7662 §2.2), so nothing is learnt about it."""
        if token.client_id == client.client_id:
            return True
        access = self.server.caches.client_access.access_for(client.client_id, client.org_id, client.access_version)
        return any(api.identifier == token.audience and (api.org_id is None or api.org_id == token.org_id)
                   for api in access.introspects)

    def introspect_token(self, token):
        return {
            "active": True,
            "scope": token.scope,
            "client_id": token.client_id,
            "sub": token.account_id,
            "org_id": token.org_id,
            "exp": token.expires_at,
            "iat": token.issued_at,
            "iss": self.server.services.settings.issuer,
            "aud": token.audience,
            "jti": token.jti,
            "token_type": TOKEN_TYPE_BEARER,
        }

    def create_introspection_payload(self, token):
        if token is None:
            return {"active": False}
        return self.introspect_token(token)
