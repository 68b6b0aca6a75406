"""The application's services: what the app factory builds once per process and every door uses —
the settings, the signing-key ring, the replay cache, the rate limiter, the token issuance, the key
fetcher, the last-used recorder, the metrics and Redis. Doors and services reach them through
`app_services()`, never through each other."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..access_tokens import KeyRing
from ..circuit import RedisCircuit
from ..config import Settings
from ..keyfetch import KeyFetcher
from ..last_used import LastUsedRecorder
from ..observability import Metrics
from ..ratelimit import RateLimits
from ..replay import ReplayCache
from .token_issuance import TokenIssuance

EXTENSION = "authserver.services"


@dataclass(frozen=True)
class AppServices:
    settings: Settings
    keyring: KeyRing
    replay: ReplayCache
    rate_limiter: RateLimits
    issuance: TokenIssuance
    key_fetcher: KeyFetcher
    last_used: LastUsedRecorder
    metrics: Metrics
    redis: Any  # a redis.Redis client, or None without AUTHSERVER_REDIS_URL
    redis_circuit: RedisCircuit


def app_services() -> AppServices:
    """The current application's services (inside an application context)."""
    from flask import current_app

    services: AppServices = current_app.extensions[EXTENSION]
    return services
