"""The server's access-token signing keys: creation, rotation, withdrawal, publication (the per-process
key ring that signs and verifies with them is access_tokens.KeyRing).

A key's life, in stored times:
- created_at: published in the JWKS from here on;
- activates_at: may sign from here on (created_at plus the activation delay of its rotation, so
  resource servers that cache the JWKS know the key before they meet a token it signed);
- retired_at: stops signing (set by the next rotation: the new key's activates_at, so exactly one
  key signs at any time); still published until the last token it signed has expired;
- withdrawn_at: a compromised key, unpublished at once and its tokens inactive at once. Final.
"""
from __future__ import annotations

import json
from typing import Any

from sqlalchemy import or_, select, update

from .. import clock
from ..access_tokens import choose_signing_key, token_grace
from ..crypto.signing import encrypt_private_key, generate_signing_key, public_jwk_json
from ..errors import Conflict, NotFound
from ..extensions import db
from ..models import SigningKey
from .audit import record_event
from .common import CLI_ACTOR, Actor, affected_rows, current_settings, is_identifier, transactional

PENDING, SIGNING, RETIRED, EXPIRED, WITHDRAWN = "pending", "signing", "retired", "expired", "withdrawn"


@transactional
def rotate_signing_key(alg: str | None = None, actor: Actor = CLI_ACTOR, *, now: bool = False) -> SigningKey:
    """Add a new signing key, published at once. It signs once the activation delay has passed; at
    that moment every key that would still be signing retires (a key that a pending rotation already
    retires earlier keeps that earlier time). With `now`, the new key signs at once and every other
    key stops signing at once. Retired keys stay published until the tokens they signed have expired.
    The first key of an empty database signs at once."""
    settings = current_settings()
    pair = generate_signing_key(alg or settings.signing_alg)
    created = clock.now()
    has_keys = db.session.scalars(select(SigningKey.kid).limit(1)).first() is not None
    activates = created if (now or not has_keys) else created + settings.signing_key_activation_delay
    db.session.execute(
        update(SigningKey)
        .where(
            SigningKey.withdrawn_at.is_(None), or_(SigningKey.retired_at.is_(None), SigningKey.retired_at > activates)
        )
        .values(retired_at=activates)
    )
    row = SigningKey(
        kid=pair.kid,
        alg=pair.alg,
        public_jwk=public_jwk_json(pair),
        private_key_encrypted=encrypt_private_key(pair.private_key, settings.key_encryption_key),
        created_at=created,
        activates_at=activates,
        retired_at=None,
        withdrawn_at=None,
    )
    db.session.add(row)
    details = {"alg": pair.alg, "activates_at": activates}
    if now:
        details["now"] = True
    record_event(actor, None, "signing_key.rotated", "signing_key", pair.kid, **details)
    return row


@transactional
def withdraw_signing_key(kid: str, actor: Actor = CLI_ACTOR) -> SigningKey:
    """Withdraw a compromised key: it leaves the JWKS at once and every token it signed is inactive
    at once (introspection, revocation and the management API check the key of each token record).
    Only a key that no longer signs can be withdrawn (`rotate_signing_key(now=True)` first), so some
    key always signs. Final."""
    key = db.session.get(SigningKey, kid) if is_identifier(kid, 64) else None
    if key is None:
        raise NotFound(f"No signing key {kid!r}.")
    if key.withdrawn_at is not None:
        raise Conflict(f"Signing key {kid} was already withdrawn at {clock.isoformat(key.withdrawn_at)}.")
    at = clock.now()
    if key.retired_at is None or key.retired_at > at:
        raise Conflict(f"Signing key {kid} signs tokens (or is due to sign them): run "
                       "'authserver signing-key rotate --now' first, then withdraw it.")
    # Conditional, so a concurrent withdrawal of the same key records one event.
    done = affected_rows(
        update(SigningKey).where(SigningKey.kid == kid, SigningKey.withdrawn_at.is_(None)).values(withdrawn_at=at)
    )
    if not done:
        raise Conflict(f"Signing key {kid} was already withdrawn.")
    record_event(actor, None, "signing_key.withdrawn", "signing_key", kid, alg=key.alg, retired_at=key.retired_at)
    db.session.expire(key)
    return key


def current_signing_key() -> SigningKey | None:
    """The newest key that has not stopped signing: the one signing, or the one a pending rotation brings in."""
    query = (select(SigningKey).where(SigningKey.retired_at.is_(None), SigningKey.withdrawn_at.is_(None))
             .order_by(SigningKey.created_at.desc()))
    return db.session.scalars(query.limit(1)).first()


def ensure_signing_key() -> SigningKey:
    """A current key with the configured algorithm, created (or rotated to) when missing."""
    key = current_signing_key()
    if key is None or key.alg != current_settings().signing_alg:
        key = rotate_signing_key()
    return key


def published_keys() -> list[SigningKey]:
    """Keys whose tokens may still be live: not withdrawn, and not retired longer than a token lifetime ago."""
    horizon = clock.now() - token_grace(current_settings())
    query = select(SigningKey).where(
        SigningKey.withdrawn_at.is_(None), or_(SigningKey.retired_at.is_(None), SigningKey.retired_at > horizon))
    return list(db.session.scalars(query.order_by(SigningKey.created_at.desc())))


def jwks() -> dict[str, Any]:
    return {"keys": [json.loads(row.public_jwk) for row in published_keys()]}


def key_state(row: SigningKey, now: int, signing_kid: str | None, grace: int) -> str:
    if row.withdrawn_at is not None:
        return WITHDRAWN
    if row.kid == signing_kid:
        return SIGNING
    if row.retired_at is not None and row.retired_at + grace <= now:
        return EXPIRED
    if row.retired_at is None or row.retired_at > now:
        if row.activates_at > now:
            return PENDING
    return RETIRED  # stopped signing (or superseded): published until its tokens expire


def list_signing_keys() -> list[dict[str, Any]]:
    """Every signing key, newest first, with its state now."""
    at = clock.now()
    rows = list(db.session.scalars(select(SigningKey)))
    # Newest first; of keys made in the same second, the one that retired the other comes first.
    rows.sort(key=lambda r: (-r.created_at, -r.activates_at, r.retired_at is not None, -(r.retired_at or 0), r.kid))
    candidates = sorted((r for r in rows if r.withdrawn_at is None and (r.retired_at is None or r.retired_at > at)),
                        key=lambda r: (-r.activates_at, -r.created_at, r.kid))
    chosen = choose_signing_key(candidates, at)
    grace = token_grace(current_settings())
    return [{"kid": r.kid, "alg": r.alg, "created_at": r.created_at, "activates_at": r.activates_at,
             "retired_at": r.retired_at, "withdrawn_at": r.withdrawn_at,
             "state": key_state(r, at, chosen.kid if chosen is not None else None, grace)} for r in rows]


def signing_key_state(kid: str) -> dict[str, Any] | None:
    return next((entry for entry in list_signing_keys() if entry["kid"] == kid), None)
