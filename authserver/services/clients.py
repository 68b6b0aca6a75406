"""Client applications. Every client is confidential: public clients are refused here, once."""
from __future__ import annotations

import secrets

from sqlalchemy import delete, select

from .. import clock
from ..errors import InvalidInput, NotFound, PublicClientRefused
from ..extensions import db
from ..models import AccessToken, ApiClient, Client, ClientGrant, ClientKey, ClientSecret
from .audit import record_event
from .common import CLI_ACTOR, Actor, clean_description, clean_name, is_identifier, transactional
from .icons import ICON_CONTENT_TYPE, normalise_icon
from .organizations import get_organization

CONFIDENTIAL = "confidential"
# Token endpoint auth methods a client may be registered with (RFC 7591 §2); "none" is a public client.
CONFIDENTIAL_AUTH_METHODS = ("client_secret_basic", "client_secret_post")


def generate_client_id() -> str:
    return secrets.token_hex(16)


def refuse_public_client(client_type: str | None, token_endpoint_auth_method: str | None) -> None:
    """authserver serves confidential clients only (RFC 6749 §2.1)."""
    if client_type not in (None, CONFIDENTIAL) or token_endpoint_auth_method == "none":
        raise PublicClientRefused(
            "Public clients are not supported: every client must authenticate with a client secret.",
            field="client_type",
        )
    if token_endpoint_auth_method not in (None, *CONFIDENTIAL_AUTH_METHODS):
        raise InvalidInput(
            "token_endpoint_auth_method must be client_secret_basic or client_secret_post.",
            field="token_endpoint_auth_method",
        )


@transactional
def register_client(
    org_id: str,
    name: str,
    *,
    description: str | None = None,
    icon: bytes | None = None,
    client_type: str | None = None,
    token_endpoint_auth_method: str | None = None,
    actor: Actor = CLI_ACTOR,
) -> Client:
    refuse_public_client(client_type, token_endpoint_auth_method)
    get_organization(org_id)
    now = clock.now()
    client = Client(
        client_id=generate_client_id(),
        org_id=org_id,
        name=clean_name(name),
        description=clean_description(description),
        icon=normalise_icon(icon) if icon is not None else None,
        icon_content_type=ICON_CONTENT_TYPE if icon is not None else None,
        keys_version=0,
        access_version=0,
        created_at=now,
        updated_at=now,
    )
    db.session.add(client)
    record_event(
        actor, org_id, "client.created", "client", client.client_id,
        name=client.name,
    )
    return client


def get_client(client_id: object, org_id: str | None = None) -> Client:
    client = db.session.get(Client, client_id) if is_identifier(client_id) else None
    if client is None or (org_id is not None and client.org_id != org_id):
        raise NotFound("Client not found.")
    return client


def list_clients(org_id: str) -> list[Client]:
    return list(
        db.session.scalars(select(Client).where(Client.org_id == org_id).order_by(Client.created_at, Client.client_id))
    )


_UNSET = object()


@transactional
def update_client(
    client_id: str,
    org_id: str | None = None,
    *,
    name: object = _UNSET,
    description: object = _UNSET,
    icon: bytes | None | object = _UNSET,
    actor: Actor = CLI_ACTOR,
) -> Client:
    """Change name, description or icon (bytes, or None to remove). API access has its own service (apis)."""
    client = get_client(client_id, org_id)
    changed = []
    if name is not _UNSET:
        client.name = clean_name(name)
        changed.append("name")
    if description is not _UNSET:
        client.description = clean_description(description)
        changed.append("description")
    if icon is not _UNSET:
        if icon is not None and not isinstance(icon, bytes):
            raise InvalidInput("The icon must be the bytes of an image file.", field="icon")
        client.icon = normalise_icon(icon) if icon is not None else None
        client.icon_content_type = ICON_CONTENT_TYPE if icon is not None else None
        changed.append("icon")
    if changed:
        client.updated_at = clock.now()
        record_event(actor, client.org_id, "client.updated", "client", client.client_id, fields=changed)
    return client


@transactional
def delete_client(client_id: str, org_id: str | None = None, actor: Actor = CLI_ACTOR) -> None:
    """Delete a client with its secrets, keys and API access; its tokens become inactive at once."""
    client = get_client(client_id, org_id)
    for model in (AccessToken, ClientSecret, ClientKey, ClientGrant, ApiClient):
        db.session.execute(delete(model).where(model.client_id == client.client_id))
    record_event(actor, client.org_id, "client.deleted", "client", client.client_id, name=client.name)
    db.session.delete(client)
