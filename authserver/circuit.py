"""A circuit breaker for Redis: once a call fails (a refused connection, or a hung Redis reaching the
socket timeout), further calls fail at once for a cool-down period instead of each waiting for the
timeout again; then one call tries Redis again. So a hung Redis costs one timeout per cool-down and
per worker, not one per request, and requests that need no Redis never wait on it."""
from __future__ import annotations

import functools
import time
from collections.abc import Iterator
from contextlib import contextmanager


@functools.cache
def circuit_open() -> type[Exception]:
    """The error of a call refused while the circuit is open: a redis ConnectionError, so callers handle
    it as any Redis failure. Made on first use: the redis package is imported only where Redis is used."""
    import redis

    class CircuitOpen(redis.ConnectionError):
        """Redis failed moments ago: not tried again until the cool-down has passed."""

    return CircuitOpen


class RedisCircuit:
    def __init__(self, cooldown: float = 5.0):
        self.cooldown = cooldown
        self._open_until = 0.0

    @property
    def is_open(self) -> bool:
        return time.monotonic() < self._open_until

    @contextmanager
    def guard(self) -> Iterator[None]:
        """Run a Redis call: refused at once while open; a failure opens the circuit."""
        import redis

        if self.is_open:
            raise circuit_open()("Redis failed moments ago; not retried before the cool-down ends.")
        try:
            yield
        except redis.RedisError as exc:
            from .outages import note_outage

            self._open_until = time.monotonic() + self.cooldown
            note_outage("redis", exc)
            raise
        self._open_until = 0.0
