"""The HTML page of /api/v1/docs: the OpenAPI document, rendered on the server, with no script and no
external resource (it works offline)."""
from __future__ import annotations

import re

from markupsafe import Markup, escape


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


DOCS_TEMPLATE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ doc.info.title }} {{ doc.info.version }}</title>
<style>
  :root { --fg:#1d2330; --muted:#5b6475; --line:#e3e6ec; --bg:#fff; --code:#f4f6f9; --accent:#2456d3; }
  * { box-sizing: border-box; }
  body { margin:0; font:15px/1.55 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif; color:var(--fg); background:var(--bg); }
  .layout { display:grid; grid-template-columns: 260px minmax(0, 1fr); min-height:100vh; }
  nav { border-right:1px solid var(--line); padding:24px 18px; position:sticky; top:0; height:100vh; overflow:auto; font-size:14px; }
  nav h2 { font-size:12px; text-transform:uppercase; letter-spacing:.06em; color:var(--muted); margin:18px 0 6px; }
  nav a { display:block; color:var(--fg); text-decoration:none; padding:2px 0; overflow-wrap:anywhere; }
  nav a:hover, nav a:focus { color:var(--accent); text-decoration:underline; }
  main { padding:32px 48px; max-width:1000px; min-width:0; overflow-wrap:anywhere; }
  h1 { font-size:28px; margin:0 0 4px; }
  h2 { font-size:22px; margin:40px 0 12px; padding-top:8px; border-top:1px solid var(--line); }
  h3 { font-size:17px; margin:28px 0 6px; }
  pre { background:var(--code); padding:12px 14px; border-radius:6px; overflow-x:auto; }
  pre code { padding:0; background:none; }
  code { background:var(--code); padding:1px 5px; border-radius:4px; font:13px/1.4 ui-monospace,SFMono-Regular,Menlo,monospace; }
  .method { display:inline-block; min-width:64px; text-align:center; font:600 12px/1 ui-monospace,monospace; padding:5px 6px; border-radius:4px; color:#fff; margin-right:8px; }
  .get { background:#2f7d4a; } .post { background:#2456d3; } .patch { background:#9a6700; } .put { background:#7a4cc2; } .delete { background:#c0392b; }
  .path { font:600 15px ui-monospace,monospace; }
  table { border-collapse:collapse; width:100%; margin:8px 0 16px; font-size:14px; }
  th, td { text-align:left; border-bottom:1px solid var(--line); padding:6px 8px; vertical-align:top; }
  th { color:var(--muted); font-weight:600; font-size:12px; text-transform:uppercase; letter-spacing:.04em; }
  .muted { color:var(--muted); }
  .op { border:1px solid var(--line); border-radius:8px; padding:14px 18px; margin:14px 0; }
  @media (max-width: 800px) { .layout { grid-template-columns: minmax(0, 1fr); } nav { position:static; height:auto; border-right:0; border-bottom:1px solid var(--line); } main { padding:20px; } }
</style>
</head>
<body>
<div class="layout">
<nav aria-label="Contents">
  <strong>{{ doc.info.title }}</strong>
  <a href="{{ api_prefix }}/openapi.json">openapi.json</a>
  <h2>Overview</h2>
  <a href="#overview">Authentication</a>
  <a href="#getting-a-token">Getting a token</a>
  <a href="#problems">Errors</a>
  {% for tag in doc.tags %}
  <h2>{{ tag.name }}</h2>
  {% for path, item in doc.paths.items() %}{% for method, op in item.items() %}{% if op.tags[0] == tag.name %}
  <a href="#op-{{ op.operationId }}">{{ method | upper }} {{ path[api_prefix | length:] }}</a>
  {% endif %}{% endfor %}{% endfor %}
  {% endfor %}
  <h2>Schemas</h2>
  {% for name in doc.components.schemas %}<a href="#schema-{{ name }}">{{ name }}</a>{% endfor %}
</nav>
<main>
  <h1>{{ doc.info.title }}</h1>
  <p class="muted">Version {{ doc.info.version }} · OpenAPI {{ doc.openapi }} · machine-readable at
    <a href="{{ api_prefix }}/openapi.json"><code>{{ api_prefix }}/openapi.json</code></a></p>
  <section id="overview">{{ prose(doc.info.description) }}</section>

  <h2 id="getting-a-token">Getting a token</h2>
  <p>A token for this API is an access token of this server for the management API
    (<code>resource={{ issuer }}{{ api_prefix }}</code>, scope <code>manage</code>) whose subject is an admin user
    of your organization. Once: an app with the management API as its default API, a secret and a public key
    (the console's app page does the same), then a token whenever you need one. <code>authserver demo</code>
    prints a ready command too. With the operator's command line, <code>curl</code> and <code>openssl</code>:</p>
  <pre><code>A=authserver
field() { python3 -c "import json, sys; print(json.load(sys.stdin)['$1'])"; }
ORG=org_...          # your organization: authserver org list
ADMIN=acc_...        # an admin user of it: authserver account list "$ORG"
CLIENT=$($A client create "$ORG" "Ops automation" --json | field client_id)
$A client grant "$CLIENT" {{ issuer }}{{ api_prefix }} --scope manage --default
SECRET=$($A secret add "$CLIENT" --json | field client_secret)
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out ops.key
openssl pkey -in ops.key -pubout -out ops.pub
$A key add "$CLIENT" ops.pub --kid ops-1

TOKEN=$(curl -s -u "$CLIENT:$SECRET" \
  -d grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer -d scope=manage \
  -d resource={{ issuer }}{{ api_prefix }} \
  -d assertion=$($A assertion --key ops.key --client-id "$CLIENT" --subject "$ADMIN" --kid ops-1) \
  {{ issuer }}/oauth/token | field access_token)
curl -s -H "Authorization: Bearer $TOKEN" {{ issuer }}{{ api_prefix }}/clients</code></pre>

  <h2 id="problems">Errors</h2>
  <p>Every error is <code>application/problem+json</code> (RFC 9457) with <code>type</code>, <code>title</code>,
    <code>status</code>, <code>detail</code>, and for bad input <code>field</code> and <code>errors</code>
    (a list of <code>{"field", "message"}</code>). Plain HTTP errors (unknown route, wrong method, body too large)
    have the type <code>about:blank</code>. The other types:</p>
  <table>
    <thead><tr><th scope="col">type (fragment)</th><th scope="col">meaning</th></tr></thead>
    <tbody>
    {% for slug, meaning in problem_types.items() %}
      <tr id="problem-{{ slug }}"><td><code>#problem-{{ slug }}</code></td><td>{{ prose(meaning, inline=True) }}</td></tr>
    {% endfor %}
    </tbody>
  </table>

  {% for tag in doc.tags %}
  <h2 id="tag-{{ tag.name | replace(' ', '-') }}">{{ tag.name }}</h2>
  {% for path, item in doc.paths.items() %}{% for method, op in item.items() %}{% if op.tags[0] == tag.name %}
  <section class="op" id="op-{{ op.operationId }}" aria-labelledby="op-{{ op.operationId }}-title">
    <h3 id="op-{{ op.operationId }}-title"><span class="method {{ method }}">{{ method | upper }}</span><span class="path">{{ path }}</span></h3>
    <p><strong>{{ op.summary }}</strong>{% if not op.security %} <span class="muted">· no authentication</span>{% endif %}</p>
    {{ prose(op.description) }}
    {% if op.parameters %}
    <table>
      <thead><tr><th scope="col">parameter</th><th scope="col">in</th><th scope="col">type</th><th scope="col">description</th></tr></thead>
      <tbody>{% for p in op.parameters %}
        <tr><td><code>{{ p.name }}</code>{% if p.required %} <span class="muted">required</span>{% endif %}</td><td>{{ p["in"] }}</td><td>{{ type_of(p.schema) }}</td><td>{{ p.description }}</td></tr>
      {% endfor %}</tbody>
    </table>
    {% endif %}
    {% if op.requestBody %}
    <p><strong>Request body</strong>{% if not op.requestBody.required %} <span class="muted">(optional)</span>{% endif %}{% if op.requestBody.description %}: {{ prose(op.requestBody.description, inline=True) }}{% endif %}</p>
    <table>
      <thead><tr><th scope="col">media type</th><th scope="col">schema</th></tr></thead>
      <tbody>{% for media, content in op.requestBody.content.items() %}
        <tr><td><code>{{ media }}</code></td><td>{{ type_of(content.schema) }}</td></tr>
      {% endfor %}</tbody>
    </table>
    {% endif %}
    <table>
      <thead><tr><th scope="col">status</th><th scope="col">meaning</th><th scope="col">body</th></tr></thead>
      <tbody>{% for status, response in op.responses.items() %}
        <tr><td><code>{{ status }}</code></td><td>{{ response.description }}</td>
          <td>{% for media, content in (response.content or {}).items() %}<code>{{ media }}</code> {{ type_of(content.schema) }}{% if not loop.last %}<br>{% endif %}{% endfor %}</td></tr>
      {% endfor %}</tbody>
    </table>
  </section>
  {% endif %}{% endfor %}{% endfor %}
  {% endfor %}

  <h2 id="schemas">Schemas</h2>
  {% for name, schema in doc.components.schemas.items() %}
  <section id="schema-{{ name }}">
    <h3>{{ name }}</h3>
    {{ prose(schema.description) }}
    {% if schema.oneOf %}<p>One of: {{ type_of(schema) }}</p>{% endif %}
    {% if schema.properties %}
    <table>
      <thead><tr><th scope="col">member</th><th scope="col">type</th><th scope="col">description</th></tr></thead>
      <tbody>{% for prop, sub in schema.properties.items() %}
        <tr><td><code>{{ prop }}</code>{% if prop in (schema.required or []) %} <span class="muted">required</span>{% endif %}{% if sub.writeOnly %} <span class="muted">write-only</span>{% endif %}</td>
          <td>{{ type_of(sub) }}</td><td>{{ prose(sub.description, inline=True) }}</td></tr>
      {% endfor %}</tbody>
    </table>
    {% if schema.additionalProperties == false %}<p class="muted">Other members are refused.</p>{% endif %}
    {% endif %}
  </section>
  {% endfor %}
</main>
</div>
</body>
</html>
"""
