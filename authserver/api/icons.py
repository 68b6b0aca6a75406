"""/clients/{client_id}/icon: a client's icon, verified and re-encoded as PNG by the service."""
from __future__ import annotations

from flask import Response

from ..errors import NotFound
from ..services import clients as client_service
from ..services.icons import ICON_CONTENT_TYPE, ICON_MAX_BYTES
from .auth import CallContext
from .clients import ClientOut
from .routing import Binary, Upload, operation

TAG = "Clients"
ICON_UPLOAD = Upload(
    media_types=("image/png", "image/jpeg", "image/gif", "image/webp", "application/octet-stream"),
    form_field="icon",
    description=f"A PNG, JPEG, GIF or WebP image of at most {ICON_MAX_BYTES // 1024} KiB (SVG is refused), "
                "sent raw or as the `icon` field of multipart/form-data. It is re-encoded as PNG.",
)


@operation("GET", "/clients/{client_id}/icon", summary="Download a client's icon", tag=TAG,
           responses={200: Binary(ICON_CONTENT_TYPE, "The icon, re-encoded as PNG.")})
def get_client_icon(ctx: CallContext, client_id: str):
    client = client_service.get_client(client_id, ctx.org_id)
    if client.icon is None:
        raise NotFound("This client has no icon.")
    response = Response(client.icon, content_type=client.icon_content_type or ICON_CONTENT_TYPE)
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Content-Disposition"] = 'inline; filename="icon.png"'
    return response


@operation("PUT", "/clients/{client_id}/icon", summary="Set or replace a client's icon", tag=TAG,
           upload=ICON_UPLOAD, responses={200: ClientOut})
def put_client_icon(ctx: CallContext, client_id: str, upload: bytes):
    return ClientOut.of(client_service.update_client(client_id, ctx.org_id, icon=upload, actor=ctx.actor))


@operation("DELETE", "/clients/{client_id}/icon", summary="Remove a client's icon", tag=TAG, responses={204: None})
def delete_client_icon(ctx: CallContext, client_id: str):
    client = client_service.get_client(client_id, ctx.org_id)
    if client.icon is None:
        raise NotFound("This client has no icon.")
    client_service.update_client(client_id, ctx.org_id, icon=None, actor=ctx.actor)
