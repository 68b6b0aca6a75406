"""Client secrets: generated here, stored as a keyed hash.

A secret carries 256 random bits, so a slow password hash adds no security and would cost every
token request tens of milliseconds; HMAC-SHA256 with a server-side pepper is the stored form
(the hash is useless without the pepper, and deterministic so it can be found by an index).
"""
from __future__ import annotations

import hashlib
import hmac
import secrets

SECRET_PREFIX = "as_"  # lets secret scanners recognise a leaked authserver secret
SECRET_BYTES = 32
SCHEME_HMAC_SHA256_V1 = "hs256v1"
CURRENT_SCHEME = SCHEME_HMAC_SHA256_V1


def generate_client_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(SECRET_BYTES)


def generate_secret_id() -> str:
    return "sec_" + secrets.token_hex(10)


def hash_client_secret(secret: str, pepper: bytes, scheme: str = CURRENT_SCHEME) -> str:
    if scheme != SCHEME_HMAC_SHA256_V1:
        raise ValueError(f"unknown secret hash scheme {scheme!r}")
    digest = hmac.new(pepper, secret.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()
    return f"{scheme}${digest}"


def candidate_hashes(secret: str, pepper: bytes) -> list[str]:
    """Every stored form the presented secret could have, newest scheme first."""
    return [hash_client_secret(secret, pepper, CURRENT_SCHEME)]


def secret_hash_matches(secret: str, stored_hash: str, pepper: bytes) -> bool:
    scheme, _, _ = stored_hash.partition("$")
    try:
        expected = hash_client_secret(secret, pepper, scheme)
    except ValueError:
        return False
    return hmac.compare_digest(expected, stored_hash)
