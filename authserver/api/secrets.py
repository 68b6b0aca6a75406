"""/clients/{client_id}/secrets: a secret is shown once, by the POST that creates it, and never again."""
from __future__ import annotations

from flask import url_for
from pydantic import Field

from ..models import ClientSecret
from ..services import client_secrets as secret_service
from .auth import CallContext
from .routing import Reply, operation
from .schemas import ResponseBody, Timestamp, timestamp

TAG = "Client secrets"


class SecretOut(ResponseBody):
    secret_id: str
    created_at: Timestamp
    last_used_at: Timestamp | None = Field(description="Last successful client authentication (to the minute), or null.")

    @classmethod
    def of(cls, row: ClientSecret) -> "SecretOut":
        return cls(secret_id=row.secret_id, created_at=timestamp(row.created_at), last_used_at=timestamp(row.last_used_at))


class SecretList(ResponseBody):
    items: list[SecretOut]


class NewSecretOut(ResponseBody):
    secret_id: str
    client_secret: str = Field(description="Shown this once: the server keeps only a hash of it.")
    created_at: Timestamp


@operation("GET", "/clients/{client_id}/secrets", summary="List a client's secrets (never their values)", tag=TAG,
           responses={200: SecretList})
def list_secrets(ctx: CallContext, client_id: str):
    return SecretList(items=[SecretOut.of(s) for s in secret_service.list_secrets(client_id, ctx.org_id)])


@operation("POST", "/clients/{client_id}/secrets", summary="Generate a new client secret", tag=TAG,
           responses={201: NewSecretOut}, errors=(409,),
           response_headers={201: {"Location": "The new secret's URL.", "Cache-Control": "no-store"}},
           description="The answer holds the secret in clear, this once: store it now. No request body.")
def create_secret(ctx: CallContext, client_id: str):
    new = secret_service.add_secret(client_id, ctx.org_id, actor=ctx.actor)
    body = NewSecretOut(secret_id=new.secret_id, client_secret=new.client_secret, created_at=timestamp(new.created_at))
    headers = {
        "Location": url_for("api_v1.get_secret", client_id=client_id, secret_id=new.secret_id),
        "Cache-Control": "no-store",  # RFC 6749 §5.1 does the same for credentials in a response
        "Pragma": "no-cache",
    }
    return Reply(body, headers=headers)


@operation("GET", "/clients/{client_id}/secrets/{secret_id}", summary="Show a secret's metadata", tag=TAG,
           responses={200: SecretOut})
def get_secret(ctx: CallContext, client_id: str, secret_id: str):
    return SecretOut.of(secret_service.get_secret(client_id, secret_id, ctx.org_id))


@operation("DELETE", "/clients/{client_id}/secrets/{secret_id}", summary="Delete a client secret", tag=TAG,
           responses={204: None},
           description="The very next token request with it fails; tokens it already obtained stay valid.")
def delete_secret(ctx: CallContext, client_id: str, secret_id: str):
    secret_service.delete_secret(client_id, secret_id, ctx.org_id, actor=ctx.actor)
