"""The request class parses url-encoded bodies exactly as werkzeug's form parser does, and its
parameters answer `get` exactly as werkzeug's MultiDict does (authserver/web.py)."""
from __future__ import annotations

import pytest
from flask import Request
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from werkzeug.datastructures import ImmutableMultiDict
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.test import EnvironBuilder

from authserver.web import AppRequest, AuthserverFlask, Parameters

FORM = "application/x-www-form-urlencoded"


def _requests(body: bytes, content_type: str | None = FORM, max_length: int | None = None):
    """The same request as werkzeug's own class and as authserver's."""
    built = []
    for cls in (Request, AppRequest):
        builder = EnvironBuilder(method="POST", path="/oauth/token", data=body, content_type=content_type)
        environ = builder.get_environ()
        if content_type is None:
            environ.pop("CONTENT_TYPE", None)
        request = cls(environ)
        request.max_content_length = max_length
        built.append(request)
    return built


def _as_lists(form) -> list[tuple[str, list[str]]]:
    return [(key, form.getlist(key)) for key in form]


BODIES = [
    b"grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion=a.b.c",
    b"a=1&a=2&b=&c",
    b"scope=read+write&resource=https%3A%2F%2Fapi.example.com%2F",
    b"bad=%ff%fe&ok=1",  # percent-escapes that are not UTF-8
    b"\xff\xfe=x",  # raw bytes that are not UTF-8: werkzeug parses nothing
    b"",
    b"&&=&x=%00",
    b"k=" + "é".encode() + b"&%zz=1",
]


@pytest.mark.parametrize("body", BODIES)
def test_the_form_is_what_werkzeug_parses(body):
    theirs, ours = _requests(body)
    assert type(ours.form) is Parameters
    assert _as_lists(ours.form) == _as_lists(theirs.form)
    assert not ours.files and not theirs.files


@settings(max_examples=200, derandomize=True, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=200) | st.text(max_size=80).map(lambda text: text.encode("utf-8", "surrogatepass")))
def test_any_body_parses_as_werkzeug_parses_it(body):
    theirs, ours = _requests(body)
    assert _as_lists(ours.form) == _as_lists(theirs.form)


def test_other_content_types_go_to_werkzeug():
    theirs, ours = _requests(b"a=1", content_type="application/json")
    assert not ours.form and not theirs.form
    theirs, ours = _requests(b"a=1", content_type=None)
    assert not ours.form and not theirs.form
    builder = EnvironBuilder(method="POST", data={"name": "value"})  # multipart/form-data
    assert AppRequest(builder.get_environ()).form["name"] == "value"


def test_a_body_over_the_limit_is_refused_like_werkzeug_refuses_it():
    theirs, ours = _requests(b"a=" + b"x" * 100, max_length=50)
    for request in (theirs, ours):
        with pytest.raises(RequestEntityTooLarge):
            request.form  # noqa: B018


def test_a_body_read_before_is_parsed_from_the_cache():
    _, ours = _requests(b"a=1&b=2")
    assert ours.get_data(cache=True) == b"a=1&b=2"
    assert ours.form.to_dict() == {"a": "1", "b": "2"}


@pytest.mark.parametrize("call", [
    lambda d: d.get("a"), lambda d: d.get("missing"), lambda d: d.get("missing", "fallback"),
    lambda d: d.get("n", type=int), lambda d: d.get("a", -1, type=int), lambda d: d.get("a", type=None),
    lambda d: d.get("none", 7, type=int), lambda d: d.get("n", type=lambda v: int(v) * 2),
    lambda d: d.get("a", "x", type=lambda v: None + v),  # a TypeError gives the default
])
def test_parameters_get_answers_like_werkzeug(call):
    items = [("a", "first"), ("a", "second"), ("n", "42"), ("empty", "")]
    assert call(Parameters(items)) == call(ImmutableMultiDict(items))


def test_coroutine_views_are_still_wrapped_and_plain_ones_kept():
    app = AuthserverFlask(__name__)

    def plain():
        return "plain"

    async def coroutine():
        return "async"

    assert app.ensure_sync(plain) is plain
    assert app.ensure_sync(plain) is plain  # from the cache
    # A coroutine function still goes to Flask's async_to_sync every time (which, without Flask's async
    # extra installed, refuses it), never handed back as if it were a plain function.
    calls = []
    app.async_to_sync = lambda func: calls.append(func) or (lambda: "wrapped")
    assert app.ensure_sync(coroutine)() == "wrapped"
    assert app.ensure_sync(coroutine)() == "wrapped"
    assert calls == [coroutine]  # converted once, then from the cache
