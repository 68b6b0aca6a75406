"""Access tokens: issuance (RFC 9068), records for introspection (RFC 7662) and revocation (RFC 7009)."""
from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import NamedTuple

from sqlalchemy import String, and_, bindparam, delete, func, insert, select, text, update

from .. import clock, store
from ..extensions import db
from ..store import Prepared
from ..models import AccessToken, Account, SigningKey, UsedAssertion
from .common import current_settings

_SUBJECT_QUERY = Prepared(select(Account.account_id).where(
    Account.account_id == bindparam("sub"),
    Account.org_id == bindparam("org"),
    Account.disabled_at.is_(None),
))
_INSERT_TOKEN = Prepared(insert(AccessToken).values({c.name: bindparam(c.name) for c in AccessToken.__table__.columns}))
# The record, its account's state and the state of the key that signed it, in one statement: the key
# the record names, or for a record older than that column, the key that verified the token.
_RECORD_QUERY = Prepared(
    select(
        AccessToken.jti, AccessToken.client_id, AccessToken.account_id, AccessToken.scope, AccessToken.audience,
        AccessToken.issued_at, AccessToken.expires_at, AccessToken.revoked_at, Account.disabled_at, Account.org_id,
        AccessToken.kid, SigningKey.withdrawn_at,
    )
    .join(Account, Account.account_id == AccessToken.account_id)
    .outerjoin(SigningKey, SigningKey.kid == func.coalesce(AccessToken.kid, bindparam("kid", type_=String)))
    .where(AccessToken.jti == bindparam("jti"))
)


class TokenRecord(NamedTuple):
    jti: str
    client_id: str
    account_id: str
    scope: str
    audience: str
    issued_at: int
    expires_at: int
    revoked_at: int | None
    disabled_at: int | None
    org_id: str  # the organization of the token's subject, which is always the client's
    kid: str | None  # the key that signed it (None: issued before the server recorded it)
    key_withdrawn_at: int | None  # set when that key was withdrawn: the token is no longer valid


@dataclass(frozen=True)
class IssuedToken:
    access_token: str
    expires_in: int
    scope: str
    jti: str
    record: dict  # the row save_access_token stores


def is_active_subject(org_id: str, account_id: str) -> bool:
    """An account may be the subject of a new token only while active and in the client's organization."""
    return store.fetch_one(_SUBJECT_QUERY, {"sub": account_id, "org": org_id}) is not None


def mint_access_token(*, client_id: str, secret_id: str | None, account_id: str, org_id: str, audience: str, scope: str,
                      sign) -> IssuedToken:
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
    return IssuedToken(access_token=access_token, expires_in=settings.access_token_ttl, scope=scope, jti=jti, record=record)


def save_access_token(issued: IssuedToken) -> None:
    """Add the token's record to the request's transaction (the caller commits)."""
    store.run(_INSERT_TOKEN, issued.record)


def find_token_record(jti: str, kid: str | None = None):
    """The stored record of a token with the state of its account, or None: unknown, its client was
    deleted, or the key that signed it was withdrawn (its tokens are no longer this server's word).
    `kid` is the key that verified the token; a record naming another key is not this token's."""
    row = store.fetch_one(_RECORD_QUERY, {"jti": jti, "kid": kid})
    if row is None:
        return None
    record = TokenRecord(*row)
    if record.key_withdrawn_at is not None or (kid is not None and record.kid is not None and record.kid != kid):
        return None
    return record


def active_token_record(claims: dict):
    """The record of a token whose signature and expiry were already checked, if it is still active
    (RFC 7662 §2.2): known, signed by a key that was not withdrawn, not revoked, its client not
    deleted, its account not disabled, not expired."""
    record = find_token_record(claims["jti"], getattr(claims, "kid", None))
    if record is None or record.revoked_at is not None or record.disabled_at is not None:
        return None
    if record.expires_at <= clock.now():
        return None
    return record


def revoke_token(jti: str) -> None:
    db.session.execute(
        update(AccessToken).where(and_(AccessToken.jti == jti, AccessToken.revoked_at.is_(None))).values(revoked_at=clock.now())
    )
    db.session.commit()


PURGE_LOCK_KEY = 0x61757468_70757267  # "authpurg": the PostgreSQL advisory lock of the background purge


class PurgeLeader:
    """Which purger of a deployment purges: on PostgreSQL the one holding a session-level advisory
    lock, kept on a connection of its own for as long as it runs (when it dies, its session ends and
    another purger takes over at its next round); on SQLite (one host) always this one."""

    def __init__(self):
        self._conn = None

    def is_leader(self) -> bool:
        if db.engine.dialect.name != "postgresql":
            return True
        try:
            if self._conn is not None:
                self._conn.execute(text("SELECT 1")).scalar()
                return True
            conn = db.engine.connect()
            if conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": PURGE_LOCK_KEY}).scalar():
                conn.commit()
                self._conn = conn
                return True
            conn.close()
            return False
        except Exception:
            self.close()
            raise

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()  # the session ends, and the lock with it
            except Exception:  # already broken
                pass


def purge_expired(batch: int = 10000) -> dict:
    """Delete expired token records (in batches, to keep locks short) and expired assertion ids.
    Run by `authserver purge` and the background purger, never on the request path."""
    cutoff = clock.now() - current_settings().clock_skew
    purged_tokens = 0
    while True:
        doomed = select(AccessToken.jti).where(AccessToken.expires_at < cutoff).limit(batch).scalar_subquery()
        count = db.session.execute(delete(AccessToken).where(AccessToken.jti.in_(doomed))).rowcount or 0
        db.session.commit()
        purged_tokens += count
        if count < batch:
            break
    purged_jtis = db.session.execute(delete(UsedAssertion).where(UsedAssertion.expires_at < cutoff)).rowcount or 0
    db.session.commit()
    return {"access_tokens": purged_tokens, "used_assertions": purged_jtis}
