"""Single use of assertion jti values (RFC 7523 §3 item 7), scoped to the client.

Recorded only after the signature verified, kept until the assertion expires (plus clock skew).
The database cache inserts into a table with a unique key inside the token transaction, so two
identical assertions racing each other yield exactly one token. The Redis cache uses SET NX and
fails closed: when Redis cannot answer, no token is issued."""
from __future__ import annotations

from sqlalchemy import bindparam, insert

from .. import clock, store
from ..models import UsedAssertion
from ..store import Prepared


class AssertionReplayed(Exception):
    pass


class ReplayCacheUnavailable(Exception):
    pass


class DatabaseReplayCache:
    _INSERT = Prepared(insert(UsedAssertion).values(
        client_id=bindparam("client_id"), jti=bindparam("jti"), expires_at=bindparam("expires_at")))

    def remember(self, client_id: str, jti: str, expires_at: int) -> None:
        """Adds the jti to the request's transaction; a reuse raises the DBAPI IntegrityError
        (at once, or when a concurrent inserter commits first)."""
        try:
            store.run(self._INSERT, {"client_id": client_id, "jti": jti, "expires_at": expires_at})
        except store.integrity_error():
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
        """Release a jti whose token could not be stored. Best effort: if Redis cannot answer either,
        the jti stays used until the assertion expires (the client then needs a new assertion)."""
        import redis

        try:
            with self._circuit.guard():
                self._redis.delete(f"{self._prefix}{client_id}:{jti}")
        except redis.RedisError:
            pass
