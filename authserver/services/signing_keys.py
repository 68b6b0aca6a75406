"""The server's access-token signing keys: creation, rotation, publication, and a per-process key ring."""
from __future__ import annotations

import json
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from sqlalchemy import or_, select, update

from .. import clock
from ..crypto.jws import Signer
from ..crypto.keys import load_public_jwk
from ..crypto.signing import decrypt_private_key, encrypt_private_key, generate_signing_key, public_jwk_json
from ..extensions import db
from ..models import SigningKey
from .audit import record_event

ACCESS_TOKEN_JWT_TYP = "at+jwt"  # RFC 9068 §2.1
from .common import CLI_ACTOR, Actor, current_settings, transactional


@transactional
def rotate_signing_key(alg: str | None = None, actor: Actor = CLI_ACTOR) -> SigningKey:
    """Add a new signing key. It is published at once and signs tokens once the activation delay
    has passed; until then the current key keeps signing, and it stays published until the tokens
    it signed have expired. The first key of an empty database signs at once."""
    settings = current_settings()
    pair = generate_signing_key(alg or settings.signing_alg)
    now = clock.now()
    db.session.execute(
        update(SigningKey).where(SigningKey.retired_at.is_(None)).values(retired_at=now + settings.signing_key_activation_delay)
    )
    row = SigningKey(
        kid=pair.kid,
        alg=pair.alg,
        public_jwk=public_jwk_json(pair),
        private_key_encrypted=encrypt_private_key(pair.private_key, settings.key_encryption_key),
        created_at=now,
        retired_at=None,
    )
    db.session.add(row)
    record_event(actor, None, "signing_key.rotated", "signing_key", pair.kid, alg=pair.alg)
    return row


def current_signing_key() -> SigningKey | None:
    query = select(SigningKey).where(SigningKey.retired_at.is_(None)).order_by(SigningKey.created_at.desc())
    return db.session.scalars(query.limit(1)).first()


def ensure_signing_key() -> SigningKey:
    """A current key with the configured algorithm, created (or rotated to) when missing."""
    key = current_signing_key()
    if key is None or key.alg != current_settings().signing_alg:
        key = rotate_signing_key()
    return key


def published_keys() -> list[SigningKey]:
    """Keys whose tokens may still be live: the current ones and those retired less than a token lifetime ago."""
    settings = current_settings()
    horizon = clock.now() - settings.access_token_ttl - settings.clock_skew
    query = select(SigningKey).where(or_(SigningKey.retired_at.is_(None), SigningKey.retired_at > horizon))
    return list(db.session.scalars(query.order_by(SigningKey.created_at.desc())))


def jwks() -> dict:
    return {"keys": [json.loads(row.public_jwk) for row in published_keys()]}


def choose_signing_key(candidates, now: int, activation_delay: int):
    """The newest key that has been published for the activation delay; failing that, the oldest
    key not yet retired (the one already signing, or the only key of a fresh installation).
    `candidates` are the keys not yet retired, newest first."""
    for row in candidates:
        if row.created_at <= now - activation_delay:
            return row
    return candidates[-1] if candidates else None


@dataclass(frozen=True)
class ActiveSigningKey:
    kid: str
    alg: str
    private_key: Any
    signer: Signer


class KeyRing:
    """Parsed signing keys of one process: the current key is re-read every `refresh` seconds,
    verification keys are loaded once per kid."""

    def __init__(self, key_encryption_key: bytes, refresh: int, activation_delay: int = 0):
        self._kek = key_encryption_key
        self._refresh = refresh
        self._activation_delay = activation_delay
        self._lock = threading.Lock()
        self._current: ActiveSigningKey | None = None
        self._checked_at = -1.0
        self._public: dict[str, tuple[Any, str, int | None]] = {}
        self._verified: OrderedDict[str, dict] = OrderedDict()

    def signing_key(self) -> ActiveSigningKey:
        now = clock.now()
        current = self._current
        if current is not None and now - self._checked_at < self._refresh:
            return current
        with self._lock:
            row = choose_signing_key(db.session.execute(
                select(SigningKey.kid, SigningKey.alg, SigningKey.private_key_encrypted, SigningKey.created_at)
                .where(or_(SigningKey.retired_at.is_(None), SigningKey.retired_at > now))
                .order_by(SigningKey.created_at.desc(), SigningKey.kid)
            ).all(), now, self._activation_delay)
            if row is None:
                raise RuntimeError("no signing key: run 'authserver init'")
            if self._current is None or self._current.kid != row.kid:
                private_key = decrypt_private_key(row.private_key_encrypted, self._kek)
                signer = Signer(row.alg, private_key, {"kid": row.kid, "typ": ACCESS_TOKEN_JWT_TYP})
                self._current = ActiveSigningKey(row.kid, row.alg, private_key, signer)
            self._checked_at = now
            return self._current

    def sign(self, claims: dict) -> str:
        return self.signing_key().signer.sign(claims)

    VERIFIED_CACHE_SIZE = 10000

    def verified_claims(self, token: str) -> dict | None:
        """Claims of a token string whose signature this process already verified."""
        claims = self._verified.get(token)
        if claims is not None:
            try:
                self._verified.move_to_end(token)
            except KeyError:  # evicted by another thread meanwhile
                pass
        return claims

    def remember_verified(self, token: str, claims: dict) -> None:
        with self._lock:
            self._verified[token] = claims
            if len(self._verified) > self.VERIFIED_CACHE_SIZE:
                self._verified.popitem(last=False)

    def verification_key(self, kid: str) -> tuple[Any, str, int | None] | None:
        """(public key, alg, retired_at) of a published signing key, or None."""
        entry = self._public.get(kid)
        if entry is not None:
            return entry
        row = db.session.execute(
            select(SigningKey.public_jwk, SigningKey.alg, SigningKey.retired_at).where(SigningKey.kid == kid)
        ).first()
        if row is None:
            return None
        entry = (load_public_jwk(row.public_jwk).key, row.alg, row.retired_at)
        if len(self._public) > 1000:
            self._public.clear()
        self._public[kid] = entry
        return entry
