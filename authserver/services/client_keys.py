"""Public keys that verify a client's assertions: pasted ones, and at most one key URL (jwks_uri) per
client whose JWK Set is fetched by the server. Private keys never reach the server."""
from __future__ import annotations

import json
from dataclasses import dataclass

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from .. import clock
from ..crypto.keys import parse_public_key
from ..errors import Conflict, InvalidInput, NotFound
from ..extensions import db
from ..keyfetch import KeyFetcher
from ..models import Client, ClientKey
from .app_services import app_services
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
    existing = db.session.scalar(
        select(func.count()).select_from(ClientKey).where(ClientKey.client_id == client.client_id)
    )
    if (existing or 0) >= MAX_KEYS_PER_CLIENT:
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
    record_event(
        actor,
        client.org_id,
        "key.created",
        "client_key",
        parsed.kid,
        client_id=client.client_id,
        key_type=parsed.key_type,
    )
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


# --- the key URL ----------------------------------------------------------------------------

@dataclass(frozen=True)
class KeyUrlStatus:
    """A client's key URL and what this server process knows of it (times: epoch seconds)."""

    jwks_uri: str
    added_at: int | None
    key_ids: tuple[str, ...]  # the kids of the usable keys last fetched
    last_fetch_at: int | None  # when those keys were fetched (None: never)
    next_fetch_at: int | None  # when they are fetched again at the latest
    last_error: str | None  # why the newest fetch failed (None: it did not)
    last_error_at: int | None


def key_fetcher() -> KeyFetcher:
    """The process's KeyFetcher (one per app, shared with the token path's key cache)."""
    return app_services().key_fetcher


def shown_url(url: str) -> str:
    """The URL as the audit log keeps it: without its query, which may carry a credential."""
    base, sep, _ = url.partition("?")
    return base + ("?…" if sep else "")


@transactional
def set_key_url(client_id: str, url: object, org_id: str | None = None, actor: Actor = CLI_ACTOR) -> KeyUrlStatus:
    """Register the URL of a JWK Set whose keys verify the client's assertions (replacing the client's
    former URL, if any). The URL must follow the fetcher's rules and answer with at least one usable
    signing key now, so a mistake (plain http, a redirect, an answer too large, no key) is told at once."""
    from ..keyfetch import KeyFetchError, check_url

    client = get_client(client_id, org_id)
    if not isinstance(url, str):
        raise InvalidInput("The key URL must be text.", field="jwks_uri")
    url = url.strip()
    fetcher = key_fetcher()
    try:
        check_url(url, allow_insecure=fetcher.allow_insecure)
        fetcher.forget(url)  # a fresh fetch: what the URL serves now, not a failure cached a minute ago
        keys = fetcher.keys(url)
    except KeyFetchError as exc:
        raise InvalidInput(exc.message, field="jwks_uri") from None
    previous = client.jwks_uri
    client.jwks_uri = url
    client.jwks_uri_added_at = clock.now()
    bump_keys_version(client.client_id)
    details = {"client_id": client.client_id, "jwks_uri": shown_url(url), "key_ids": sorted(keys)}
    if previous is not None and previous != url:
        details["replaced"] = shown_url(previous)
    record_event(actor, client.org_id, "key_url.added", "client", client.client_id, **details)
    return _status(url, client.jwks_uri_added_at)


def _status(url: str, added_at: int | None) -> KeyUrlStatus:
    status = key_fetcher().status(url)
    return KeyUrlStatus(jwks_uri=url, added_at=added_at, key_ids=status.key_ids, last_fetch_at=status.last_success,
                        next_fetch_at=status.expires_at, last_error=status.last_error,
                        last_error_at=status.last_error_at)


def key_url_status(client_id: str, org_id: str | None = None) -> KeyUrlStatus | None:
    """The client's key URL with its fetch status (fetched now when this process holds nothing fresh
    for it), or None when it has none."""
    from ..keyfetch import KeyFetchError

    client = get_client(client_id, org_id)
    if client.jwks_uri is None:
        return None
    try:
        key_fetcher().keys(client.jwks_uri)
    except KeyFetchError:
        pass  # the failure is in the status
    return _status(client.jwks_uri, client.jwks_uri_added_at)


@transactional
def delete_key_url(client_id: str, org_id: str | None = None, actor: Actor = CLI_ACTOR) -> str:
    """Remove the client's key URL: its keys verify nothing from the very next request on, in every
    worker (keys_version). The URL that was removed."""
    client = get_client(client_id, org_id)
    url = client.jwks_uri
    if url is None:
        raise NotFound("This client has no key URL.")
    client.jwks_uri = None
    client.jwks_uri_added_at = None
    bump_keys_version(client.client_id)
    record_event(actor, client.org_id, "key_url.deleted", "client", client.client_id,
                 client_id=client.client_id, jwks_uri=shown_url(url))
    key_fetcher().forget(url)
    return url
