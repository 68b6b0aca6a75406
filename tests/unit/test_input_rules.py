"""Pure input rules of the services (authserver.services.common) and the clock helpers."""
from __future__ import annotations

import pytest

from authserver import clock
from authserver.errors import InvalidInput
from authserver.services.common import clean_description, clean_name, clean_scope


def test_scope_is_normalised_unique_and_sorted():
    assert clean_scope("write read  read") == "read write"
    assert clean_scope(["b", "a", "b"]) == "a b"
    assert clean_scope(None) == "" and clean_scope("") == ""


@pytest.mark.parametrize("bad", ['a"b', "back\\slash", "é", "x" * 65, 42, "tab\tscope"])
def test_scope_tokens_outside_rfc6749_are_refused(bad):
    with pytest.raises(InvalidInput):
        clean_scope(bad)


def test_at_most_50_scopes():
    clean_scope(" ".join(f"s{i}" for i in range(50)))
    with pytest.raises(InvalidInput):
        clean_scope(" ".join(f"s{i}" for i in range(51)))


def test_name_rules():
    assert clean_name("  My app ") == "My app"
    assert clean_name("x" * 100) == "x" * 100
    for bad in ("", "   ", "x" * 101, "bell\x07", None, 5):
        with pytest.raises(InvalidInput):
            clean_name(bad)


def test_description_rules():
    assert clean_description(None) == ""
    assert clean_description("line one\nline two") == "line one\nline two"
    with pytest.raises(InvalidInput):
        clean_description("x" * 1001)
    with pytest.raises(InvalidInput):
        clean_description("nul\x00")


def test_clock_shift_and_reset():
    try:
        before = clock.now()
        clock.shift(3600)
        assert clock.now() - before >= 3600
    finally:
        clock.reset()
    assert abs(clock.now() - before) <= 2


def test_isoformat():
    assert clock.isoformat(0) == "1970-01-01T00:00:00Z"
    assert clock.isoformat(None) is None
