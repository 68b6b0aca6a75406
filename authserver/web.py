"""The Flask application and request classes: Flask's own, minus per-request work this server never needs.

Every request pays for what happens here, so the token endpoint's fixed cost is decided here too
(bench/README.md, "A leaner request"). Behaviour is Flask's and werkzeug's: the same parsing, the
same limits, the same answers."""
from __future__ import annotations

from collections.abc import Callable, Iterable
from inspect import iscoroutinefunction
from types import FunctionType
from typing import Any
from urllib.parse import parse_qsl

from flask import Flask, Request
from jinja2.bccache import Bucket, BytecodeCache
from werkzeug.datastructures import ImmutableMultiDict
from werkzeug.routing import Rule
from werkzeug.routing.rules import RulePart, _part_re, parse_converter_args

FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"


class Parameters(ImmutableMultiDict):
    """Query and form parameters. `get` of an absent name returns the default without werkzeug's detour
    through raising and catching a BadRequestKeyError (an HTTPException, built per miss): a token
    request looks up several parameters it was not sent."""

    def get(  # type: ignore[override]  # the same behaviour as werkzeug's overloads, typed loosely
        self, key: Any, default: Any = None, type: Callable[[Any], Any] | None = None,  # noqa: A002
    ) -> Any:
        values = dict.get(self, key)
        if not values:
            return default
        if type is None:
            return values[0]
        try:
            return type(values[0])
        except (ValueError, TypeError):
            return default


class AppRequest(Request):
    parameter_storage_class = Parameters

    def _load_form_data(self) -> None:
        """An url-encoded body is parsed exactly as werkzeug's form parser does (the stream bounded by
        max_content_length, the same percent-decoding, invalid UTF-8 giving an empty form), without
        building a parser object per request. Every other body goes to werkzeug."""
        if "form" in self.__dict__:
            return
        if self.mimetype != FORM_CONTENT_TYPE or not self.want_form_data_parsed:
            super()._load_form_data()
            return
        stream = self._get_stream_for_parsing()
        try:
            items = parse_qsl(stream.read().decode(), keep_blank_values=True, errors="werkzeug.url_quote")
        except ValueError:  # werkzeug's parser is silent about a body it cannot decode: an empty form
            items = []
        d = self.__dict__
        d["stream"], d["form"], d["files"] = stream, self.parameter_storage_class(items), self.parameter_storage_class()


class _CompiledTemplates(BytecodeCache):
    """The compiled templates of this process (Jinja's bytecode cache, kept in memory). Jinja keys each
    by the template's name and checks its source's checksum on every load, so an edited template is
    compiled again."""

    def __init__(self) -> None:
        self._code: dict[str, bytes] = {}

    def load_bytecode(self, bucket: Bucket) -> None:
        code = self._code.get(bucket.key)
        if code is not None:
            bucket.bytecode_from_string(code)

    def dump_bytecode(self, bucket: Bucket) -> None:
        self._code[bucket.key] = bucket.bytecode_to_string()


class AppRule(Rule):
    """werkzeug's URL rule, whose URL builders (two small functions per rule that werkzeug writes as
    Python syntax trees and compiles: nine tenths of making an application) are made once per process
    for each distinct rule and shared by every application's copy of it. A builder reads the rule's
    converters through its own first argument, so sharing it between equal rules is safe; the key is
    everything werkzeug makes it from (the rule's text carries its converters' arguments).

    The parse of a rule's text (its parts for the matcher, its trace for the builders) is shared the same
    way: it depends only on the text and on the converter classes of the map; the parts are read, never
    changed. The converters themselves are made for each rule, as werkzeug makes them (each holds its map)."""

    _builders: dict[tuple[Any, ...], Callable[..., tuple[str, str]]] = {}
    _parsed: dict[tuple[Any, ...], tuple[list[RulePart], list[tuple[bool, str]],
                                         list[tuple[str, str, tuple[Any, ...], dict[str, Any]]]]] = {}

    def _parse_rule(self, rule: str) -> Iterable[RulePart]:
        assert self.map is not None
        key = (rule, tuple(self.map.converters.items()))
        parsed = self._parsed.get(key)
        if parsed is None:
            trace_from = len(self._trace)
            parts = list(super()._parse_rule(rule))  # raises on a malformed rule, before anything is kept
            converters = []
            for match in _part_re.finditer(rule):
                if match["variable"] is not None:
                    args, kwargs = parse_converter_args(match["arguments"] or "")
                    converters.append((match["variable"], match["converter"] or "default", args, kwargs))
            parsed = self._parsed[key] = (parts, self._trace[trace_from:], converters)
            return parts
        parts, trace, converters = parsed
        self._trace.extend(trace)
        for variable, name, args, kwargs in converters:
            self._converters[variable] = self.get_converter(variable, name, args, kwargs)
            self.arguments.add(variable)
        return parts

    def _compile_builder(self, append_unknown: bool = True) -> Callable[..., tuple[str, str]]:
        defaults = self.defaults or {}
        key = (self.rule, append_unknown, tuple(self._trace), repr(sorted(defaults.items())),
               tuple((name, type(converter)) for name, converter in self._converters.items()))
        builder = self._builders.get(key)
        if builder is None:
            builder = self._builders[key] = super()._compile_builder(append_unknown)
        return builder


class AuthserverFlask(Flask):
    request_class = AppRequest
    url_rule_class = AppRule
    # Every application of a process (the tests make one per test; a command makes one) compiles each
    # console and API template once between them, not once per application.
    jinja_options = {"bytecode_cache": _CompiledTemplates()}
    # Hooks and views are plain functions registered once; Flask asks for each, on every request,
    # whether it is a coroutine function (inspect's check costs more than the answer is worth).
    _SYNC_CACHE_LIMIT = 4096

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._sync_functions: dict[Callable[..., Any], Callable[..., Any]] = {}

    def ensure_sync(self, func: Callable[..., Any]) -> Callable[..., Any]:
        cached = self._sync_functions.get(func)
        if cached is not None:
            return cached
        sync = self.async_to_sync(func) if iscoroutinefunction(func) else func
        if type(func) is FunctionType:  # registered functions only: bound methods are new objects each time
            if len(self._sync_functions) >= self._SYNC_CACHE_LIMIT:
                self._sync_functions.clear()
            self._sync_functions[func] = sync
        return sync
