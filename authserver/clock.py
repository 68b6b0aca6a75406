"""The one clock of the server: every rule that looks at time asks here, so tests can move it."""
from __future__ import annotations

import time
from datetime import UTC, datetime

_offset = 0.0


def now() -> int:
    """Seconds since the epoch, as stored in the database."""
    return int(time.time() + _offset)


def shift(seconds: float) -> None:
    """Move the clock (tests only)."""
    global _offset
    _offset += seconds


def reset() -> None:
    global _offset
    _offset = 0.0


def isoformat(timestamp: int | None) -> str | None:
    if timestamp is None:
        return None
    return datetime.fromtimestamp(timestamp, tz=UTC).isoformat().replace("+00:00", "Z")
