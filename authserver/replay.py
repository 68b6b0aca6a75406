"""Single use of assertion jti values (RFC 7523 §3 item 7), scoped to the client.

Recorded only after the signature verified, kept until the assertion expires (plus clock skew).
The database cache inserts into a table with a unique key inside the token transaction, so two
identical assertions racing each other yield exactly one token. The Redis cache uses SET NX and
fails closed: when Redis cannot answer, no token is issued. Either way a jti whose token was not
stored is released again (`forget`), so the client can send the same assertion once more."""
from __future__ import annotations

from typing import Protocol

from . import clock, token_store


class AssertionReplayed(Exception):
    pass


class ReplayCacheUnavailable(Exception):
    pass


class ReplayCache(Protocol):
    def remember(self, client_id: str, jti: str, expires_at: int) -> None:
        """Record the jti as used; AssertionReplayed if it already was, ReplayCacheUnavailable if
        the cache cannot answer."""

    def forget(self, client_id: str, jti: str) -> None:
        """Release a jti whose token could not be stored (the token transaction rolled back)."""


class DatabaseReplayCache:
    def remember(self, client_id: str, jti: str, expires_at: int) -> None:
        """Adds the jti to the request's transaction: it commits or rolls back with the token."""
        try:
            token_store.insert_used_jti(client_id, jti, expires_at)
        except token_store.Duplicate:
            raise AssertionReplayed() from None

    def forget(self, client_id: str, jti: str) -> None:
        """Nothing to do: the jti was inserted in the token's transaction, which rolls back with it."""


class RedisReplayCache:
    def __init__(self, redis_client, circuit, prefix: str = "authserver:jti:"):
        self._redis = redis_client
        self._circuit = circuit
        self._prefix = prefix

    def remember(self, client_id: str, jti: str, expires_at: int) -> None:
        import redis

        ttl = max(expires_at - clock.now(), 1)
        try:
            with self._circuit.guard():
                stored = self._redis.set(f"{self._prefix}{client_id}:{jti}", b"1", nx=True, ex=ttl)
        except redis.RedisError as exc:
            raise ReplayCacheUnavailable(str(exc)) from None
        if not stored:
            raise AssertionReplayed()

    def forget(self, client_id: str, jti: str) -> None:
        """Best effort: if Redis cannot answer either, the jti stays used until the assertion
        expires (the client then needs a new assertion). docs/deployment.md measures this window."""
        import redis

        try:
            with self._circuit.guard():
                self._redis.delete(f"{self._prefix}{client_id}:{jti}")
        except redis.RedisError:
            pass
