"""The JWT bearer grant (RFC 7523 §2.1) for confidential clients.

Authlib's JWTBearerGrant finds the client from the assertion's iss and does not authenticate it.
Here the client authenticates at the token endpoint first, and iss must then be that client."""
from __future__ import annotations

from authlib.oauth2.rfc7523 import JWTBearerGrant
from .. import store
from ..services.tokens import is_active_subject, mint_access_token, save_access_token
from .assertions import verify_assertion
from .constants import CLIENT_AUTH_METHODS, TOKEN_TYPE_BEARER
from .errors import InvalidGrantError, InvalidRequestError, InvalidScopeError, SlowDownError, TemporarilyUnavailableError
from .replay import AssertionReplayed, ReplayCacheUnavailable

REPLAYED = "The assertion was already used: each jti is accepted once."


class ConfidentialJWTBearerGrant(JWTBearerGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = CLIENT_AUTH_METHODS

    def validate_token_request(self):
        client = self.authenticate_token_endpoint_client()
        self.request.client = client
        form = self.request.form
        assertion = form.get("assertion")
        if not assertion:
            raise InvalidRequestError("The assertion parameter is missing.")
        runtime = self.server.runtime
        keys = runtime.client_keys.keys_for(client.client_id, client.keys_version)
        verified = verify_assertion(assertion, client.client_id, keys, runtime.settings)
        if not is_active_subject(client.org_id, verified.subject):
            raise InvalidGrantError(description="The assertion's sub is not an active account of the client's organization.")
        self.request.user = verified.subject
        self.request.credential = verified
        self.request.scope = self._resolve_scope(client, form.get("scope"))

    @staticmethod
    def _resolve_scope(client, requested: str | None) -> str:
        """RFC 6749 §3.3: requested scopes must all be allowed; none requested means the client's defaults."""
        allowed = client.scope.split()
        if requested is None or requested.strip() == "":
            return client.scope
        wanted = [s for s in requested.split(" ") if s]
        if not all(s in allowed for s in wanted):
            raise InvalidScopeError(description="The requested scope exceeds the scopes allowed for this client.")
        return " ".join(sorted(set(wanted)))

    def create_token_response(self):
        client = self.request.client
        verified = self.request.credential
        runtime = self.server.runtime
        # Everything slow (signing) happens before the write burst, so the write lock is held briefly.
        issued = mint_access_token(
            client_id=client.client_id,
            secret_id=client.secret_id,
            account_id=verified.subject,
            scope=self.request.scope,
            sign=runtime.keyring.sign,
        )
        with store.write_section():
            try:
                # One transaction: the rate-limit count, the jti and the token record commit together.
                decision = runtime.rate_limiter.hit("token:client:" + client.client_id,
                                                    runtime.settings.rate_limit_token_requests_per_client, commit=False)
                if not decision.allowed:
                    store.rollback()
                    raise SlowDownError("Too many token requests for this client; retry later.", decision.retry_after)
                runtime.replay.remember(client.client_id, verified.jti, verified.expires_at + runtime.settings.clock_skew)
                save_access_token(issued)
                store.commit()
            except AssertionReplayed:
                store.rollback()
                raise InvalidGrantError(description=REPLAYED) from None
            except ReplayCacheUnavailable:
                store.rollback()
                raise TemporarilyUnavailableError(description="The replay cache is unreachable; try again shortly.") from None
            except store.integrity_error():
                store.rollback()
                raise InvalidGrantError(description=REPLAYED) from None
        runtime.metrics.token_issued(client.auth_method)
        body = {
            "access_token": issued.access_token,
            "token_type": TOKEN_TYPE_BEARER,
            "expires_in": issued.expires_in,
            "scope": issued.scope,
        }
        return 200, body, self.TOKEN_RESPONSE_HEADER
