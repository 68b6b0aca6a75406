"""The server's access-token signing keys: creation, rotation, withdrawal, publication, and a per-process key ring.

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
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from sqlalchemy import or_, select, update

from .. import clock
from ..crypto.jws import Signer
from ..crypto.keys import load_public_jwk
from ..crypto.signing import decrypt_private_key, encrypt_private_key, generate_signing_key, public_jwk_json
from ..errors import Conflict, NotFound
from ..extensions import db
from ..models import SigningKey
from .audit import record_event

ACCESS_TOKEN_JWT_TYP = "at+jwt"  # RFC 9068 §2.1
from .common import CLI_ACTOR, Actor, current_settings, is_identifier, transactional

PENDING, SIGNING, RETIRED, EXPIRED, WITHDRAWN = "pending", "signing", "retired", "expired", "withdrawn"


def token_grace(settings) -> int:
    """How long after a key stops signing a token it signed may still be live: a worker may sign with
    it for up to the refresh interval after it retired, each token lives the access-token lifetime,
    and clocks of hosts differ by up to the clock skew."""
    return settings.access_token_ttl + settings.clock_skew + settings.signing_key_refresh


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
        .where(SigningKey.withdrawn_at.is_(None), or_(SigningKey.retired_at.is_(None), SigningKey.retired_at > activates))
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
    done = db.session.execute(
        update(SigningKey).where(SigningKey.kid == kid, SigningKey.withdrawn_at.is_(None)).values(withdrawn_at=at)
    ).rowcount
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


def jwks() -> dict:
    return {"keys": [json.loads(row.public_jwk) for row in published_keys()]}


def choose_signing_key(candidates, now: int):
    """The key that signs at `now`. `candidates` are the keys not withdrawn and not yet retired,
    by activates_at, newest first: the newest one whose activation time has come; failing that
    (no key due yet), the one due first."""
    for row in candidates:
        if row.activates_at <= now:
            return row
    return candidates[-1] if candidates else None


def _candidates_query(now: int, *columns):
    return (select(*columns)
            .where(SigningKey.withdrawn_at.is_(None), or_(SigningKey.retired_at.is_(None), SigningKey.retired_at > now))
            .order_by(SigningKey.activates_at.desc(), SigningKey.created_at.desc(), SigningKey.kid))


def key_state(row, now: int, signing_kid: str | None, grace: int) -> str:
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


def list_signing_keys() -> list[dict]:
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


def signing_key_state(kid: str) -> dict | None:
    return next((entry for entry in list_signing_keys() if entry["kid"] == kid), None)


@dataclass(frozen=True)
class ActiveSigningKey:
    kid: str
    alg: str
    private_key: Any
    signer: Signer


class KeyRing:
    """Parsed signing keys of one process. The signing key is re-read every `refresh` seconds;
    verification keys are loaded once per kid, and their retirement and withdrawal re-read every
    `refresh` seconds (a withdrawn key's cached key and verified tokens are dropped then). Whether a
    token is active never rests on these caches alone: the token's record is read with its key's
    withdrawal in the same statement."""

    VERIFIED_CACHE_SIZE = 10000

    def __init__(self, key_encryption_key: bytes, refresh: int, activation_delay: int = 0):
        self._kek = key_encryption_key
        self._refresh = refresh
        self._activation_delay = activation_delay  # rotations store their own activation time
        self._lock = threading.Lock()
        self._current: ActiveSigningKey | None = None
        self._checked_at = -1.0
        self._public: dict[str, tuple[Any, str, int | None]] = {}
        self._withdrawn: set[str] = set()
        self._synced_at = clock.now()
        self._verified: OrderedDict[str, dict] = OrderedDict()

    # --- signing ---------------------------------------------------------------------------

    def signing_key(self) -> ActiveSigningKey:
        now = clock.now()
        current = self._current
        if current is not None and now - self._checked_at < self._refresh:
            return current
        with self._lock:
            row = choose_signing_key(db.session.execute(_candidates_query(
                now, SigningKey.kid, SigningKey.alg, SigningKey.private_key_encrypted, SigningKey.activates_at,
                SigningKey.created_at)).all(), now)
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

    def sign_with_kid(self, claims: dict) -> tuple[str, str]:
        """The signed token and the kid of the key that signed it."""
        key = self.signing_key()
        return key.signer.sign(claims), key.kid

    # --- verification ----------------------------------------------------------------------

    def verified_claims(self, token: str) -> dict | None:
        """Claims of a token string whose signature this process already verified."""
        self._sync()
        claims = self._verified.get(token)
        if claims is not None:
            try:
                self._verified.move_to_end(token)
            except KeyError:  # evicted by another thread meanwhile
                pass
        return claims

    def remember_verified(self, token: str, claims: dict) -> None:
        with self._lock:
            if getattr(claims, "kid", None) in self._withdrawn:
                return
            self._verified[token] = claims
            if len(self._verified) > self.VERIFIED_CACHE_SIZE:
                self._verified.popitem(last=False)

    def verification_key(self, kid: str) -> tuple[Any, str, int | None] | None:
        """(public key, alg, retired_at) of a signing key that is not withdrawn, or None."""
        self._sync()
        entry = self._public.get(kid)
        if entry is not None:
            return entry
        if kid in self._withdrawn:
            return None
        row = db.session.execute(
            select(SigningKey.public_jwk, SigningKey.alg, SigningKey.retired_at, SigningKey.withdrawn_at)
            .where(SigningKey.kid == kid)
        ).first()
        if row is None:
            return None
        if row.withdrawn_at is not None:
            with self._lock:
                self._withdrawn.add(kid)
            return None
        entry = (load_public_jwk(row.public_jwk).key, row.alg, row.retired_at)
        with self._lock:
            if len(self._public) > 1000:
                self._public.clear()
            self._public[kid] = entry
        return entry

    def _sync(self) -> None:
        """Every `refresh` seconds: the retirement of cached keys, and keys withdrawn since (one small query)."""
        now = clock.now()
        if now - self._synced_at < self._refresh:
            return
        with self._lock:
            if now - self._synced_at < self._refresh:
                return
            wanted = [SigningKey.withdrawn_at.is_not(None)]
            if self._public:
                wanted.append(SigningKey.kid.in_(list(self._public)))
            rows = db.session.execute(
                select(SigningKey.kid, SigningKey.retired_at, SigningKey.withdrawn_at).where(or_(*wanted))
            ).all()
            newly = {r.kid for r in rows if r.withdrawn_at is not None} - self._withdrawn
            for r in rows:
                entry = self._public.get(r.kid)
                if entry is not None and r.withdrawn_at is None and entry[2] != r.retired_at:
                    self._public[r.kid] = (entry[0], entry[1], r.retired_at)
            if newly:
                self._forget(newly)
            self._synced_at = now

    def _forget(self, kids: set[str]) -> None:
        """Drop withdrawn keys: their parsed public keys, the tokens verified with them and, when one
        of them is the cached signing key, that key. Called with the lock held."""
        self._withdrawn |= kids
        for kid in kids:
            self._public.pop(kid, None)
        doomed = [token for token, claims in self._verified.items() if getattr(claims, "kid", None) in kids]
        for token in doomed:
            self._verified.pop(token, None)
        if self._current is not None and self._current.kid in kids:
            self._current = None
