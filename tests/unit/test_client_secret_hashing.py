"""Client secrets: generation and the stored keyed hash (authserver.crypto.client_secrets)."""
from __future__ import annotations

import math

import pytest

from authserver.crypto.client_secrets import (
    BASE62,
    CHECKSUM_LENGTH,
    CURRENT_SCHEME,
    SECRET_PREFIX,
    candidate_hashes,
    generate_client_secret,
    generate_secret_id,
    hash_client_secret,
    secret_hash_matches,
)

PEPPER = b"unit-test-pepper-0123456789abcdef"


def test_generated_secret_has_at_least_128_bits_and_a_recognisable_prefix():
    secret = generate_client_secret()
    assert secret.startswith(SECRET_PREFIX)
    random_part = secret[len(SECRET_PREFIX):-CHECKSUM_LENGTH]
    assert set(random_part) <= set(BASE62)
    assert len(random_part) * math.log2(len(BASE62)) >= 128


def test_generated_secrets_and_ids_are_unique():
    assert len({generate_client_secret() for _ in range(200)}) == 200
    ids = {generate_secret_id() for _ in range(200)}
    assert len(ids) == 200 and all(i.startswith("sec_") for i in ids)


def test_hash_is_versioned_hmac_sha256_hex_and_not_the_plaintext():
    secret = generate_client_secret()
    stored = hash_client_secret(secret, PEPPER)
    scheme, _, digest = stored.partition("$")
    assert scheme == CURRENT_SCHEME
    assert len(digest) == 64 and int(digest, 16) >= 0
    assert secret not in stored


def test_hash_is_deterministic_for_index_lookup_and_depends_on_the_pepper():
    secret = generate_client_secret()
    assert hash_client_secret(secret, PEPPER) == hash_client_secret(secret, PEPPER)
    assert hash_client_secret(secret, PEPPER) != hash_client_secret(secret, b"another pepper")
    assert candidate_hashes(secret, PEPPER)[0] == hash_client_secret(secret, PEPPER)


def test_matches_only_the_right_secret():
    secret = generate_client_secret()
    stored = hash_client_secret(secret, PEPPER)
    assert secret_hash_matches(secret, stored, PEPPER)
    assert not secret_hash_matches(secret + "x", stored, PEPPER)
    assert not secret_hash_matches(generate_client_secret(), stored, PEPPER)
    assert not secret_hash_matches(secret, stored, b"another pepper")


def test_the_stored_hash_is_not_itself_a_secret():
    secret = generate_client_secret()
    stored = hash_client_secret(secret, PEPPER)
    assert not secret_hash_matches(stored, stored, PEPPER)
    assert not secret_hash_matches(stored.partition("$")[2], stored, PEPPER)


def test_unknown_scheme_never_matches_and_cannot_be_produced():
    secret = generate_client_secret()
    digest = hash_client_secret(secret, PEPPER).partition("$")[2]
    assert not secret_hash_matches(secret, "plain$" + secret, PEPPER)
    assert not secret_hash_matches(secret, "md5$" + digest, PEPPER)
    assert not secret_hash_matches(secret, digest, PEPPER)  # no scheme at all
    with pytest.raises(ValueError):
        hash_client_secret(secret, PEPPER, scheme="plain")


def test_non_ascii_input_is_hashed_not_rejected():
    assert hash_client_secret("sécret\udcff", PEPPER).startswith(CURRENT_SCHEME + "$")
