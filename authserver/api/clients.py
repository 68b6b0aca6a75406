"""/clients: the organization's client applications."""
from __future__ import annotations

from flask import url_for
from pydantic import Field

from ..models import Client
from ..services import clients as client_service
from ..services.common import DESCRIPTION_MAX, NAME_MAX
from .auth import CallContext
from .routing import Reply, operation
from .schemas import RequestBody, ResponseBody, Timestamp, optional, timestamp

TAG = "Clients"


class ClientCreate(RequestBody):
    name: str = Field(description=f"1 to {NAME_MAX} characters.")
    description: str = optional(f"At most {DESCRIPTION_MAX} characters.")
    client_type: str = optional("Only `confidential` is accepted: public clients are refused.")
    token_endpoint_auth_method: str = optional(
        "`client_secret_basic` or `client_secret_post` (RFC 7591 §2); `none` (a public client) is refused.")


class ClientUpdate(RequestBody):
    name: str = optional(f"1 to {NAME_MAX} characters.")
    description: str = optional(f"At most {DESCRIPTION_MAX} characters; empty to clear.")


class ClientOut(ResponseBody):
    client_id: str = Field(description="32 lowercase hex characters; not a secret.")
    name: str
    description: str
    client_type: str = Field(description="Always `confidential`.")
    icon_url: str | None = Field(description="Where the icon is served, or null when the client has none.")
    created_at: Timestamp
    updated_at: Timestamp

    @classmethod
    def of(cls, client: Client) -> ClientOut:
        return cls(
            client_id=client.client_id, name=client.name, description=client.description,
            client_type=client_service.CONFIDENTIAL,
            icon_url=url_for("api_v1.get_client_icon", client_id=client.client_id) if client.icon is not None else None,
            created_at=timestamp(client.created_at), updated_at=timestamp(client.updated_at),
        )


class ClientList(ResponseBody):
    items: list[ClientOut]


@operation("GET", "/clients", summary="List the organization's client applications", tag=TAG,
           responses={200: ClientList})
def list_clients(ctx: CallContext):
    return ClientList(items=[ClientOut.of(c) for c in client_service.list_clients(ctx.org_id)])


@operation("POST", "/clients", summary="Register a client application", tag=TAG, body=ClientCreate,
           responses={201: ClientOut}, response_headers={201: {"Location": "The new client's URL."}},
           description="Every client is confidential. Add a secret and a key next, and API access (.../grants); "
                       "set the icon with PUT .../icon.")
def create_client(ctx: CallContext, body: ClientCreate):
    client = client_service.register_client(
        ctx.org_id, body.name, description=body.description, client_type=body.client_type,
        token_endpoint_auth_method=body.token_endpoint_auth_method, actor=ctx.actor,
    )
    location = url_for("api_v1.get_client", client_id=client.client_id)
    return Reply(ClientOut.of(client), headers={"Location": location})


@operation("GET", "/clients/{client_id}", summary="Show a client application", tag=TAG, responses={200: ClientOut})
def get_client(ctx: CallContext, client_id: str):
    return ClientOut.of(client_service.get_client(client_id, ctx.org_id))


@operation("PATCH", "/clients/{client_id}", summary="Change a client's name or description", tag=TAG,
           body=ClientUpdate, responses={200: ClientOut},
           description="Members left out stay as they are. The icon has its own resource.")
def update_client(ctx: CallContext, client_id: str, body: ClientUpdate):
    changes = {name: getattr(body, name) for name in body.model_fields_set}
    client = client_service.update_client(client_id, ctx.org_id, actor=ctx.actor, **changes)
    return ClientOut.of(client)


@operation("DELETE", "/clients/{client_id}", summary="Delete a client application", tag=TAG, responses={204: None},
           description="Its secrets and keys go with it, and its access tokens become inactive at once.")
def delete_client(ctx: CallContext, client_id: str):
    client_service.delete_client(client_id, ctx.org_id, actor=ctx.actor)
