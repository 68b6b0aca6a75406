"""The JWT bearer grant (RFC 7523 §2.1) for confidential clients.

Authlib's JWTBearerGrant finds the client from the assertion's iss and does not authenticate it.
Here the client authenticates at the token endpoint first, and iss must then be that client."""
from __future__ import annotations

from dataclasses import replace

from authlib.oauth2.rfc7523 import JWTBearerGrant
from flask import g

from ..services.apis import is_valid_identifier
from ..services.common import parse_scope_parameter
from ..services.token_issuance import (
    AssertionReplayed,
    ClientAssertionReplayed,
    DeadlinePassed,
    ReplayCacheUnavailable,
    TokenOrder,
    TokenRateLimited,
    is_active_subject,
)
from .access import ApiAccess, ClientAccess
from .assertions import parse_assertion, verify_assertion
from .client_auth import CLIENT_ASSERTION_REPLAYED, counted_failure
from .constants import CLIENT_AUTH_METHODS, PARAM_RESOURCE, PARAM_SCOPE, TOKEN_TYPE_BEARER
from .errors import (
    InvalidClientError,
    InvalidGrantError,
    InvalidRequestError,
    InvalidScopeError,
    InvalidTargetError,
    SlowDownError,
    TemporarilyUnavailableError,
)
from .federation import MAPPED_ACCOUNT_INACTIVE, FederatedAssertion, names_external_issuer, rule_resource, rule_scope

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
        services, caches = self.server.services, self.server.caches
        jws = parse_assertion(assertion, services.settings)
        iss = jws.claims.get("iss")
        federated = None
        if iss != client.client_id and names_external_issuer(iss):  # decided before any database work
            federated = caches.trusted_issuers.verify(jws, client.client_id, client.org_id, services.settings)
            verified = federated
            if not is_active_subject(client.org_id, verified.subject):
                raise InvalidGrantError(description=MAPPED_ACCOUNT_INACTIVE)
        else:
            keys = caches.client_keys.keys_for(client.client_id, client.keys_version)
            verified = verify_assertion(jws, client.client_id, keys, services.settings)
            if not is_active_subject(client.org_id, verified.subject):
                raise InvalidGrantError(
                    description="The assertion's sub is not an active account of the client's organization."
                )
        access = caches.client_access.access_for(client.client_id, client.org_id, client.access_version)
        resource, scope = form.get(PARAM_RESOURCE), form.get(PARAM_SCOPE)
        if federated is not None:
            resource = rule_resource(federated, resource)
        api = self._resolve_resource(access, resource)
        granted = self._resolve_scope(api, scope)
        if federated is not None:
            granted = rule_scope(federated, api, granted, requested=bool(scope))
        self.request.user = verified.subject
        self.request.credential = verified
        self.request.api = api
        self.request.scope = granted

    @staticmethod
    def _resolve_resource(access: ClientAccess, resource: str | None) -> ApiAccess:
        """RFC 8707 §2: the API the token is for; none given means the client's default API. Parameters
        sent without a value count as omitted (RFC 6749 §3.1)."""
        if not resource:
            if access.default is None:
                raise InvalidTargetError("No resource was given and this client has no default API: "
                                         "send resource=<API identifier>.")
            return access.default
        if not is_valid_identifier(resource):
            raise InvalidTargetError("The resource must be an absolute URI without a fragment (RFC 8707 section 2).")
        api = access.apis.get(resource)
        if api is None:
            # Unknown and not granted answer alike: another organization's APIs are not disclosed.
            raise InvalidTargetError("The resource is not an API this client has been given access to.")
        return api

    @staticmethod
    def _resolve_scope(api: ApiAccess, requested: str | None) -> str:
        """RFC 6749 §3.3: every requested scope must be granted for this API; none requested means all
        the scopes granted for it."""
        if not requested:
            return api.scope
        wanted = parse_scope_parameter(requested)
        if wanted is None:
            raise InvalidScopeError(description=(
                "The scope parameter must be scope tokens separated by single spaces: printable ASCII "
                "without double quotes or backslashes (RFC 6749 section 3.3)."))
        if not api.scopes.issuperset(wanted):
            raise InvalidScopeError(description=f"The requested scope exceeds the scopes granted to this client "
                                                f"for {api.identifier}.")
        return " ".join(sorted(set(wanted)))

    def create_token_response(self):
        client = self.request.client
        verified = self.request.credential
        services = self.server.services
        order = TokenOrder(
            client_id=client.client_id, org_id=client.org_id, secret_id=client.secret_id,
            account_id=verified.subject, audience=self.request.api.identifier, scope=self.request.scope,
            jti=verified.jti, assertion_expires_at=verified.expires_at,
            issuer_id=verified.issuer_id if isinstance(verified, FederatedAssertion) else None,
        )
        if client.client_assertion is not None:  # private_key_jwt: its jti is used up with the token
            order = replace(order, client_assertion_jti=client.client_assertion.jti,
                            client_assertion_expires_at=client.client_assertion.expires_at)
        try:
            issued = services.issuance.issue(order, started=getattr(g, "started", None))
        except TokenRateLimited as exc:
            raise SlowDownError("Too many token requests for this client; retry later.", exc.retry_after) from None
        except ClientAssertionReplayed as exc:
            # Client authentication failed after all: counted like any other failure.
            slow_down = counted_failure(services, self.request)
            if slow_down is not None:
                raise slow_down from None
            description = CLIENT_ASSERTION_REPLAYED
            if exc.in_progress_for:
                description += (
                    " It is in use by another request that has not finished; if that request failed, "
                    f"it can be sent again in {exc.in_progress_for} s."
                )
            raise InvalidClientError(description) from None
        except AssertionReplayed as exc:
            if exc.in_progress_for:
                raise InvalidGrantError(
                    description=(
                        "The assertion is in use by another request that has not finished; each jti is accepted "
                        f"once. If that request failed, this assertion can be sent again in {exc.in_progress_for} s."
                    )
                ) from None
            raise InvalidGrantError(description=REPLAYED) from None
        except ReplayCacheUnavailable:
            raise TemporarilyUnavailableError(
                description="The replay cache is unreachable; try again shortly."
            ) from None
        except DeadlinePassed:
            # The client has most likely given up (a slow or hung database): nothing was stored.
            raise TemporarilyUnavailableError(
                description="The request took too long and was rolled back; send it again."
            ) from None
        services.metrics.token_issued(client.auth_method)
        body = {
            "access_token": issued.access_token,
            "token_type": TOKEN_TYPE_BEARER,
            "expires_in": issued.expires_in,
            "scope": issued.scope,
        }
        return 200, body, self.TOKEN_RESPONSE_HEADER
