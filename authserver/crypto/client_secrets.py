"""Client secrets: generated here, stored as a keyed hash.

A secret carries 256 random bits, so a slow password hash adds no security and would cost every
token request tens of milliseconds; HMAC-SHA256 with a server-side pepper is the stored form
(the hash is useless without the pepper, and deterministic so it can be found by an index).

Format (secret scanners match it, the server checks it before any lookup):
``ascs_`` + 43 base62 characters (256 random bits) + 6 base62 characters, the CRC-32 of those 43
characters zero-padded: 54 characters matching ``SECRET_PATTERN``. The checksum proves nothing about
ownership; it only lets a scanner, and the server, tell a real secret from a look-alike offline.
Secrets made before this format (``as_`` + base64url) carry no checksum and are checked the old way.
"""
from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import zlib

SECRET_PREFIX = "ascs_"  # "authserver client secret": lets secret scanners recognise a leaked one
BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
RANDOM_LENGTH = 43  # 62**43 > 2**256: at least 256 bits of entropy
CHECKSUM_LENGTH = 6  # 62**6 > 2**32: any CRC-32 fits
SECRET_LENGTH = len(SECRET_PREFIX) + RANDOM_LENGTH + CHECKSUM_LENGTH
# The regular expression published for secret scanners (README "Secret format").
SECRET_REGEX = r"\bascs_[0-9A-Za-z]{49}\b"
SECRET_PATTERN = re.compile(rf"{re.escape(SECRET_PREFIX)}[0-9A-Za-z]{{{RANDOM_LENGTH + CHECKSUM_LENGTH}}}")
# Kept in clear to tell secrets apart: the last characters, all checksum characters (README Decisions).
HINT_LENGTH = 4
SCHEME_HMAC_SHA256_V1 = "hs256v1"
CURRENT_SCHEME = SCHEME_HMAC_SHA256_V1

# What a presented string is, before anything is looked up.
FORMAT_CURRENT = "current"  # the checksummed format, checksum correct
FORMAT_LEGACY = "legacy"  # no new prefix: may be a secret from before the format; checked the old way
FORMAT_MALFORMED = "malformed"  # the new prefix with a wrong length, alphabet or checksum: never a secret


def _base62(value: int, width: int) -> str:
    digits = []
    while value:
        value, digit = divmod(value, 62)
        digits.append(BASE62[digit])
    return "".join(reversed(digits)).rjust(width, "0")


def secret_checksum(random_part: str) -> str:
    """CRC-32 of the random part (its ASCII bytes), as 6 base62 characters."""
    return _base62(zlib.crc32(random_part.encode("ascii")), CHECKSUM_LENGTH)


def generate_client_secret() -> str:
    random_part = "".join(secrets.choice(BASE62) for _ in range(RANDOM_LENGTH))
    return SECRET_PREFIX + random_part + secret_checksum(random_part)


def secret_format(secret: str) -> str:
    """FORMAT_CURRENT, FORMAT_LEGACY or FORMAT_MALFORMED. Any string with the new prefix must be a
    well-formed secret with a correct checksum; any other string may be a secret from before."""
    if not secret.startswith(SECRET_PREFIX):
        return FORMAT_LEGACY
    if len(secret) != SECRET_LENGTH or not SECRET_PATTERN.fullmatch(secret):
        return FORMAT_MALFORMED
    body = secret[len(SECRET_PREFIX):]
    random_part, checksum = body[:RANDOM_LENGTH], body[RANDOM_LENGTH:]
    if not hmac.compare_digest(secret_checksum(random_part), checksum):
        return FORMAT_MALFORMED
    return FORMAT_CURRENT


def secret_hint(secret: str) -> str:
    """The last HINT_LENGTH characters of a secret in the checksummed format: 4 of its 6 checksum
    characters, which carry at most 24 bits about the 256 random ones."""
    if secret_format(secret) != FORMAT_CURRENT:
        raise ValueError("a hint is kept only for a secret in the checksummed format")
    return secret[-HINT_LENGTH:]


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
