"""What the applications of one process share (authserver/web.py): URL builders, which build exactly the
URLs werkzeug's own rules build for every application holding the rule, and compiled templates, which
are compiled again when their source changes."""
from __future__ import annotations

import pytest
from flask import Flask
from werkzeug.routing import BuildError

from authserver.web import AppRule, AuthserverFlask

ROUTES = [
    ("/apps", {}),
    ("/apps/<app_id>", {}),
    ("/apps/<app_id>/secrets/<int:number>", {}),
    ("/page/<int(min=1):page>", {}),
    ("/files/<path:name>", {}),
    ("/list", {"page": 1}),  # a default that is not in the rule
    ("/list/<int:page>", {}),
    ("/kind/<kind>", {"kind": "service"}),  # a default for a variable of the rule itself
    ("/ratio/<float:value>", {}),
]
VALUES = [
    {"app_id": "cl_1"}, {"app_id": "a b/c?d"}, {"app_id": "x", "number": 7}, {"page": 3}, {"page": 1},
    {"name": "dir/file name.txt"}, {}, {"kind": "service"}, {"kind": "user"}, {"value": 0.5},
    {"app_id": "x", "q": "a&b", "next": "/console?x=1"}, {"page": 0},
]


def _app(rule_class) -> Flask:
    app = type("App", (Flask,), {"url_rule_class": rule_class})(__name__)  # the static route too
    for number, (rule, defaults) in enumerate(ROUTES):
        app.add_url_rule(rule, f"r{number}", lambda **_: "", defaults=defaults or None)
    return app


def _build(app: Flask, endpoint: str, values: dict) -> str:
    with app.test_request_context():
        try:
            return app.url_for(endpoint, **values)
        except BuildError:
            return "BuildError"


@pytest.mark.parametrize("endpoint", [f"r{n}" for n in range(len(ROUTES))])
def test_shared_builders_build_what_werkzeugs_rules_build(endpoint):
    plain = _app(Flask.url_rule_class)
    first, second = _app(AppRule), _app(AppRule)
    for values in VALUES:
        expected = _build(plain, endpoint, values)
        assert _build(first, endpoint, values) == expected, values
        assert _build(second, endpoint, values) == expected, values


def test_each_distinct_rule_is_compiled_once_per_process():
    first, second = _app(AppRule), _app(AppRule)
    for rule_a, rule_b in zip(first.url_map.iter_rules(), second.url_map.iter_rules(), strict=True):
        assert rule_a is not rule_b and rule_a.rule == rule_b.rule
        assert rule_a._build.__func__ is rule_b._build.__func__
        assert rule_a._build_unknown.__func__ is rule_b._build_unknown.__func__
        assert rule_a._build.__self__ is rule_a and rule_b._build.__self__ is rule_b  # each reads its own rule


def _template_app(folder) -> Flask:
    return AuthserverFlask(__name__, template_folder=str(folder))


def test_a_template_is_compiled_once_per_process_and_again_when_its_source_changes(tmp_path, monkeypatch):
    from jinja2 import Environment

    compiled = []
    original = Environment.compile
    monkeypatch.setattr(Environment, "compile", lambda self, source, name=None, *rest, **kw: (
        compiled.append(name), original(self, source, name, *rest, **kw))[1])
    page = tmp_path / "page.html"
    page.write_text("Hello {{ who }} from " + tmp_path.name)

    def render(app: Flask) -> str:
        with app.app_context():
            return app.jinja_env.get_template("page.html").render(who="Ada")

    assert render(_template_app(tmp_path)) == f"Hello Ada from {tmp_path.name}"
    assert compiled == ["page.html"]
    assert render(_template_app(tmp_path)) == f"Hello Ada from {tmp_path.name}"  # another application
    assert compiled == ["page.html"]
    page.write_text("Goodbye {{ who }}")
    assert render(_template_app(tmp_path)) == "Goodbye Ada"  # the checksum differs: compiled again
    assert compiled == ["page.html", "page.html"]


PATHS = ["/apps", "/apps/cl_1", "/apps/x/secrets/7", "/apps/x/secrets/seven", "/page/3", "/page/0", "/files/a/b c.txt",
         "/list", "/list/2", "/kind/user", "/ratio/0.5", "/ratio/x", "/static/app.css", "/nowhere", "/apps/"]


def _match(app: Flask, path: str) -> object:
    adapter = app.url_map.bind("localhost")
    try:
        return adapter.match(path)
    except Exception as exc:  # werkzeug's NotFound, RequestRedirect...
        return type(exc).__name__


def test_shared_parses_match_what_werkzeugs_rules_match_and_each_rule_keeps_its_own_converters():
    plain = _app(Flask.url_rule_class)
    first, second = _app(AppRule), _app(AppRule)
    for path in PATHS:
        expected = _match(plain, path)
        assert _match(first, path) == expected == _match(second, path), path
    for rule_a, rule_b in zip(first.url_map.iter_rules(), second.url_map.iter_rules(), strict=True):
        assert rule_a._parts is not rule_b._parts and rule_a._parts == rule_b._parts
        # the parts of the path are the same objects (the first, for the host, werkzeug makes in place)
        assert all(part_a is part_b for part_a, part_b in zip(rule_a._parts[1:], rule_b._parts[1:], strict=True))
        assert rule_a._trace == rule_b._trace and rule_a.arguments == rule_b.arguments
        assert rule_a._converters.keys() == rule_b._converters.keys()
        for name, converter in rule_a._converters.items():
            assert converter is not rule_b._converters[name]  # each holds its own map
            assert converter.map is first.url_map and rule_b._converters[name].map is second.url_map
    page = next(rule for rule in second.url_map.iter_rules() if rule.rule == "/page/<int(min=1):page>")
    assert page._converters["page"].min == 1  # the converter's arguments, from the shared parse


def test_a_malformed_rule_is_refused_every_time():
    for _ in range(2):
        with pytest.raises(ValueError, match="malformed url rule"):
            AuthserverFlask(__name__).add_url_rule("/apps/<bad name>", "bad", lambda: "")
