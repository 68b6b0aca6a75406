"""Pure input rules of the services (authserver.services.common) and the clock helpers."""
from __future__ import annotations

import pytest

from authserver import clock
from authserver.errors import InvalidInput
from authserver.services.apis import clean_identifier, clean_scope_definitions
from authserver.services.common import clean_description, clean_name, parse_scope_list, parse_scope_parameter


def test_scope_lists_are_normalised_unique_and_sorted():
    assert parse_scope_list("write read  read") == ["read", "write"]
    assert parse_scope_list(["b", "a", "b"]) == ["a", "b"]
    assert parse_scope_list(None) == [] and parse_scope_list("") == []


@pytest.mark.parametrize("bad", ['a"b', "back\\slash", "é", "x" * 65, 42, "tab\tscope", "nl\n"])
def test_scope_tokens_outside_rfc6749_are_refused(bad):
    with pytest.raises(InvalidInput):
        parse_scope_list([bad])


@pytest.mark.parametrize(
    "value,tokens",
    [
        ("read", ["read"]),
        ("read write", ["read", "write"]),
        ("a:b/c!~", ["a:b/c!~"]),
        ("write read write", ["write", "read", "write"]),
    ],
)
def test_scope_parameter_grammar_accepts(value, tokens):
    assert parse_scope_parameter(value) == tokens


@pytest.mark.parametrize("value", [
    "read\n", "read ", " read", "read  write", "read\twrite", "read\x00", 'a"b', "a\\b", "é", "read\x7f", "\n",
])
def test_scope_parameter_grammar_refuses(value):
    # RFC 6749 §3.3: scope-token *( SP scope-token ), nothing else; a trailing newline is not allowed.
    assert parse_scope_parameter(value) is None


@pytest.mark.parametrize("value", [
    "https://api.example.com/orders", "https://api.example.com", "urn:example:orders", "http://localhost:9000/x?y=1",
])
def test_api_identifiers_that_are_absolute_uris(value):
    assert clean_identifier(value) == value


@pytest.mark.parametrize("value", [
    "", "orders", "/relative/path", "https://api.example.com/orders#frag", "https:///nohost", "https://a b.com",
    "https://api.example.com/\n", "x" * 300, None, 12, "1http://x.com",
])
def test_api_identifiers_refused(value):
    with pytest.raises(InvalidInput):
        clean_identifier(value)


def test_scope_definitions_forms():
    assert clean_scope_definitions(["a", "b=Read b"]) == {"a": "", "b": "Read b"}
    assert clean_scope_definitions([{"name": "a", "description": "x"}]) == {"a": "x"}
    with pytest.raises(InvalidInput):
        clean_scope_definitions(["a", "a"])
    with pytest.raises(InvalidInput):
        clean_scope_definitions([{"name": "a", "extra": 1}])


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
