"""/issuers: trusted issuers (workload identity federation, SPEC §10), their rules that map assertions
to accounts, and the clients allowed to present their assertions."""
from __future__ import annotations

from typing import Any

from flask import url_for
from pydantic import Field

from ..models import TrustedIssuer, TrustedIssuerRule
from ..services import trusted_issuers as issuer_service
from ..services.trusted_issuers import (
    AUDIENCE_MAX,
    CLAIM_NAME_MAX,
    CLAIM_VALUE_MAX,
    ISSUER_URL_MAX,
    MAX_CONDITIONS_PER_RULE,
)
from .auth import CallContext
from .routing import Reply, operation
from .schemas import RequestBody, ResponseBody, Timestamp, optional, timestamp

TAG = "Trusted issuers"


class IssuerCreate(RequestBody):
    issuer_url: str = Field(description=f"The issuer identifier its tokens carry in `iss`, compared exactly: an https "
                                        f"URL without query or fragment, at most {ISSUER_URL_MAX} characters.")
    audience: str = Field(description=f"The value its tokens must carry in `aud` (at most {AUDIENCE_MAX} "
                                      "characters): the audience configured at the issuer for this server.")
    jwks_uri: str = optional("The https URL of the issuer's JWK Set. Without it and without `jwks`, the keys are "
                             "found by OpenID Connect discovery at the issuer URL. Fetched now: refused (400) unless "
                             "it yields a usable signing key.")
    jwks: dict[str, Any] = optional("A JWK Set (RFC 7517 §5) of the issuer's public keys, for an issuer that "
                                    "publishes none; private members are refused.")


class IssuerKeysOut(ResponseBody):
    source: str = Field(description="Where the keys come from: `discovery`, `jwks_uri` or `jwks` (pasted).")
    jwks_uri: str | None = Field(description="The URL of the JWK Set (found by discovery when that is the source).")
    key_ids: list[str] = Field(description="The kids of the usable signing keys last fetched (or pasted).")
    last_fetch_at: Timestamp | None = Field(description="When they were fetched; null: never, or pasted.")
    last_error: str | None = Field(description="Why the newest fetch failed; the keys fetched before keep verifying.")


class IssuerOut(ResponseBody):
    issuer_id: str
    issuer_url: str
    audience: str
    keys_from: str = Field(description="`discovery`, `jwks_uri` or `jwks` (pasted).")
    jwks_uri: str | None = Field(description="The registered JWK Set URL; null with discovery or pasted keys.")
    created_at: Timestamp
    updated_at: Timestamp

    @classmethod
    def of(cls, row: TrustedIssuer) -> IssuerOut:
        return cls(issuer_id=row.issuer_id, issuer_url=row.issuer_url, audience=row.audience,
                   keys_from=issuer_service.key_source(row), jwks_uri=row.jwks_uri,
                   created_at=timestamp(row.created_at), updated_at=timestamp(row.updated_at))


class RuleIn(RequestBody):
    account_id: str = Field(description="The account of the issuer's organization the rule maps to (the tokens' sub).")
    claims: dict[str, str] = Field(description=(
        f"Claim name to the exact value it must have; all must match (1 to {MAX_CONDITIONS_PER_RULE} conditions, "
        f"names of at most {CLAIM_NAME_MAX} and values of at most {CLAIM_VALUE_MAX} characters). A boolean or "
        "integer claim matches the text of its JSON form, e.g. `true`."))
    scope: str = optional("At most these scopes, space-delimited; without it the client's grant decides.")
    resource: str = optional("Only tokens for this API identifier; without it any API the client may use.")


class RuleOut(ResponseBody):
    rule_id: str
    position: int = Field(description="Rules are tried in ascending position; the first match wins.")
    account_id: str
    claims: dict[str, str]
    scope: str | None
    resource: str | None
    created_at: Timestamp

    @classmethod
    def of(cls, row: TrustedIssuerRule) -> RuleOut:
        return cls(rule_id=row.rule_id, position=row.position, account_id=row.account_id,
                   claims=issuer_service.rule_conditions(row), scope=row.scope, resource=row.resource,
                   created_at=timestamp(row.created_at))


class RuleList(ResponseBody):
    items: list[RuleOut]


class AllowedClientIn(RequestBody):
    client_id: str = Field(description="A client of the issuer's organization.")


class AllowedClientOut(ResponseBody):
    client_id: str
    name: str


class AllowedClientList(ResponseBody):
    items: list[AllowedClientOut]


class IssuerDetail(IssuerOut):
    keys: IssuerKeysOut
    rules: list[RuleOut] = Field(description="In the order they are tried.")
    clients: list[AllowedClientOut] = Field(description="The clients allowed to present the issuer's assertions.")


class IssuerList(ResponseBody):
    items: list[IssuerOut]


def _detail(ctx: CallContext, row: TrustedIssuer) -> IssuerDetail:
    status = issuer_service.keys_status(row)
    keys = IssuerKeysOut(source=status.source, jwks_uri=status.jwks_uri, key_ids=list(status.key_ids),
                         last_fetch_at=timestamp(status.last_fetch_at), last_error=status.last_error)
    rules = [RuleOut.of(r) for r in issuer_service.list_rules(row.issuer_id, ctx.org_id)]
    clients = [AllowedClientOut(client_id=c.client_id, name=c.name)
               for c in issuer_service.allowed_clients(row.issuer_id, ctx.org_id)]
    return IssuerDetail(**IssuerOut.of(row).model_dump(), keys=keys, rules=rules, clients=clients)


@operation("GET", "/issuers", summary="List trusted issuers", tag=TAG, responses={200: IssuerList})
def list_issuers(ctx: CallContext):
    return IssuerList(items=[IssuerOut.of(i) for i in issuer_service.list_issuers(ctx.org_id)])


@operation("POST", "/issuers", summary="Trust an issuer", tag=TAG, body=IssuerCreate, responses={201: IssuerDetail},
           errors=(409,), response_headers={201: {"Location": "The new issuer's URL."}},
           description="Its JWTs become usable as JWT bearer grant assertions once a rule maps them to an account "
                       "and a client is allowed to present them. 409 when the organization already trusts this URL.")
def create_issuer(ctx: CallContext, body: IssuerCreate):
    row = issuer_service.add_issuer(ctx.org_id, body.issuer_url, body.audience, jwks_uri=body.jwks_uri,
                                    jwks=body.jwks, actor=ctx.actor)
    return Reply(_detail(ctx, row), headers={"Location": url_for("api_v1.get_issuer", issuer_id=row.issuer_id)})


@operation("GET", "/issuers/{issuer_id}", summary="Show a trusted issuer with its keys, rules and clients", tag=TAG,
           responses={200: IssuerDetail})
def get_issuer(ctx: CallContext, issuer_id: str):
    return _detail(ctx, issuer_service.get_issuer(issuer_id, ctx.org_id))


@operation("DELETE", "/issuers/{issuer_id}", summary="Delete a trusted issuer", tag=TAG, responses={204: None},
           description="Its rules and allowed clients go with it; its assertions are refused from the next request "
                       "on. Tokens it already obtained stay valid until they expire or are revoked.")
def delete_issuer(ctx: CallContext, issuer_id: str):
    issuer_service.delete_issuer(issuer_id, ctx.org_id, actor=ctx.actor)


@operation("GET", "/issuers/{issuer_id}/rules", summary="List an issuer's rules in order", tag=TAG,
           responses={200: RuleList})
def list_rules(ctx: CallContext, issuer_id: str):
    return RuleList(items=[RuleOut.of(r) for r in issuer_service.list_rules(issuer_id, ctx.org_id)])


@operation("POST", "/issuers/{issuer_id}/rules", summary="Add a rule after the issuer's others", tag=TAG,
           body=RuleIn, responses={201: RuleOut}, errors=(409,),
           description="404 when the account is not one of the issuer's organization.")
def create_rule(ctx: CallContext, issuer_id: str, body: RuleIn):
    row = issuer_service.add_rule(issuer_id, body.account_id, body.claims, scope=body.scope, resource=body.resource,
                                  org_id=ctx.org_id, actor=ctx.actor)
    return Reply(RuleOut.of(row))


@operation("DELETE", "/issuers/{issuer_id}/rules/{rule_id}", summary="Delete a rule", tag=TAG,
           responses={204: None})
def delete_rule(ctx: CallContext, issuer_id: str, rule_id: str):
    issuer_service.delete_rule(issuer_id, rule_id, ctx.org_id, actor=ctx.actor)


@operation("GET", "/issuers/{issuer_id}/clients", summary="List the clients allowed to present an issuer's assertions",
           tag=TAG, responses={200: AllowedClientList})
def list_allowed_clients(ctx: CallContext, issuer_id: str):
    return AllowedClientList(items=[AllowedClientOut(client_id=c.client_id, name=c.name)
                                    for c in issuer_service.allowed_clients(issuer_id, ctx.org_id)])


@operation("POST", "/issuers/{issuer_id}/clients", summary="Allow a client to present an issuer's assertions", tag=TAG,
           body=AllowedClientIn, responses={201: AllowedClientOut}, errors=(409,),
           description="404 when the client is not one of the issuer's organization; 409 when already allowed.")
def allow_client(ctx: CallContext, issuer_id: str, body: AllowedClientIn):
    client = issuer_service.allow_client(issuer_id, body.client_id, ctx.org_id, actor=ctx.actor)
    return Reply(AllowedClientOut(client_id=client.client_id, name=client.name))


@operation("DELETE", "/issuers/{issuer_id}/clients/{client_id}", summary="Stop a client presenting an issuer's "
           "assertions", tag=TAG, responses={204: None})
def disallow_client(ctx: CallContext, issuer_id: str, client_id: str):
    issuer_service.disallow_client(issuer_id, client_id, ctx.org_id, actor=ctx.actor)
