"""/clients/{client_id}/keys: the public keys that verify a client's assertions (RFC 7523 §3), and
/clients/{client_id}/jwks-uri: the URL of a JWK Set whose keys do too."""
from __future__ import annotations

import json
from typing import Annotated, Any

from flask import url_for
from pydantic import ConfigDict, Discriminator, Field, RootModel, Tag

from ..errors import NotFound
from ..keyfetch import MAX_URL_LENGTH
from ..models import ClientKey
from ..services import client_keys as key_service
from ..services.clients import get_client
from .auth import CallContext
from .routing import Reply, operation
from .schemas import RequestBody, ResponseBody, Timestamp, optional, timestamp

TAG = "Client keys"


class KeyText(RequestBody):
    key: str = Field(description="A PEM public key (BEGIN PUBLIC KEY) or one JWK as JSON text.")
    kid: str = optional("Key id; defaults to the JWK's kid, else its RFC 7638 thumbprint.")


class PublicJwk(RequestBody):
    """One public JWK (RFC 7517) as a JSON object; private members are refused."""

    model_config = ConfigDict(strict=True, extra="allow", title="PublicJwk")

    kty: str = Field(description="RSA, EC or OKP (Ed25519).")
    kid: str = optional("Key id; defaults to the RFC 7638 thumbprint.")


def _shape(value: Any) -> str:
    return "jwk" if isinstance(value, dict) and "kty" in value else "text"


class KeyCreate(RootModel[Annotated[Annotated[KeyText, Tag("text")] | Annotated[PublicJwk, Tag("jwk")],
                                    Discriminator(_shape)]]):
    """Either {"key": "<PEM or JWK text>", "kid": "..."} or a JWK object itself."""

    def key_and_kid(self) -> tuple[str, str | None]:
        if isinstance(self.root, KeyText):
            return self.root.key, self.root.kid
        return json.dumps(self.root.model_dump(exclude_none=True)), None


class KeyOut(ResponseBody):
    kid: str
    kty: str = Field(description="RSA, EC or OKP.")
    key_type: str = Field(description="e.g. RSA-2048, EC-P-256, Ed25519.")
    jwk: dict[str, Any] = Field(description="The public key as a JWK.")
    created_at: Timestamp

    @classmethod
    def of(cls, row: ClientKey) -> KeyOut:
        return cls(kid=row.kid, kty=row.kty, key_type=row.key_type, jwk=json.loads(row.public_jwk),
                   created_at=timestamp(row.created_at))


class KeyUrlIn(RequestBody):
    jwks_uri: str = Field(max_length=MAX_URL_LENGTH, description=(
        "The https URL of a JWK Set (RFC 7517 §5) of public signing keys. It must answer now, without a "
        "redirect, with at most 64 KiB holding at least one usable key."))


class KeyUrlOut(ResponseBody):
    """A client's key URL and what this server knows of it."""

    jwks_uri: str
    created_at: Timestamp | None = Field(description="When the URL was registered.")
    key_ids: list[str] = Field(description="The kids of the usable signing keys last fetched from it.")
    last_fetch_at: Timestamp | None = Field(description="When those keys were fetched; null: never.")
    next_fetch_at: Timestamp | None = Field(description="When they are fetched again at the latest (also sooner, "
                                                        "at most once a minute, for an assertion with an unknown kid).")
    last_error: str | None = Field(description="Why the newest fetch failed; null when it did not. The keys last "
                                               "fetched keep verifying meanwhile.")
    last_error_at: Timestamp | None

    @classmethod
    def of(cls, status: key_service.KeyUrlStatus) -> KeyUrlOut:
        return cls(jwks_uri=status.jwks_uri, created_at=timestamp(status.added_at), key_ids=list(status.key_ids),
                   last_fetch_at=timestamp(status.last_fetch_at), next_fetch_at=timestamp(status.next_fetch_at),
                   last_error=status.last_error, last_error_at=timestamp(status.last_error_at))


class KeyList(ResponseBody):
    items: list[KeyOut]
    jwks_uri: KeyUrlOut | None = Field(default=None, description="The client's key URL, or null when it has none.")


@operation("GET", "/clients/{client_id}/keys", summary="List a client's public keys", tag=TAG,
           responses={200: KeyList})
def list_keys(ctx: CallContext, client_id: str):
    status = key_service.key_url_status(client_id, ctx.org_id)
    return KeyList(items=[KeyOut.of(k) for k in key_service.list_keys(client_id, ctx.org_id)],
                   jwks_uri=KeyUrlOut.of(status) if status is not None else None)


@operation("POST", "/clients/{client_id}/keys", summary="Register a public key", tag=TAG, body=KeyCreate,
           responses={201: KeyOut}, errors=(409,), response_headers={201: {"Location": "The new key's URL."}},
           description="RSA (2048 bits or more), EC P-256/P-384/P-521 or Ed25519; never a private key.")
def create_key(ctx: CallContext, client_id: str, body: KeyCreate):
    key_text, kid = body.key_and_kid()
    row = key_service.add_key(client_id, key_text, kid=kid, org_id=ctx.org_id, actor=ctx.actor)
    return Reply(KeyOut.of(row), headers={"Location": url_for("api_v1.get_key", client_id=client_id, kid=row.kid)})


@operation("GET", "/clients/{client_id}/keys/{kid}", summary="Show a public key", tag=TAG, responses={200: KeyOut},
           converters={"kid": "path"})
def get_key(ctx: CallContext, client_id: str, kid: str):
    return KeyOut.of(key_service.get_key(client_id, kid, ctx.org_id))


@operation("DELETE", "/clients/{client_id}/keys/{kid}", summary="Delete a public key", tag=TAG,
           responses={204: None}, converters={"kid": "path"},
           description="Assertions signed with it are refused from the next token request on.")
def delete_key(ctx: CallContext, client_id: str, kid: str):
    key_service.delete_key(client_id, kid, ctx.org_id, actor=ctx.actor)


@operation("GET", "/clients/{client_id}/jwks-uri", summary="Show a client's key URL and its fetch status", tag=TAG,
           responses={200: KeyUrlOut}, description="404 when the client has no key URL.")
def get_key_url(ctx: CallContext, client_id: str):
    status = key_service.key_url_status(client_id, ctx.org_id)
    if status is None:
        raise NotFound("This client has no key URL.")
    return KeyUrlOut.of(status)


@operation("PUT", "/clients/{client_id}/jwks-uri", summary="Register a client's key URL", tag=TAG, body=KeyUrlIn,
           responses={200: KeyUrlOut, 201: KeyUrlOut},
           description="The keys of the JWK Set at this URL verify the client's assertions, besides its registered "
                       "keys. One URL per client: 201 when it had none, 200 when this one replaced its former URL. "
                       "The URL is fetched now and refused (400) unless it answers with a usable key.")
def put_key_url(ctx: CallContext, client_id: str, body: KeyUrlIn):
    had_one = get_client(client_id, ctx.org_id).jwks_uri is not None
    status = key_service.set_key_url(client_id, body.jwks_uri, ctx.org_id, actor=ctx.actor)
    return Reply(KeyUrlOut.of(status), status=200 if had_one else 201)


@operation("DELETE", "/clients/{client_id}/jwks-uri", summary="Remove a client's key URL", tag=TAG,
           responses={204: None}, description="Assertions signed with its keys are refused from the next request on.")
def delete_key_url(ctx: CallContext, client_id: str):
    key_service.delete_key_url(client_id, ctx.org_id, actor=ctx.actor)
