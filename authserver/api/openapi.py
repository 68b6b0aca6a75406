"""The OpenAPI 3.1 document of /api/v1, built from the route table and its pydantic schemas, and the
human-readable page rendered from it."""
from __future__ import annotations

import functools
import json
from typing import Any, Literal

from flask import Response
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from .. import __version__
from ..services.apis import MANAGE_SCOPE
from ..services.common import current_settings
from .auth import CSRF_HEADER
from .docs_page import docs_page_html
from .problems import API_PREFIX, PROBLEM_JSON, PROBLEM_TYPES
from .routing import OPERATIONS, Binary, Html, Operation, operation
from .schemas import Problem

REF = "#/components/schemas/{model}"
PATH_PARAMETERS = {
    "client_id": "The client's id (32 lowercase hex characters).",
    "secret_id": "The secret's id.",
    "kid": "The key's id.",
    "account_id": "The account's id.",
    "api_id": "The API's id (not its identifier).",
    "name": "The scope's name, percent-encoded where it holds reserved characters.",
}
STATUS_TEXT = {
    200: "OK", 201: "Created", 204: "No Content", 400: "Bad request: malformed body, or a value a rule refused",
    401: "No valid access token or session", 403: "Not allowed: missing scope, not an admin, a platform API "
    "or failed CSRF check", 404: "Not found in the caller's organization", 409: "Conflict with the current state",
    413: "Body too large", 415: "Unsupported media type", 422: "Body or query does not match the schema",
}
DESCRIPTION = f"""The management API of authserver: an organization's client applications, their secrets,
public keys and API access, the APIs (resource servers) it registers and their scopes, its accounts and
its audit log.

**Authentication.** `Authorization: Bearer <access token>`, a token issued by this server's
`/oauth/token` whose `sub` is an active admin user of the organization and whose scope holds
`{MANAGE_SCOPE}`. The console's signed-in session works too; state-changing requests made with it need
the console's CSRF token in the `{CSRF_HEADER}` header.

**Scope.** Everything is scoped to the caller's organization: another organization's objects answer 404.
The platform APIs that the operator opened to the organization are listed too, read-only: changing one
answers 403.

**Errors** are `{PROBLEM_JSON}` (RFC 9457)."""


def _collect_models() -> list[type[BaseModel]]:
    models: list[type[BaseModel]] = [Problem]
    for op in OPERATIONS:
        for model in (op.body, op.query, *op.responses.values()):
            if isinstance(model, type) and issubclass(model, BaseModel) and model not in models:
                models.append(model)
    return models


def _mode(model: type[BaseModel]) -> Literal["serialization", "validation"]:
    return "serialization" if any(model in op.responses.values() for op in OPERATIONS) else "validation"


def _parameters(op: Operation, schemas: dict) -> list[dict]:
    parameters = [
        {"name": name, "in": "path", "required": True, "description": PATH_PARAMETERS.get(name, name),
         "schema": {"type": "string"}}
        for name in op.path_parameters
    ]
    if op.query is not None:
        schema = schemas[op.query]
        for name, prop in schema.get("properties", {}).items():
            prop = dict(prop)
            description = prop.pop("description", None)
            prop.pop("title", None)
            parameter = {"name": name, "in": "query", "required": name in schema.get("required", []), "schema": prop}
            if description:
                parameter["description"] = description
            parameters.append(parameter)
    return parameters


def _request_body(op: Operation, refs: dict) -> dict | None:
    if op.body is not None:
        return {"required": not op.body_optional, "content": {"application/json": {"schema": refs[op.body]}}}
    if op.upload is not None:
        binary = {"type": "string", "contentMediaType": "application/octet-stream"}
        content: dict[str, Any] = {media_type: {"schema": {"type": "string", "contentMediaType": media_type}}
                   for media_type in op.upload.media_types}
        content["multipart/form-data"] = {
            "schema": {
                "type": "object",
                "required": [op.upload.form_field],
                "properties": {op.upload.form_field: binary},
            },
        }
        return {"required": True, "description": op.upload.description, "content": content}
    return None


def _responses(op: Operation, refs: dict) -> dict:
    responses: dict[str, Any] = {}
    for status, body in op.responses.items():
        response: dict[str, Any] = {"description": STATUS_TEXT.get(status, "OK")}
        if isinstance(body, Binary):
            response["description"] = body.description
            schema = body.schema or {"type": "string", "contentMediaType": body.media_type}
            response["content"] = {body.media_type: {"schema": schema}}
        elif isinstance(body, Html):
            response["description"] = body.description
            response["content"] = {"text/html": {"schema": {"type": "string"}}}
        elif body is not None:
            response["content"] = {"application/json": {"schema": refs[body]}}
        headers = op.response_headers.get(status)
        if headers:
            response["headers"] = {name: {"description": text, "schema": {"type": "string"}}
                                   for name, text in headers.items()}
        responses[str(status)] = response
    for status in op.error_statuses():
        response = {"description": STATUS_TEXT[status], "content": {PROBLEM_JSON: {"schema": refs[Problem]}}}
        if status == 401:
            response["headers"] = {"WWW-Authenticate": {"description": "The Bearer challenge (RFC 6750 §3).",
                                                        "schema": {"type": "string"}}}
        responses[str(status)] = response
    return responses


@functools.cache
def openapi_document() -> dict:
    models = _collect_models()
    keyed, top = models_json_schema([(m, _mode(m)) for m in models], ref_template=REF)
    refs = {m: keyed[(m, _mode(m))] for m in models}
    # Query models become parameters; their inlined schemas are looked up by model.
    query_schemas = {op.query: top["$defs"][op.query.__name__] for op in OPERATIONS if op.query is not None}
    paths: dict[str, dict] = {}
    for op in OPERATIONS:
        entry: dict[str, Any] = {"operationId": op.endpoint, "summary": op.summary, "tags": [op.tag]}
        if op.description:
            entry["description"] = op.description
        parameters = _parameters(op, query_schemas)
        if parameters:
            entry["parameters"] = parameters
        body = _request_body(op, refs)
        if body is not None:
            entry["requestBody"] = body
        entry["responses"] = _responses(op, refs)
        entry["security"] = [{"bearer": [MANAGE_SCOPE]}, {"consoleSession": []}] if op.authenticated else []
        paths.setdefault(API_PREFIX + op.path, {})[op.method.lower()] = entry
    schemas = {name: schema for name, schema in top.get("$defs", {}).items()
               if not any(op.query is not None and op.query.__name__ == name for op in OPERATIONS)}
    return {
        "openapi": "3.1.0",
        "info": {"title": "authserver management API", "version": __version__, "description": DESCRIPTION},
        "jsonSchemaDialect": "https://json-schema.org/draft/2020-12/schema",
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                           "description": f"An access token of this server with the {MANAGE_SCOPE} scope, "
                                          "whose subject is an admin user."},
                "consoleSession": {"type": "apiKey", "in": "cookie", "name": "authserver_session",
                                   "description": f"The console's session; unsafe methods also need the "
                                                  f"{CSRF_HEADER} header."},
            },
        },
        "tags": [{"name": name} for name in dict.fromkeys(op.tag for op in OPERATIONS)],
    }


@operation("GET", "/openapi.json", summary="This OpenAPI document", tag="Documentation", authenticated=False,
           responses={200: Binary("application/json", "The OpenAPI 3.1 document of this API.", {"type": "object"})})
def get_openapi_document(ctx: None):
    response = Response(json.dumps(openapi_document()), content_type="application/json")
    response.headers["Cache-Control"] = "no-cache"
    return response


@operation("GET", "/docs", summary="This API's documentation, as a web page", tag="Documentation",
           authenticated=False, responses={200: Html("The documentation page, rendered from the OpenAPI document.")})
def get_docs_page(ctx: None):
    html = docs_page_html(openapi_document(), PROBLEM_TYPES, API_PREFIX, current_settings().issuer)
    response = Response(html, content_type="text/html; charset=utf-8")
    response.headers["Cache-Control"] = "no-cache"
    response.headers["Content-Security-Policy"] = (
        "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; frame-ancestors 'none'"
    )
    return response
