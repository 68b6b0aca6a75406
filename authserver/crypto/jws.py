"""JWS compact serialization (RFC 7515) on the hot path: each token is parsed once, with C-speed
base64, and signatures are made and checked by PyJWT's algorithm objects (the cryptography
library underneath). Claims are checked by the callers, who know their rules."""
from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass
from typing import Any

from jwt.algorithms import get_default_algorithms

_B64URL = re.compile(r"[A-Za-z0-9_-]*")
_ALGORITHMS = {
    name: algo for name, algo in get_default_algorithms().items() if name != "none" and not name.startswith("HS")
}


class MalformedJWS(ValueError):
    pass


@dataclass(frozen=True)
class CompactJWS:
    header: dict[str, Any]
    claims: dict[str, Any]
    signing_input: bytes
    signature: bytes


def b64url_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(segment: str) -> bytes:
    if len(segment) % 4 == 1 or not _B64URL.fullmatch(segment):
        raise MalformedJWS("not base64url")
    try:
        return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    except (binascii.Error, ValueError):
        raise MalformedJWS("not base64url") from None


def _json_object(data: bytes) -> dict[str, Any]:
    try:
        value = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise MalformedJWS("not JSON") from None
    if not isinstance(value, dict):
        raise MalformedJWS("not a JSON object")
    return value


def parse_compact(token: str) -> CompactJWS:
    """Split and decode a JWS compact serialization; the signature is NOT checked here."""
    parts = token.split(".")
    if len(parts) != 3 or not parts[0]:
        raise MalformedJWS("a JWS compact serialization has three parts")
    header = _json_object(b64url_decode(parts[0]))
    claims = _json_object(b64url_decode(parts[1]))
    signature = b64url_decode(parts[2])
    return CompactJWS(header, claims, f"{parts[0]}.{parts[1]}".encode("ascii"), signature)


def signature_valid(jws: CompactJWS, alg: str, key: Any) -> bool:
    """Whether the signature verifies with `key` under `alg` (an asymmetric algorithm pinned by the caller)."""
    algorithm = _ALGORITHMS.get(alg)
    if algorithm is None or not jws.signature:
        return False
    try:
        return bool(algorithm.verify(jws.signing_input, key, jws.signature))
    except Exception:  # malformed signature bytes for the key type
        return False


class Signer:
    """Signs JWTs with one key; the protected header is encoded once."""

    def __init__(self, alg: str, key: Any, header: dict[str, Any]):
        self._algorithm = _ALGORITHMS[alg]
        self._key = key
        self._prefix = b64url_encode(json.dumps({"alg": alg, **header}, separators=(",", ":")).encode()) + "."

    def sign(self, claims: dict[str, Any]) -> str:
        signing_input = self._prefix + b64url_encode(json.dumps(claims, separators=(",", ":")).encode())
        signature = self._algorithm.sign(signing_input.encode("ascii"), self._key)
        return signing_input + "." + b64url_encode(signature)


def numeric_date(value: Any) -> float | None:
    """An RFC 7519 NumericDate, or None when the value is not one (booleans are not numbers)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        return None
    return value
