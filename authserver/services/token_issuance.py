"""Issuing an access token: the one transaction of the token path.

The JWT bearer grant (oauth/grants.py) validates the request — client, assertion, subject, API,
scope — and hands the result here. This service signs the token, then in one transaction counts the
request against the client's rate limit, uses up the assertion's jti and stores the token record:
all of it commits, or none of it does. A jti recorded outside the database (Redis) is released when
the transaction fails, so a client whose request got no token can send the same assertion again
(RFC 7523 §3 single use means one *token* per assertion, not one attempt).

Errors are domain exceptions; each door maps them (the OAuth endpoints to RFC 6749 §5.2 errors)."""
from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .. import store, token_store
from ..access_tokens import IssuedToken, mint_access_token
from ..config import Settings
from ..ratelimit import RateLimits
from ..replay import AssertionReplayed, ReplayCache, ReplayCacheUnavailable

__all__ = [
    "AssertionReplayed", "ClientAssertionReplayed", "DeadlinePassed", "ReplayCacheUnavailable", "TokenIssuance",
    "TokenOrder", "TokenRateLimited", "client_assertion_replay_key", "is_active_subject", "trusted_issuer_replay_key",
]


class TokenRateLimited(Exception):
    def __init__(self, retry_after: int):
        super().__init__(retry_after)
        self.retry_after = retry_after


class ClientAssertionReplayed(Exception):
    """The client assertion (private_key_jwt) was already used; in_progress_for as in AssertionReplayed."""

    def __init__(self, in_progress_for: int = 0):
        super().__init__(in_progress_for)
        self.in_progress_for = in_progress_for


# Client assertions are single-use in a scope of their own, never confused with grant assertions: the
# same replay cache, with the jti recorded as this prefix plus its SHA-256. The prefix starts with a
# control character, which no grant assertion's jti may hold (it must be printable), and the hash keeps
# any jti within the column's length.
CLIENT_ASSERTION_REPLAY_PREFIX = "\x1fclient_assertion:"


def client_assertion_replay_key(jti: str) -> str:
    return CLIENT_ASSERTION_REPLAY_PREFIX + hashlib.sha256(jti.encode("utf-8", "surrogatepass")).hexdigest()


# A trusted issuer's assertions are single-use per issuer, whichever allowed client presents them: the
# issuer's id is the replay scope, and the jti is recorded like a client assertion's, with a prefix of its own.
TRUSTED_ISSUER_REPLAY_PREFIX = "\x1ftrusted_issuer:"


def trusted_issuer_replay_key(jti: str) -> str:
    return TRUSTED_ISSUER_REPLAY_PREFIX + hashlib.sha256(jti.encode("utf-8", "surrogatepass")).hexdigest()


class DeadlinePassed(Exception):
    """The request ran past its deadline: the transaction was rolled back, nothing was issued."""


@dataclass(frozen=True)
class TokenOrder:
    """A validated token request: who gets a token for what, on the strength of which assertion."""

    client_id: str
    org_id: str
    secret_id: str | None  # the secret the client authenticated with (None: another method)
    account_id: str  # the token's sub
    audience: str  # the API identifier
    scope: str
    jti: str | None  # the assertion's, used up by this token (None: a trusted issuer's assertion without one)
    assertion_expires_at: int
    # private_key_jwt: the client assertion's jti, used up by this token too (None: a secret was used)
    client_assertion_jti: str | None = None
    client_assertion_expires_at: int = 0
    # A trusted issuer's assertion (workload identity federation): its jti is used up in the issuer's scope.
    issuer_id: str | None = None


def is_active_subject(org_id: str, account_id: str) -> bool:
    """An account may be the subject of a new token only while active and in the client's organization."""
    return token_store.is_active_subject(org_id, account_id)


class TokenIssuance:
    def __init__(self, settings: Settings, replay: ReplayCache, rate_limiter: RateLimits,
                 sign: Callable[[dict[str, Any]], tuple[str, str]]):
        self._settings = settings
        self._replay = replay
        self._limiter = rate_limiter
        self._sign = sign

    def issue(self, order: TokenOrder, started: float | None = None) -> IssuedToken:
        """Sign and record a token. `started` (time.perf_counter() at the request's start) bounds the
        request: past `request_deadline_seconds` the transaction rolls back instead of committing,
        since the client has most likely given up. Raises TokenRateLimited, AssertionReplayed,
        ReplayCacheUnavailable, DeadlinePassed, or the database's own error (nothing stored)."""
        settings = self._settings
        # Everything slow (signing) happens before the write burst, so the write lock is held briefly.
        issued = mint_access_token(
            client_id=order.client_id, secret_id=order.secret_id, account_id=order.account_id, org_id=order.org_id,
            audience=order.audience, scope=order.scope, sign=self._sign,
        )
        jti_expires = order.assertion_expires_at + settings.clock_skew
        used: list[tuple[str, str, int]] = []  # (replay scope, replay key, kept until) of each jti used up
        if order.client_assertion_jti is not None:
            used.append((order.client_id, client_assertion_replay_key(order.client_assertion_jti),
                         order.client_assertion_expires_at + settings.clock_skew))
        if order.issuer_id is None:
            assert order.jti is not None  # the client's own assertions always carry one (checked by the grant)
            used.append((order.client_id, order.jti, jti_expires))
        elif order.jti is not None:
            used.append((order.issuer_id, trusted_issuer_replay_key(order.jti), jti_expires))
        deadline = settings.request_deadline_seconds
        policy = self._limiter.policies.token_requests_per_client
        with store.write_section():
            remembered: list[tuple[str, str]] = []
            try:
                # A window the database counts is counted by the token's own writes below; else (Redis, or
                # no limit: nothing written here) now.
                window = self._limiter.window_in_database(policy, order.client_id)
                if window is None:
                    decision = self._limiter.hit(policy, order.client_id)
                    if not decision.allowed:
                        raise TokenRateLimited(decision.retry_after)
                # jtis in the database are used up by the token's own writes below; elsewhere (Redis) now.
                recorded_here = used if self._replay.in_database else []
                for scope, key, until in ([] if self._replay.in_database else used):
                    try:  # the client assertion first: a replayed one fails authentication
                        self._replay.remember(scope, key, until)
                    except AssertionReplayed as exc:
                        if key.startswith(CLIENT_ASSERTION_REPLAY_PREFIX):
                            raise ClientAssertionReplayed(exc.in_progress_for) from None
                        raise
                    remembered.append((scope, key))
                recorded = token_store.record_token(issued.record, window, recorded_here)
                if window is not None:
                    decision = self._limiter.decide(window, recorded.counted or 0)
                    if not decision.allowed:
                        raise TokenRateLimited(decision.retry_after)
                for _, key, _ in recorded_here:  # in the same order: the client assertion's jti first
                    if key not in recorded.used:
                        if key.startswith(CLIENT_ASSERTION_REPLAY_PREFIX):
                            raise ClientAssertionReplayed()
                        raise AssertionReplayed()
                if deadline and started is not None and time.perf_counter() - started > deadline:
                    raise DeadlinePassed()
                store.commit()
            except BaseException as exc:
                self._abandon(remembered)
                if isinstance(exc, store.integrity_error()):
                    # A concurrent request with the same jti committed first (database replay cache).
                    raise AssertionReplayed() from None
                raise
        for scope, key, until in used:
            self._replay.confirm(scope, key, until)
        return issued

    def use_client_assertion(self, client_id: str, jti: str, expires_at: int) -> None:
        """Use up a client assertion's jti at once (private_key_jwt at introspection and revocation, which
        issue nothing to commit it with). Raises ClientAssertionReplayed or ReplayCacheUnavailable."""
        key = client_assertion_replay_key(jti)
        until = expires_at + self._settings.clock_skew
        with store.write_section():
            remembered: list[tuple[str, str]] = []
            try:
                self._replay.remember(client_id, key, until)
                remembered.append((client_id, key))
                store.commit()
            except BaseException as exc:
                self._abandon(remembered)
                if isinstance(exc, AssertionReplayed):
                    raise ClientAssertionReplayed(exc.in_progress_for) from None
                if isinstance(exc, store.integrity_error()):  # a concurrent use committed first
                    raise ClientAssertionReplayed() from None
                raise
        self._replay.confirm(client_id, key, until)

    def _abandon(self, remembered: list[tuple[str, str]]) -> None:
        """Roll the transaction back and release the jtis recorded outside it (Redis), so the client can
        send the same assertions again: they obtained nothing."""
        try:
            store.rollback()
        except Exception:  # the connection is gone, and its transaction with it
            pass
        for scope, key in remembered:
            self._replay.forget(scope, key)
