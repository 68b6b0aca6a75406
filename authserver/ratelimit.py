"""Fixed-window rate limits shared by every worker and host: in Redis when configured, else in the database."""
from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from typing import Any, Protocol, cast

from sqlalchemy import CursorResult, delete

from . import clock, store, token_store
from .extensions import db
from .models import RateLimitCounter

log = logging.getLogger(__name__)
WINDOW = 60  # seconds


@dataclass(frozen=True)
class RateDecision:
    allowed: bool
    retry_after: int = 0


ALLOWED = RateDecision(True)


def _bucket(key: str, now: int) -> tuple[str, int]:
    if len(key) > 120 or not key.isprintable():
        # Keys carry caller-supplied text (an email, a client id): long or odd ones are hashed, so a
        # bucket always fits its column and never holds a character the database refuses.
        key = "h:" + hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()
    start = now - now % WINDOW
    return f"{key}@{start}", start + WINDOW


class RateLimiter(Protocol):
    def hit(self, key: str, limit: int, *, commit: bool = True) -> RateDecision:
        """Count one event; refused once the window holds more than `limit` events."""

    def exceeded(self, key: str, limit: int) -> RateDecision:
        """Whether the window already holds more than `limit` events (counts nothing)."""

    def purge(self) -> int:
        """Delete expired windows; how many went."""


class DatabaseRateLimiter:
    def exceeded(self, key: str, limit: int) -> RateDecision:
        """Whether the current window already holds more than `limit` events (counts nothing)."""
        if limit <= 0:
            return ALLOWED
        now = clock.now()
        bucket, expires_at = _bucket(key, now)
        count = token_store.count_read(bucket)
        return RateDecision(True) if count <= limit else RateDecision(False, expires_at - now)

    def hit(self, key: str, limit: int, *, commit: bool = True) -> RateDecision:
        """Count one event; refuse once the window holds more than `limit` events.
        With commit=False the count joins the request's transaction."""
        if limit <= 0:
            return ALLOWED
        now = clock.now()
        bucket, expires_at = _bucket(key, now)
        count = token_store.count_hit(bucket, expires_at)
        if commit:
            store.commit()
        return RateDecision(True) if count <= limit else RateDecision(False, expires_at - now)

    def purge(self) -> int:
        result = cast(
            "CursorResult[Any]",
            db.session.execute(delete(RateLimitCounter).where(RateLimitCounter.expires_at < clock.now())),
        )
        db.session.commit()
        return result.rowcount or 0


class RedisRateLimiter:
    """Counters in Redis. When Redis cannot answer, limits are not enforced (they protect capacity,
    not correctness) and the failure is logged; replay protection, by contrast, fails closed."""

    def __init__(self, redis_client: Any, circuit: Any, prefix: str = "authserver:rl:") -> None:
        self._redis = redis_client
        self._circuit = circuit
        self._prefix = prefix

    def hit(self, key: str, limit: int, *, commit: bool = True) -> RateDecision:
        import redis

        if limit <= 0:
            return ALLOWED
        now = clock.now()
        bucket, expires_at = _bucket(key, now)
        try:
            with self._circuit.guard():
                pipe = self._redis.pipeline(transaction=False)
                pipe.incr(self._prefix + bucket)
                pipe.expireat(self._prefix + bucket, expires_at + 1)
                count = pipe.execute()[0]
        except redis.RedisError:  # logged once per outage by the circuit
            return ALLOWED
        return RateDecision(True) if count <= limit else RateDecision(False, expires_at - now)

    def exceeded(self, key: str, limit: int) -> RateDecision:
        import redis

        if limit <= 0:
            return ALLOWED
        now = clock.now()
        bucket, expires_at = _bucket(key, now)
        try:
            with self._circuit.guard():
                count = int(self._redis.get(self._prefix + bucket) or 0)
        except redis.RedisError:  # logged once per outage by the circuit
            return ALLOWED
        return RateDecision(True) if count <= limit else RateDecision(False, expires_at - now)

    def purge(self) -> int:
        return 0
