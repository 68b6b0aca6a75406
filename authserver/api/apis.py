"""/apis: the APIs (resource servers) an organization registers and the scopes they define; the
platform APIs open to it (read-only); the API's own clients; and /clients/{client_id}/grants, a
client's API access."""
from __future__ import annotations

from flask import url_for
from pydantic import Field, model_validator

from ..errors import InvalidInput
from ..models import Api, ApiScope, ClientGrant
from ..services import apis as api_service
from ..services.apis import IDENTIFIER_MAX, MAX_SCOPES_PER_API, SCOPE_DESCRIPTION_MAX
from ..services.common import NAME_MAX, SCOPE_TOKEN_MAX
from .auth import CallContext
from .routing import Reply, operation
from .schemas import QueryParameters, RequestBody, ResponseBody, Timestamp, optional, timestamp

TAG = "APIs"
GRANTS_TAG = "API access"
PLATFORM_OWNER = "platform"
SCOPE_NAME = (f"A scope-token of RFC 6749 §3.3: 1 to {SCOPE_TOKEN_MAX} printable ASCII characters without spaces, "
              "double quotes or backslashes.")


class ScopeIn(RequestBody):
    name: str = Field(description=SCOPE_NAME)
    description: str = optional(f"What the scope allows, one line of at most {SCOPE_DESCRIPTION_MAX} characters.")

    def definition(self) -> dict:
        return {"name": self.name, "description": self.description}


class ApiCreate(RequestBody):
    name: str = Field(description=f"1 to {NAME_MAX} characters.")
    identifier: str = Field(description=f"An absolute URI without fragment (RFC 8707 §2), at most {IDENTIFIER_MAX} "
                                        "characters, unique on this server, e.g. `https://api.example.com/orders`. "
                                        "It is the `resource` clients ask for and the `aud` of the tokens; it never "
                                        "changes.")
    scopes: list[ScopeIn] = optional(f"The scopes the API defines (at most {MAX_SCOPES_PER_API}).")


class ApiUpdate(RequestBody):
    name: str = optional(f"1 to {NAME_MAX} characters.")
    scopes: list[ScopeIn] = optional("The API's scopes, all of them: scopes left out are removed from the API and "
                                     "from every client's access; listed ones are added or get the new description.")

    @model_validator(mode="before")
    @classmethod
    def _identifier_is_immutable(cls, data):
        # A clearer answer than "extra inputs are not permitted": the identifier is the tokens' aud.
        if isinstance(data, dict) and "identifier" in data:
            raise InvalidInput("An API's identifier cannot change: it is the aud of its tokens, which resource servers "
                               "check. Register a new API for a new identifier.", field="identifier")
        return data


class ScopeOut(ResponseBody):
    name: str
    description: str

    @classmethod
    def of(cls, row: ApiScope) -> ScopeOut:
        return cls(name=row.name, description=row.description or "")


class ApiOut(ResponseBody):
    api_id: str
    name: str
    identifier: str = Field(description="The `resource` to ask for at the token endpoint, and the tokens' `aud`.")
    owner: str = Field(description=f"The owning organization's id, or `{PLATFORM_OWNER}` for an API of the platform "
                                   "that its operator opened to this organization.")
    editable: bool = Field(description="Whether this organization may change the API (its own APIs only).")
    scopes: list[ScopeOut]
    clients: list[str] = Field(description="The API's own clients (client ids): they introspect its tokens. Always "
                                           "empty for platform APIs.")
    created_at: Timestamp
    updated_at: Timestamp

    @classmethod
    def of(cls, api: Api, org_id: str) -> ApiOut:
        editable = api.org_id == org_id
        return cls(
            api_id=api.api_id, name=api.name, identifier=api.identifier,
            owner=api.org_id if api.org_id is not None else PLATFORM_OWNER, editable=editable,
            scopes=[ScopeOut.of(s) for s in api_service.scopes_of(api)],
            clients=api_service.bound_clients(api) if editable else [],
            created_at=timestamp(api.created_at), updated_at=timestamp(api.updated_at),
        )


class ApiList(ResponseBody):
    items: list[ApiOut]


class ApiDeletion(QueryParameters):
    force: bool = Field(default=False, description="true: delete the API even while clients hold access to it; "
                                                   "their access goes with it.")


class GrantPut(RequestBody):
    scope: str | list[str] = Field(description="The scopes the client may ask for: space-delimited (RFC 6749 §3.3) or "
                                               "a list of names, each defined by the API. Replaces the earlier ones; "
                                               "empty for none.")
    default: bool = optional("true: this becomes the client's default API (tokens requested without `resource`); "
                             "false: it is not. Absent: unchanged, and the default when the client has none yet.")


class GrantOut(ResponseBody):
    api_id: str
    identifier: str = Field(description="The API's identifier: the `resource` to ask for.")
    name: str = Field(description="The API's name.")
    scope: str = Field(description="The granted scopes, space-delimited and sorted.")
    default: bool = Field(description="Whether this is the client's default API.")

    @classmethod
    def of(cls, grant: ClientGrant, api: Api) -> GrantOut:
        return cls(api_id=api.api_id, identifier=api.identifier, name=api.name, scope=grant.scope,
                   default=bool(grant.is_default))


class GrantList(ResponseBody):
    items: list[GrantOut]


# --- APIs -------------------------------------------------------------------------------------

@operation("GET", "/apis", summary="List the organization's APIs and the platform APIs open to it", tag=TAG,
           responses={200: ApiList},
           description="Platform APIs first (read-only: `editable` is false), then the organization's own.")
def list_apis(ctx: CallContext):
    return ApiList(items=[ApiOut.of(a, ctx.org_id) for a in api_service.list_apis(ctx.org_id)])


@operation("POST", "/apis", summary="Register an API", tag=TAG, body=ApiCreate, responses={201: ApiOut}, errors=(409,),
           response_headers={201: {"Location": "The new API's URL."}},
           description="Only this organization's clients can get tokens for it, once given access "
                       "(PUT /clients/{client_id}/grants/{api_id}). An identifier already used on this server is 409.")
def create_api(ctx: CallContext, body: ApiCreate):
    api = api_service.create_api(
        body.name, body.identifier, org_id=ctx.org_id,
        scopes=[s.definition() for s in body.scopes] if body.scopes is not None else None, actor=ctx.actor,
    )
    return Reply(ApiOut.of(api, ctx.org_id), headers={"Location": url_for("api_v1.get_api", api_id=api.api_id)})


@operation("GET", "/apis/{api_id}", summary="Show an API", tag=TAG, responses={200: ApiOut})
def get_api(ctx: CallContext, api_id: str):
    return ApiOut.of(api_service.get_api(api_id, ctx.org_id), ctx.org_id)


@operation("PATCH", "/apis/{api_id}", summary="Rename an API or replace its scopes", tag=TAG, body=ApiUpdate,
           responses={200: ApiOut},
           description="Members left out stay as they are. The identifier never changes (sending it is 400). "
                       "Platform APIs are read-only (403).")
def update_api(ctx: CallContext, api_id: str, body: ApiUpdate):
    changes: dict = {}
    if "name" in body.model_fields_set:
        changes["name"] = body.name
    if "scopes" in body.model_fields_set:
        changes["scopes"] = [s.definition() for s in body.scopes]
    api = api_service.update_api(api_id, ctx.org_id, actor=ctx.actor, **changes)
    return ApiOut.of(api, ctx.org_id)


@operation("DELETE", "/apis/{api_id}", summary="Delete an API", tag=TAG, query=ApiDeletion, responses={204: None},
           errors=(409,),
           description="Refused (409) while clients hold access to it, unless `force=true`: then their access goes "
                       "too. Its live access tokens are revoked either way.")
def delete_api(ctx: CallContext, api_id: str, query: ApiDeletion):
    api_service.delete_api(api_id, ctx.org_id, force=query.force, actor=ctx.actor)


@operation("POST", "/apis/{api_id}/scopes", summary="Add a scope to an API", tag=TAG, body=ScopeIn,
           responses={201: ScopeOut}, errors=(409,),
           description="A scope the API already defines is 409.")
def add_api_scope(ctx: CallContext, api_id: str, body: ScopeIn):
    return ScopeOut.of(api_service.add_scope(api_id, body.name, body.description, org_id=ctx.org_id, actor=ctx.actor))


@operation("DELETE", "/apis/{api_id}/scopes/{name}", summary="Remove a scope from an API", tag=TAG,
           responses={204: None}, converters={"name": "path"},
           description="The scope also goes from every client's access to the API; tokens already issued keep it "
                       "until they expire.")
def remove_api_scope(ctx: CallContext, api_id: str, name: str):
    api_service.remove_scope(api_id, name, org_id=ctx.org_id, actor=ctx.actor)


@operation("PUT", "/apis/{api_id}/clients/{client_id}", summary="Make a client one of the API's own clients", tag=TAG,
           responses={204: None},
           description="The API's own client introspects the tokens issued for the API (and sees only those as "
                       "active). Both must belong to this organization. No request body.")
def bind_api_client(ctx: CallContext, api_id: str, client_id: str):
    api_service.bind_client(api_id, client_id, org_id=ctx.org_id, actor=ctx.actor)


@operation("DELETE", "/apis/{api_id}/clients/{client_id}", summary="Stop a client being one of the API's own clients",
           tag=TAG, responses={204: None})
def unbind_api_client(ctx: CallContext, api_id: str, client_id: str):
    api_service.unbind_client(api_id, client_id, org_id=ctx.org_id, actor=ctx.actor)


# --- API access -------------------------------------------------------------------------------

@operation("GET", "/clients/{client_id}/grants", summary="List a client's API access", tag=GRANTS_TAG,
           responses={200: GrantList}, description="The default API first.")
def list_grants(ctx: CallContext, client_id: str):
    return GrantList(items=[GrantOut.of(g, a) for g, a in api_service.list_grants(client_id, ctx.org_id)])


@operation("PUT", "/clients/{client_id}/grants/{api_id}", summary="Give a client access to an API", tag=GRANTS_TAG,
           body=GrantPut, responses={200: GrantOut}, errors=(409,),
           description="Creates the access or replaces its scopes. The API is one of the organization's own or a "
                       "platform API open to it; a scope it does not define is 400.")
def put_grant(ctx: CallContext, client_id: str, api_id: str, body: GrantPut):
    grant = api_service.grant_client(client_id, api_id, body.scope, default=body.default, org_id=ctx.org_id,
                                     actor=ctx.actor)
    return GrantOut.of(grant, api_service.get_api(grant.api_id, ctx.org_id))


@operation("DELETE", "/clients/{client_id}/grants/{api_id}", summary="Remove a client's access to an API",
           tag=GRANTS_TAG, responses={204: None},
           description="The client gets no new tokens for the API; tokens already issued stay valid until they expire.")
def delete_grant(ctx: CallContext, client_id: str, api_id: str):
    api_service.ungrant_client(client_id, api_id, org_id=ctx.org_id, actor=ctx.actor)
