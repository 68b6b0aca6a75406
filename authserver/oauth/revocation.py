"""Token revocation (RFC 7009)."""
from __future__ import annotations

from authlib.oauth2.rfc7009 import RevocationEndpoint

from ..access_tokens import decode_access_token
from ..services.tokens import find_token_record, revoke_token
from .constants import CLIENT_AUTH_METHODS
from .errors import InvalidGrantError, InvalidRequestError


class _Revocable:
    def __init__(self, record):
        self.record = record

    def check_client(self, client):
        return self.record.client_id == client.client_id


class AccessTokenRevocation(RevocationEndpoint):
    CLIENT_AUTH_METHODS = CLIENT_AUTH_METHODS

    def check_params(self, request, client):
        # RFC 7009 §2.1: the hint is optional and may be ignored; only the token is required.
        if not request.form.get("token"):
            raise InvalidRequestError("The token parameter is missing.")

    def authenticate_token(self, request, client):
        self.check_params(request, client)
        token = self.query_token(request.form["token"], request.form.get("token_type_hint"))
        if token is not None and not token.check_client(client):
            # RFC 6749 §5.2 invalid_grant: "... was issued to another client".
            raise InvalidGrantError(description="The token was not issued to this client.")
        return token

    def query_token(self, token_string, token_type_hint):
        services = self.server.services
        claims = decode_access_token(token_string, services.keyring, services.settings.issuer)
        if claims is None:
            return None  # unknown, malformed or expired: 200 per RFC 7009 §2.2
        record = find_token_record(claims["jti"])
        return _Revocable(record) if record is not None else None

    def revoke_token(self, token, request):
        revoke_token(token.record.jti)
