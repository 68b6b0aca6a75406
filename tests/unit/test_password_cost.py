"""The service hashes passwords with argon2id at the cost RFC 9106 recommends for memory-constrained
hosts (the test process swaps in a cheaper hasher: tests/conftest.py)."""
from argon2 import PasswordHasher, Type, extract_parameters, profiles

from authserver.services import accounts

from .. import conftest


def test_the_service_hasher_is_argon2id_with_rfc_9106_low_memory_parameters():
    hasher = conftest.PRODUCTION_PASSWORD_HASHER
    assert isinstance(hasher, PasswordHasher) and hasher is not accounts._password_hasher
    stored = extract_parameters(hasher.hash("correct horse battery staple"))
    assert stored.type is Type.ID
    low_memory = profiles.RFC_9106_LOW_MEMORY
    assert (stored.time_cost, stored.memory_cost, stored.parallelism) == (
        low_memory.time_cost, low_memory.memory_cost, low_memory.parallelism) == (3, 65536, 4)


def test_a_hash_made_at_the_service_cost_still_verifies_in_the_test_process():
    """Hashes carry their parameters: an account hashed by a server at full cost signs in here too."""
    stored = conftest.PRODUCTION_PASSWORD_HASHER.hash("correct horse battery staple")
    assert accounts._password_hasher.verify(stored, "correct horse battery staple")
