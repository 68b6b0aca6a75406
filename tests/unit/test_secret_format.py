"""The scannable secret format (authserver.crypto.client_secrets): prefix, 256 random bits and a
CRC-32 checksum in base62, matched by the regular expression the README publishes."""
from __future__ import annotations

import math
import re
import secrets
import zlib
from pathlib import Path

import pytest

from authserver.crypto.client_secrets import (
    FORMAT_CURRENT,
    FORMAT_LEGACY,
    FORMAT_MALFORMED,
    SECRET_LENGTH,
    SECRET_PREFIX,
    SECRET_REGEX,
    generate_client_secret,
    secret_checksum,
    secret_format,
)

README = Path(__file__).resolve().parents[2] / "README.md"
ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def published_regex() -> str:
    """The regular expression between the README's secret-regex markers."""
    text = README.read_text()
    block = text.split("<!-- secret-regex:start -->", 1)[1].split("<!-- secret-regex:end -->", 1)[0]
    return block.strip().strip("`").strip()


def crc32_base62(text: str) -> str:
    """The checksum as the README describes it, computed independently of the server's code."""
    value, digits = zlib.crc32(text.encode("ascii")), ""
    while value:
        value, digit = divmod(value, 62)
        digits = ALPHABET[digit] + digits
    return digits.rjust(6, "0")


def test_the_readme_publishes_the_regex_the_server_uses():
    assert published_regex() == SECRET_REGEX


def test_generated_secrets_match_the_published_regex_and_the_documented_layout():
    pattern = re.compile(published_regex())
    for _ in range(500):
        secret = generate_client_secret()
        assert len(secret) == SECRET_LENGTH == 54
        assert pattern.fullmatch(secret), secret[:8]
        assert pattern.search(f"config: CLIENT_SECRET={secret}\n").group(0) == secret
        random_part, checksum = secret[5:48], secret[48:]
        assert secret.startswith("ascs_") and SECRET_PREFIX == "ascs_"
        assert checksum == crc32_base62(random_part)
        assert secret_format(secret) == FORMAT_CURRENT


def test_the_random_part_carries_at_least_256_bits():
    assert 43 * math.log2(62) >= 256
    # Every character of the alphabet turns up: none is left out of the random part.
    seen = set("".join(generate_client_secret()[5:48] for _ in range(300)))
    assert seen == set(ALPHABET)
    assert len({generate_client_secret() for _ in range(1000)}) == 1000


def test_known_checksum_values():
    assert secret_checksum("0" * 43) == crc32_base62("0" * 43)
    assert zlib.crc32(b"") == 0 and secret_checksum("") == "000000"
    assert secret_checksum("z" * 43) != secret_checksum("y" * 43)


def test_any_single_character_change_fails_the_checksum():
    secret = generate_client_secret()
    for position in range(len(SECRET_PREFIX), len(secret)):
        index = ALPHABET.index(secret[position])
        for replacement in (ALPHABET[(index + 1) % 62], ALPHABET[(index + 31) % 62]):
            changed = secret[:position] + replacement + secret[position + 1:]
            assert secret_format(changed) == FORMAT_MALFORMED, position


@pytest.mark.parametrize("mangle", [
    lambda s: s[:-1],  # truncated
    lambda s: s + "0",  # one character too many
    lambda s: s[:20] + "-" + s[21:],  # outside the alphabet
    lambda s: s[:20] + "é" + s[21:],
    lambda s: s[:20] + "\u0661" + s[21:],  # a non-ASCII digit
    lambda s: s[:48] + ("000000" if s[48:] != "000000" else "000001"),  # another checksum
    lambda s: s[:5] + s[6:48] + s[5] + s[48:],  # random part rotated, checksum kept
    lambda s: s[:5] + " " * 49,
    lambda s: "ascs_",
    lambda s: SECRET_PREFIX + s[5:].swapcase(),  # base62 is case-sensitive
])
def test_strings_with_the_prefix_that_break_the_format_are_malformed(mangle):
    secret = generate_client_secret()
    mangled = mangle(secret)
    assert mangled != secret
    assert secret_format(mangled) == FORMAT_MALFORMED


def test_strings_without_the_prefix_go_the_old_way():
    legacy = "as_" + secrets.token_urlsafe(32)  # the format before the checksum
    assert secret_format(legacy) == FORMAT_LEGACY
    assert secret_format("ASCS_" + generate_client_secret()[5:]) == FORMAT_LEGACY  # the prefix is case-sensitive
    assert secret_format("anything at all") == FORMAT_LEGACY
    assert not re.search(published_regex(), legacy)


def test_the_regex_does_not_match_inside_longer_tokens():
    secret = generate_client_secret()
    pattern = re.compile(published_regex())
    assert pattern.search("x" + secret) is None  # glued to a word before it
    assert pattern.search(secret + "A") is None  # one character too long
    assert pattern.search(secret[:-1]) is None
