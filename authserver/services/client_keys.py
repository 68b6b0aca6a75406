"""Public keys that verify a client's assertions. Private keys never reach the server."""
from __future__ import annotations

import json

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from .. import clock
from ..crypto.keys import parse_public_key
from ..errors import Conflict, NotFound
from ..extensions import db
from ..models import Client, ClientKey
from .audit import record_event
from .clients import get_client
from .common import CLI_ACTOR, Actor, is_identifier, transactional

MAX_KEYS_PER_CLIENT = 20


def bump_keys_version(client_id: str) -> None:
    """Every worker's parsed-key cache of the client is stale from now on. Incremented in SQL: two
    concurrent changes each add one (a read-modify-write in Python could lose one, and a worker
    could go on trusting a deleted key)."""
    db.session.execute(update(Client).where(Client.client_id == client_id)
                       .values(keys_version=Client.keys_version + 1).execution_options(synchronize_session=False))


@transactional
def add_key(client_id: str, key_text: str | bytes, kid: str | None = None, org_id: str | None = None,
            actor: Actor = CLI_ACTOR) -> ClientKey:
    client = get_client(client_id, org_id)
    parsed = parse_public_key(key_text, kid=kid)
    existing = db.session.scalar(select(func.count()).select_from(ClientKey).where(ClientKey.client_id == client.client_id))
    if existing >= MAX_KEYS_PER_CLIENT:
        raise Conflict(f"A client may have at most {MAX_KEYS_PER_CLIENT} keys; delete an unused one first.")
    if db.session.scalar(select(ClientKey).where(ClientKey.client_id == client.client_id, ClientKey.kid == parsed.kid)):
        raise Conflict(f"This client already has a key with kid {parsed.kid!r}.", field="kid")
    row = ClientKey(
        client_id=client.client_id,
        kid=parsed.kid,
        kty=parsed.kty,
        key_type=parsed.key_type,
        public_jwk=json.dumps(parsed.jwk, sort_keys=True),
        created_at=clock.now(),
    )
    db.session.add(row)
    try:
        db.session.flush()
    except IntegrityError:  # the same kid added at the same instant by another request
        db.session.rollback()
        raise Conflict(f"This client already has a key with kid {parsed.kid!r}.", field="kid") from None
    bump_keys_version(client.client_id)
    record_event(actor, client.org_id, "key.created", "client_key", parsed.kid, client_id=client.client_id, key_type=parsed.key_type)
    return row


def list_keys(client_id: str, org_id: str | None = None) -> list[ClientKey]:
    client = get_client(client_id, org_id)
    query = select(ClientKey).where(ClientKey.client_id == client.client_id)
    return list(db.session.scalars(query.order_by(ClientKey.created_at, ClientKey.id)))


def get_key(client_id: str, kid: str, org_id: str | None = None) -> ClientKey:
    client = get_client(client_id, org_id)
    row = None
    if is_identifier(kid):
        row = db.session.scalar(select(ClientKey).where(ClientKey.client_id == client.client_id, ClientKey.kid == kid))
    if row is None:
        raise NotFound("Client key not found.")
    return row


@transactional
def delete_key(client_id: str, kid: str, org_id: str | None = None, actor: Actor = CLI_ACTOR) -> None:
    row = get_key(client_id, kid, org_id)
    client = get_client(client_id, org_id)
    db.session.delete(row)
    bump_keys_version(client.client_id)
    record_event(actor, client.org_id, "key.deleted", "client_key", kid, client_id=client.client_id)
