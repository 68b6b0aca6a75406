"""Access-token records: their state for introspection (RFC 7662), revocation (RFC 7009), and the purge
of expired ones. Minting and decoding the tokens themselves is access_tokens.py."""
from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select, text

from .. import clock, store, token_store
from ..extensions import db
from ..models import AccessToken, UsedAssertion
from .common import affected_rows, current_settings


def find_token_record(jti: str, kid: str | None = None) -> token_store.TokenRecord | None:
    """The stored record of a token with the state of its account, or None: unknown, its client was
    deleted, or the key that signed it was withdrawn (its tokens are no longer this server's word).
    `kid` is the key that verified the token; a record naming another key is not this token's."""
    record = token_store.token_record(jti, kid)
    if record is None:
        return None
    if record.key_withdrawn_at is not None or (kid is not None and record.kid is not None and record.kid != kid):
        return None
    return record


def active_token_record(claims: dict[str, Any]) -> token_store.TokenRecord | None:
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
    """RFC 7009: the record is marked revoked (once; a second revocation changes nothing)."""
    with store.write_section():
        try:
            token_store.revoke(jti, clock.now())
            store.commit()
        except BaseException:
            store.rollback()
            raise


PURGE_LOCK_KEY = 0x61757468_70757267  # "authpurg": the PostgreSQL advisory lock of the background purge


class PurgeLeader:
    """Which purger of a deployment purges: on PostgreSQL the one holding a session-level advisory
    lock, kept on a connection of its own for as long as it runs (when it dies, its session ends and
    another purger takes over at its next round); on SQLite (one host) always this one."""

    def __init__(self) -> None:
        self._conn: Any = None

    def is_leader(self) -> bool:
        if db.engine.dialect.name != "postgresql":
            return True
        try:
            if self._conn is not None:
                self._conn.execute(text("SELECT 1")).scalar()
                # never left idle in a transaction (the lock is the session's, not the transaction's)
                self._conn.commit()
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


def purge_expired(batch: int = 10000) -> dict[str, Any]:
    """Delete expired token records (in batches, to keep locks short) and expired assertion ids.
    Run by `authserver purge` and the background purger, never on the request path."""
    cutoff = clock.now() - current_settings().clock_skew
    purged_tokens = 0
    while True:
        doomed = select(AccessToken.jti).where(AccessToken.expires_at < cutoff).limit(batch).scalar_subquery()
        count = affected_rows(delete(AccessToken).where(AccessToken.jti.in_(doomed)))
        db.session.commit()
        purged_tokens += count
        if count < batch:
            break
    purged_jtis = affected_rows(delete(UsedAssertion).where(UsedAssertion.expires_at < cutoff))
    db.session.commit()
    from .sessions import purge_expired_sessions  # console sessions past their lifetime or idle timeout

    return {
        "access_tokens": purged_tokens,
        "used_assertions": purged_jtis,
        "console_sessions": purge_expired_sessions(),
    }
