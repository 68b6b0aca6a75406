"""Paths, constants and small helpers shared by the benchmark's modules."""
from __future__ import annotations

import os
import sys
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
WRK_DIR = BENCH_DIR / "wrk"
RESULTS_DIR = BENCH_DIR / "results"
BIN_DIR = Path(sys.executable).parent

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
CLK_TCK = os.sysconf("SC_CLK_TCK")
DEFAULT_POSTGRES = "postgresql://root@127.0.0.1:5432/postgres"
# Where the oidc-provider peer (the speed anchor) is usually checked out and installed: beside the repository.
DEFAULT_PEER = ROOT.parent / "shared" / "peers" / "oidc"
BENCH_TOKEN_RATE_LIMIT = 100_000_000  # token requests per client per minute

# The performance targets of the token path: JWT-bearer grant, ES256 access tokens, SQLite,
# 2 workers, concurrency 16.
TARGET_RATIO = 4.0
TARGET_CPU_MS = 0.6
TARGET_P99_MS = 25.0
TARGET_INTROSPECT_RATIO = 3.0


class BenchError(RuntimeError):
    """A step of the benchmark failed; the message says which and why."""


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)


def short(value: str) -> str:
    return value[:8] + "…" if len(value) > 8 else value
