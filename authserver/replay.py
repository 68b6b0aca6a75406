"""Single use of assertion jti values (RFC 7523 §3 item 7), scoped to the client.

Recorded only after the signature verified, kept until the assertion expires (plus clock skew).
The database cache inserts into a table with a unique key inside the token transaction, so two
identical assertions racing each other yield exactly one token. The Redis cache uses SET NX and
fails closed: when Redis cannot answer, no token is issued. Either way a jti whose token was not
stored is released again (`forget`), so the client can send the same assertion once more."""
from __future__ import annotations

from typing import Any, Protocol

from . import clock, token_store


class AssertionReplayed(Exception):
    def __init__(self, in_progress_for: int = 0):
        super().__init__(in_progress_for)
        # > 0: another request is using this jti right now and has not finished; if it fails without
        # releasing it (its worker was killed), the jti is free again after this many seconds.
        self.in_progress_for = in_progress_for


class ReplayCacheUnavailable(Exception):
    pass


class ReplayCache(Protocol):
    # True: a jti is recorded by a row in the token's own transaction, so the token's writes may record it
    # themselves (token_store.record_token) instead of remember().
    in_database: bool

    def remember(self, client_id: str, jti: str, expires_at: int) -> None:
        """Record the jti as used; AssertionReplayed if it already was, ReplayCacheUnavailable if
        the cache cannot answer."""

    def confirm(self, client_id: str, jti: str, expires_at: int) -> None:
        """The token of this jti was stored: keep the jti used until the assertion expires."""

    def forget(self, client_id: str, jti: str) -> None:
        """Release a jti whose token could not be stored (the token transaction rolled back)."""


class DatabaseReplayCache:
    in_database = True

    def remember(self, client_id: str, jti: str, expires_at: int) -> None:
        """Adds the jti to the request's transaction: it commits or rolls back with the token."""
        try:
            token_store.insert_used_jti(client_id, jti, expires_at)
        except token_store.Duplicate:
            raise AssertionReplayed() from None

    def confirm(self, client_id: str, jti: str, expires_at: int) -> None:
        """Nothing to do: the jti committed with the token."""

    def forget(self, client_id: str, jti: str) -> None:
        """Nothing to do: the jti was inserted in the token's transaction, which rolls back with it."""


class RedisReplayCache:
    """Two steps around the token's transaction: before it, SET NX marks the jti *pending* for at most
    `pending_seconds` (the longest the transaction can take: the request deadline plus the statement
    timeout); after it commits, the mark becomes *used* until the assertion expires. A worker killed
    between the two (or before the commit) leaves a pending mark that expires on its own, so the
    assertion can be sent again; docs/deployment.md gives the windows as measured."""

    in_database = False
    PENDING = b"pending"
    USED = b"used"

    def __init__(
        self, redis_client: Any, circuit: Any, pending_seconds: int = 0, prefix: str = "authserver:jti:"
    ) -> None:
        self._redis = redis_client
        self._circuit = circuit
        self._pending_seconds = pending_seconds  # 0: no pending state (the mark lasts as long as the assertion)
        self._prefix = prefix

    def _key(self, client_id: str, jti: str) -> str:
        return f"{self._prefix}{client_id}:{jti}"

    def remember(self, client_id: str, jti: str, expires_at: int) -> None:
        import redis

        ttl = max(expires_at - clock.now(), 1)
        if self._pending_seconds:
            ttl = min(ttl, self._pending_seconds)
        key = self._key(client_id, jti)
        try:
            with self._circuit.guard():
                stored = self._redis.set(key, self.PENDING, nx=True, ex=ttl)
                if stored:
                    return
                pipe = self._redis.pipeline(transaction=False)
                pipe.get(key)
                pipe.ttl(key)
                value, remaining = pipe.execute()
        except redis.RedisError as exc:
            raise ReplayCacheUnavailable(str(exc)) from None
        raise AssertionReplayed(in_progress_for=max(int(remaining), 1) if value == self.PENDING else 0)

    def confirm(self, client_id: str, jti: str, expires_at: int) -> None:
        """Best effort: if Redis cannot answer, the pending mark expires after pending_seconds and the
        assertion, if still unexpired, could then obtain a second token (docs/deployment.md)."""
        import redis

        if not self._pending_seconds:
            return
        ttl = max(expires_at - clock.now(), 1)
        try:
            with self._circuit.guard():
                self._redis.set(self._key(client_id, jti), self.USED, xx=True, ex=ttl)
        except redis.RedisError:
            pass

    def forget(self, client_id: str, jti: str) -> None:
        """Best effort: if Redis cannot answer either, the mark expires on its own."""
        import redis

        try:
            with self._circuit.guard():
                self._redis.delete(self._key(client_id, jti))
        except redis.RedisError:
            pass
