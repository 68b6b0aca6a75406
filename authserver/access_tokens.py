"""This server's access tokens (RFC 9068): the per-process ring of signing keys, minting and decoding.

Below the services and the OAuth endpoints, which both use it: token issuance mints, introspection,
revocation and the management API's bearer authentication decode. The keys' lifecycle (rotation,
withdrawal, publication) is services/signing_keys.py.
"""
from __future__ import annotations

import secrets
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, or_, select

from . import clock
from .config import Settings, current_settings
from .crypto.jws import MalformedJWS, Signer, numeric_date, parse_compact, signature_valid
from .crypto.keys import load_public_jwk
from .crypto.signing import decrypt_private_key
from .extensions import db
from .models import SigningKey

ACCESS_TOKEN_JWT_TYP = "at+jwt"  # RFC 9068 §2.1


def token_grace(settings: Settings) -> int:
    """How long after a key stops signing a token it signed may still be live: a worker may sign with
    it for up to the refresh interval after it retired, each token lives the access-token lifetime,
    and clocks of hosts differ by up to the clock skew."""
    return int(settings.access_token_ttl + settings.clock_skew + settings.signing_key_refresh)


def choose_signing_key(candidates: Sequence[Any], now: int) -> Any:
    """The key that signs at `now`. `candidates` are the keys not withdrawn and not yet retired,
    by activates_at, newest first: the newest one whose activation time has come; failing that
    (no key due yet), the one due first."""
    for row in candidates:
        if row.activates_at <= now:
            return row
    return candidates[-1] if candidates else None


def signing_candidates_query(now: int, *columns: Any) -> Select[Any]:
    return (select(*columns)
            .where(SigningKey.withdrawn_at.is_(None), or_(SigningKey.retired_at.is_(None), SigningKey.retired_at > now))
            .order_by(SigningKey.activates_at.desc(), SigningKey.created_at.desc(), SigningKey.kid))


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

    def __init__(self, key_encryption_key: bytes, refresh: int):
        self._kek = key_encryption_key
        self._refresh = refresh
        self._lock = threading.Lock()
        self._current: ActiveSigningKey | None = None
        self._checked_at = -1.0
        self._public: dict[str, tuple[Any, str, int | None]] = {}
        self._withdrawn: set[str] = set()
        self._synced_at = clock.now()
        self._verified: OrderedDict[str, dict[str, Any]] = OrderedDict()

    # --- signing ---------------------------------------------------------------------------

    def signing_key(self) -> ActiveSigningKey:
        now = clock.now()
        current = self._current
        if current is not None and now - self._checked_at < self._refresh:
            return current
        with self._lock:
            row = choose_signing_key(db.session.execute(signing_candidates_query(
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

    def sign(self, claims: dict[str, Any]) -> str:
        return self.signing_key().signer.sign(claims)

    def sign_with_kid(self, claims: dict[str, Any]) -> tuple[str, str]:
        """The signed token and the kid of the key that signed it."""
        key = self.signing_key()
        return key.signer.sign(claims), key.kid

    # --- verification ----------------------------------------------------------------------

    def verified_claims(self, token: str) -> dict[str, Any] | None:
        """Claims of a token string whose signature this process already verified."""
        self._sync()
        claims = self._verified.get(token)
        if claims is not None:
            try:
                self._verified.move_to_end(token)
            except KeyError:  # evicted by another thread meanwhile
                pass
        return claims

    def remember_verified(self, token: str, claims: dict[str, Any]) -> None:
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


@dataclass(frozen=True)
class IssuedToken:
    access_token: str
    expires_in: int
    scope: str
    jti: str
    record: dict[str, Any]  # the row stored for introspection and revocation


def mint_access_token(*, client_id: str, secret_id: str | None, account_id: str, org_id: str, audience: str, scope: str,
                      sign: Callable[[dict[str, Any]], tuple[str, str]]) -> IssuedToken:
    """Sign an RFC 9068 access token. `sign(claims)` returns the token and the kid of the key that
    signed it, which the record keeps. Nothing is written: the caller saves the record in its transaction."""
    settings = current_settings()
    now = clock.now()
    jti = secrets.token_urlsafe(16)
    claims = {
        "iss": settings.issuer,
        "sub": account_id,
        "aud": audience,
        "org_id": org_id,
        "client_id": client_id,
        "scope": scope,
        "jti": jti,
        "iat": now,
        "exp": now + settings.access_token_ttl,
    }
    access_token, kid = sign(claims)
    record = {
        "jti": jti, "client_id": client_id, "account_id": account_id, "secret_id": secret_id, "scope": scope,
        "audience": audience, "issued_at": now, "expires_at": claims["exp"], "revoked_at": None, "kid": kid,
    }
    return IssuedToken(access_token=access_token, expires_in=settings.access_token_ttl, scope=scope, jti=jti,
                       record=record)


class VerifiedClaims(dict[str, Any]):
    """The claims of a verified token, and the `kid` of the key that verified it (checked against the
    token's record: the record names the key that signed it, and a withdrawn key makes it inactive)."""

    __slots__ = ("kid",)

    def __init__(self, claims: dict[str, Any], kid: str):
        super().__init__(claims)
        self.kid = kid


def decode_access_token(token: str, keyring: KeyRing, issuer: str) -> dict[str, Any] | None:
    """Claims of a token this server signed and that has not expired, or None. A resource server
    introspects the same token many times: the signature of a string already verified is not
    checked again (the same bytes verify the same way); expiry is checked on every call. The key ring
    drops what it remembers of a key within its refresh interval after the key is withdrawn."""
    if not isinstance(token, str) or len(token) > 8192:
        return None
    claims = keyring.verified_claims(token)
    if claims is not None:
        return claims if claims["exp"] > clock.now() else None
    claims = _verify_signed_claims(token, keyring, issuer)
    if claims is not None:
        keyring.remember_verified(token, claims)
    return claims


def _verify_signed_claims(token: str, keyring: KeyRing, issuer: str) -> dict[str, Any] | None:
    try:
        jws = parse_compact(token)
    except MalformedJWS:
        return None
    header = jws.header
    kid = header.get("kid")
    if header.get("typ") != ACCESS_TOKEN_JWT_TYP or not isinstance(kid, str) or len(kid) > 64 or not kid.isprintable():
        return None  # kid is looked up in the database, which refuses NUL and lone surrogates
    entry = keyring.verification_key(kid)
    if entry is None:
        return None  # unknown or withdrawn
    key, alg, retired_at = entry
    if header.get("alg") != alg or not signature_valid(jws, alg, key):
        return None
    claims = jws.claims
    # exp is checked against the server clock; iat is not checked at all: another host whose
    # clock runs a little behind the issuer's must not see a fresh token as "not yet valid".
    exp = numeric_date(claims.get("exp"))
    if claims.get("iss") != issuer or exp is None or exp <= clock.now():
        return None
    if retired_at is not None and exp > retired_at + token_grace(current_settings()):
        return None  # a retired key signed nothing that lives this long
    if not all(isinstance(claims.get(name), str) and claims[name].isprintable()
               for name in ("jti", "sub", "client_id")):
        return None
    return VerifiedClaims(claims, kid)
