"""/clients/{client_id}/secrets: a secret is shown once, by the POST that creates it, and never again."""
from __future__ import annotations

from flask import url_for
from pydantic import Field

from ..config import SECRET_TTL_MAX_DAYS
from ..models import ClientSecret
from ..services import client_secrets as secret_service
from .auth import CallContext
from .routing import Reply, operation
from .schemas import RequestBody, ResponseBody, Timestamp, optional, timestamp

TAG = "Client secrets"


LABEL = (f"Your words to tell the secret apart from the client's others (e.g. where it is deployed): up to "
         f"{secret_service.LABEL_MAX} printable characters on one line. Never put a secret in it.")
NEW_HINT = "The last four characters of the secret, to tell secrets apart; not enough to use it."
HINT = NEW_HINT + " Null for a secret made before hints were kept."
EXPIRES_AT = "When the secret stops authenticating (RFC 3339, UTC), or null when it never expires."


def _date_time(schema: dict) -> None:
    schema.pop("default", None)
    schema["format"] = "date-time"


class SecretCreate(RequestBody):
    """Optional: without a body (or with neither member) the server's default lifetime applies."""

    expires_at: str = Field(  # type: ignore[assignment]  # optional, yet never null in the schema
        default=None, min_length=1, json_schema_extra=_date_time, description=(
        "When the secret stops authenticating: an RFC 3339 date-time with a time zone (or a date: midnight "
        f"UTC), in the future and at most {SECRET_TTL_MAX_DAYS} days ahead. Not with `expires_in_days`."))
    expires_in_days: int = optional(f"Days until the secret stops authenticating, 1 to {SECRET_TTL_MAX_DAYS}. "
                                    "Not with `expires_at`.")
    label: str = optional(LABEL)


class SecretOut(ResponseBody):
    secret_id: str
    hint: str | None = Field(description=HINT)
    label: str | None = Field(description="The label given when the secret was added, or null.")
    created_at: Timestamp
    last_used_at: Timestamp | None = Field(
        description="Last successful client authentication (to the minute), or null."
    )
    expires_at: Timestamp | None = Field(description=EXPIRES_AT)
    leaked_at: Timestamp | None = Field(description="When a leak report (POST /oauth/secret-leak) named the secret, "
                                                    "which disabled it; null otherwise.")

    @classmethod
    def of(cls, row: ClientSecret) -> SecretOut:
        return cls(
            secret_id=row.secret_id,
            hint=row.hint,
            label=row.label,
            created_at=timestamp(row.created_at),
            last_used_at=timestamp(row.last_used_at),
            expires_at=timestamp(row.expires_at),
            leaked_at=timestamp(row.leaked_at),
        )


class SecretList(ResponseBody):
    items: list[SecretOut]


class NewSecretOut(ResponseBody):
    secret_id: str
    client_secret: str = Field(description="Shown this once: the server keeps only a hash of it.")
    hint: str = Field(description=NEW_HINT)
    label: str | None = Field(description="The label given, or null.")
    created_at: Timestamp
    expires_at: Timestamp | None = Field(description=EXPIRES_AT)


@operation("GET", "/clients/{client_id}/secrets", summary="List a client's secrets (never their values)", tag=TAG,
           responses={200: SecretList})
def list_secrets(ctx: CallContext, client_id: str):
    return SecretList(items=[SecretOut.of(s) for s in secret_service.list_secrets(client_id, ctx.org_id)])


@operation("POST", "/clients/{client_id}/secrets", summary="Generate a new client secret", tag=TAG,
           body=SecretCreate, body_optional=True, responses={201: NewSecretOut}, errors=(409,),
           response_headers={201: {"Location": "The new secret's URL.", "Cache-Control": "no-store"}},
           description="The answer holds the secret in clear, this once: store it now. The body is optional: "
                       "`expires_at` or `expires_in_days` sets when the secret stops authenticating; without "
                       "either, the server's default lifetime applies (none unless the operator set one). "
                       "`label` names the secret in listings.")
def create_secret(ctx: CallContext, client_id: str, body: SecretCreate):
    new = secret_service.add_secret(client_id, ctx.org_id, actor=ctx.actor, expires_at=body.expires_at,
                                    expires_in_days=body.expires_in_days, label=body.label)
    answer = NewSecretOut(
        secret_id=new.secret_id,
        client_secret=new.client_secret,
        hint=new.hint,
        label=new.label,
        created_at=timestamp(new.created_at),
        expires_at=timestamp(new.expires_at),
    )
    headers = {
        "Location": url_for("api_v1.get_secret", client_id=client_id, secret_id=new.secret_id),
        "Cache-Control": "no-store",  # RFC 6749 §5.1 does the same for credentials in a response
        "Pragma": "no-cache",
    }
    return Reply(answer, headers=headers)


@operation("GET", "/clients/{client_id}/secrets/{secret_id}", summary="Show a secret's metadata", tag=TAG,
           responses={200: SecretOut})
def get_secret(ctx: CallContext, client_id: str, secret_id: str):
    return SecretOut.of(secret_service.get_secret(client_id, secret_id, ctx.org_id))


@operation("DELETE", "/clients/{client_id}/secrets/{secret_id}", summary="Delete a client secret", tag=TAG,
           responses={204: None},
           description="The very next token request with it fails; tokens it already obtained stay valid.")
def delete_secret(ctx: CallContext, client_id: str, secret_id: str):
    secret_service.delete_secret(client_id, secret_id, ctx.org_id, actor=ctx.actor)
