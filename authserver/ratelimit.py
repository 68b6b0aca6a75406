"""Fixed-window rate limits shared by every worker and host: one limiter (`RateLimits`) with named
policies, counting in Redis when configured, else in the database."""
from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from typing import Any, Protocol, cast

from sqlalchemy import CursorResult, delete

from . import clock, store, token_store
from .config import Settings
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


@dataclass(frozen=True)
class RatePolicy:
    """A named limit: at most `limit` events per window for one subject (a client, an address, ...).
    The name prefixes the counter's bucket; a limit of 0 or less turns the policy off."""

    name: str
    limit: int

    def key(self, subject: str) -> str:
        return f"{self.name}:{subject}"


# Console limits (not settings): failed sign-ins are counted per email *and* address together, and per
# address, so nobody can lock a rightful admin out by guessing at their email from elsewhere (a guesser
# spread over many addresses meets argon2id and 12+ characters); wrong current passwords per account,
# so a borrowed session cannot be used to guess the password itself; leak reports per address.
SIGN_IN_FAILURES_PER_EMAIL_AND_ADDRESS = 5
SIGN_IN_FAILURES_PER_ADDRESS = 20
PASSWORD_CHANGE_FAILURES_PER_ACCOUNT = 5
LEAK_REPORTS_PER_ADDRESS = 30  # a scanner reports in batches, a prober gets little


@dataclass(frozen=True)
class RatePolicies:
    """Every limit of the server, by name: the one place a limit and its bucket are defined."""

    token_requests_per_client: RatePolicy
    auth_failures_per_address: RatePolicy
    auth_failures_per_client: RatePolicy
    leak_reports_per_address: RatePolicy
    sign_in_failures_per_address: RatePolicy
    sign_in_failures_per_email_and_address: RatePolicy
    password_change_failures_per_account: RatePolicy

    @classmethod
    def from_settings(cls, settings: Settings) -> RatePolicies:
        return cls(
            token_requests_per_client=RatePolicy("token:client", settings.rate_limit_token_requests_per_client),
            auth_failures_per_address=RatePolicy("authfail:addr", settings.rate_limit_auth_failures_per_address),
            auth_failures_per_client=RatePolicy("authfail:client", settings.rate_limit_auth_failures_per_client),
            leak_reports_per_address=RatePolicy("secretleak:addr", LEAK_REPORTS_PER_ADDRESS),
            sign_in_failures_per_address=RatePolicy("console-signin:addr", SIGN_IN_FAILURES_PER_ADDRESS),
            sign_in_failures_per_email_and_address=RatePolicy("console-signin:pair",
                                                              SIGN_IN_FAILURES_PER_EMAIL_AND_ADDRESS),
            password_change_failures_per_account=RatePolicy("console-password", PASSWORD_CHANGE_FAILURES_PER_ACCOUNT),
        )


class RateCounters(Protocol):
    """Where windows are counted: Redis or the database."""

    def hit(self, key: str, limit: int) -> RateDecision:
        """Count one event; refused once the window holds more than `limit` events."""

    def exceeded(self, key: str, limit: int) -> RateDecision:
        """Whether the window already holds more than `limit` events (counts nothing)."""

    def purge(self) -> int:
        """Delete expired windows; how many went."""

    def window(self, key: str, limit: int) -> token_store.Window | None:
        """The current window of `key` when the database counts it, for a caller that counts the event
        together with its own writes (token_store.record_token); None otherwise (Redis, or no limit)."""


class DatabaseRateLimiter:
    def window(self, key: str, limit: int) -> token_store.Window | None:
        if limit <= 0:
            return None
        bucket, expires_at = _bucket(key, clock.now())
        return token_store.Window(bucket, expires_at, limit)

    def exceeded(self, key: str, limit: int) -> RateDecision:
        """Whether the current window already holds more than `limit` events (counts nothing)."""
        if limit <= 0:
            return ALLOWED
        now = clock.now()
        bucket, expires_at = _bucket(key, now)
        count = token_store.count_read(bucket)
        return RateDecision(True) if count <= limit else RateDecision(False, expires_at - now)

    def hit(self, key: str, limit: int) -> RateDecision:
        """Count one event; refuse once the window holds more than `limit` events.
        The count commits at once (the token path counts with its own writes instead: window())."""
        if limit <= 0:
            return ALLOWED
        now = clock.now()
        bucket, expires_at = _bucket(key, now)
        count = token_store.count_hit(bucket, expires_at)
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

    def hit(self, key: str, limit: int) -> RateDecision:
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

    def window(self, key: str, limit: int) -> token_store.Window | None:
        return None  # counted in Redis, not with the database's writes


class RateLimits:
    """The server's one rate limiter: its named policies over the deployment's counters."""

    def __init__(self, counters: RateCounters, policies: RatePolicies) -> None:
        self.counters = counters
        self.policies = policies

    def hit(self, policy: RatePolicy, subject: str) -> RateDecision:
        """Count one event of `subject` under `policy`; refused once the window holds more than the limit.
        Database counters commit the count at once: a transaction that must count with its own writes
        asks window_in_database() instead."""
        return self.counters.hit(policy.key(subject), policy.limit)

    def window_in_database(self, policy: RatePolicy, subject: str) -> token_store.Window | None:
        """The window of `subject` under `policy` when the database counts it, so the caller counts the
        event with its own writes and then asks `decide`; None when hit() must count it (Redis, no limit)."""
        return self.counters.window(policy.key(subject), policy.limit)

    @staticmethod
    def decide(window: token_store.Window, count: int) -> RateDecision:
        """The decision on an event counted in `window`, which then holds `count` events."""
        return ALLOWED if count <= window.limit else RateDecision(False, window.expires_at - clock.now())

    def used_up(self, policy: RatePolicy, subject: str) -> RateDecision:
        """Refused when the window already holds `limit` events, so one more would exceed it (counts nothing)."""
        if policy.limit <= 0:
            return ALLOWED
        return self.counters.exceeded(policy.key(subject), policy.limit - 1)

    def purge(self) -> int:
        return self.counters.purge()
