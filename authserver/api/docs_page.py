"""The HTML page of /api/v1/docs: the OpenAPI document, rendered on the server, with no script and no
external resource (it works offline)."""
from __future__ import annotations

import copy
import re
from pathlib import Path

from flask import current_app
from markupsafe import Markup, escape

TEMPLATE_FILE = Path(__file__).resolve().parent / "templates" / "docs.html"


def type_of(schema: dict | None) -> Markup:
    """A short, linked description of a JSON Schema type, e.g. `array of ClientOut`."""
    if not schema:
        return Markup("any")
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return Markup('<a href="#schema-{0}">{0}</a>').format(name)
    if "anyOf" in schema or "oneOf" in schema:
        return Markup(" or ").join(type_of(s) for s in schema.get("anyOf", schema.get("oneOf", [])))
    if "enum" in schema:
        return Markup("one of ") + Markup(", ").join(Markup("<code>{}</code>").format(v) for v in schema["enum"])
    if "const" in schema:
        return Markup("<code>{}</code>").format(schema["const"])
    kind = schema.get("type", "any")
    if kind == "array":
        return Markup("array of ") + type_of(schema.get("items"))
    if kind == "object" and isinstance(schema.get("additionalProperties"), dict):
        return Markup("object of ") + type_of(schema["additionalProperties"])
    if kind == "string" and schema.get("format"):
        return Markup("string ({})").format(schema["format"])
    if kind == "string" and schema.get("contentMediaType"):
        return Markup("bytes ({})").format(schema["contentMediaType"])
    return Markup("{}").format(kind)


def prose(text: str | None, inline: bool = False) -> Markup:
    """Paragraphs (or, inline, one run of text) with `code` and **bold** spans; everything else escaped."""
    if not text:
        return Markup("")
    paragraphs = []
    for block in re.split(r"\n\s*\n", text.strip()):
        html = str(escape(" ".join(block.split())))
        html = re.sub(r"`([^`]+)`", r"<code>\1</code>", html)
        html = re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", html)
        paragraphs.append(html if inline else f"<p>{html}</p>")
    return Markup(" ".join(paragraphs))


def docs_page_html(document: dict, problem_types: dict, api_prefix: str, issuer: str) -> str:
    """The page, rendered once per application: the document and the issuer do not change while it runs."""
    cache = current_app.extensions.setdefault("authserver.api_docs_page", {})
    html = cache.get(issuer)
    if html is None:
        template = current_app.jinja_env.from_string(TEMPLATE_FILE.read_text(encoding="utf-8"))
        html = cache[issuer] = template.render(doc=copy.deepcopy(document), problem_types=problem_types,
                                               api_prefix=api_prefix, type_of=type_of, prose=prose, issuer=issuer)
    return html
