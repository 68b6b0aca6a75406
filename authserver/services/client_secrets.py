"""Client secrets: generated here, shown once, stored as a keyed hash, deletable one by one."""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from .. import clock, token_store
from ..crypto.client_secrets import (
    candidate_hashes,
    generate_client_secret,
    generate_secret_id,
    hash_client_secret,
    secret_hash_matches,
)
from ..errors import Conflict, NotFound
from ..extensions import db
from ..models import Client, ClientSecret
from .audit import record_event
from .clients import get_client
from .common import CLI_ACTOR, Actor, current_settings, is_identifier, transactional

MAX_SECRETS_PER_CLIENT = 20


@dataclass(frozen=True)
class NewClientSecret:
    """The one moment a secret exists in clear: returned to the caller, never stored."""

    secret_id: str
    client_secret: str
    created_at: int


def _pepper() -> bytes:
    return current_settings().secret_pepper


@transactional
def add_secret(client_id: str, org_id: str | None = None, actor: Actor = CLI_ACTOR) -> NewClientSecret:
    client = get_client(client_id, org_id)
    count = len(list_secrets(client.client_id))
    if count >= MAX_SECRETS_PER_CLIENT:
        raise Conflict(f"A client may have at most {MAX_SECRETS_PER_CLIENT} secrets; delete an unused one first.")
    plaintext = generate_client_secret()
    row = ClientSecret(
        secret_id=generate_secret_id(),
        client_id=client.client_id,
        secret_hash=hash_client_secret(plaintext, _pepper()),
        created_at=clock.now(),
        last_used_at=None,
    )
    db.session.add(row)
    record_event(actor, client.org_id, "secret.created", "client_secret", row.secret_id, client_id=client.client_id)
    return NewClientSecret(secret_id=row.secret_id, client_secret=plaintext, created_at=row.created_at)


def _last_used():
    from flask import current_app

    return current_app.extensions["authserver.last_used"]


def list_secrets(client_id: str, org_id: str | None = None) -> list[ClientSecret]:
    client = get_client(client_id, org_id)
    _last_used().flush()  # this worker's pending last-used times first (other workers write theirs within seconds)
    query = select(ClientSecret).where(ClientSecret.client_id == client.client_id)
    return list(db.session.scalars(query.order_by(ClientSecret.created_at, ClientSecret.secret_id)))


def get_secret(client_id: str, secret_id: str, org_id: str | None = None) -> ClientSecret:
    client = get_client(client_id, org_id)
    _last_used().flush()
    row = db.session.get(ClientSecret, secret_id) if is_identifier(secret_id) else None
    if row is None or row.client_id != client.client_id:
        raise NotFound("Client secret not found.")
    return row


@transactional
def delete_secret(client_id: str, secret_id: str, org_id: str | None = None, actor: Actor = CLI_ACTOR) -> None:
    """The row goes at once, so the very next token request with it fails in every worker and host.
    Tokens it already obtained keep their own records and stay valid."""
    row = get_secret(client_id, secret_id, org_id)
    org = get_client(client_id, org_id).org_id
    db.session.delete(row)
    record_event(actor, org, "secret.deleted", "client_secret", secret_id, client_id=client_id)


@dataclass(frozen=True)
class AuthenticatedSecret:
    """What one indexed query learns about a client that presented a valid secret."""

    client_id: str
    org_id: str
    keys_version: int
    access_version: int
    secret_id: str


MAX_SECRET_LENGTH = 512


def authenticate_client_secret(client_id: str, secret: str) -> AuthenticatedSecret | None:
    """The client whose stored secret hashes match, or None. A deleted secret has no row, so it
    never authenticates again, in any worker or host. The stored hash itself is not a secret:
    it is hashed like any other input and cannot match."""
    if not client_id or not secret or len(secret) > MAX_SECRET_LENGTH or len(client_id) > 64:
        return None
    pepper = current_settings().secret_pepper
    for candidate in candidate_hashes(secret, pepper):
        match = token_store.secret_by_hash(candidate)
        if match is None:
            continue
        if match.client_id != client_id or not secret_hash_matches(secret, match.secret_hash, pepper):
            return None
        _last_used().record(match.secret_id, clock.now(), match.last_used_at)
        return AuthenticatedSecret(match.client_id, match.org_id, match.keys_version, match.access_version,
                                   match.secret_id)
    return None
