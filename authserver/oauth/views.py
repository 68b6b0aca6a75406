"""The OAuth endpoints' blueprint: parse strictly, hand over to Authlib, answer per RFC 6749 §5.2."""
from __future__ import annotations

from authlib.consts import default_json_headers
from flask import Blueprint, Response, current_app, json, request
from werkzeug.exceptions import MethodNotAllowed

from ..services.apis import open_platform_scopes
from ..services.signing_keys import jwks
from .constants import (
    CLIENT_AUTH_METHODS, FORM_CONTENT_TYPE, GRANT_TYPE_JWT_BEARER, PARAM_RESOURCE, PATH_INTROSPECT, PATH_JWKS,
    PATH_METADATA, PATH_REVOKE, PATH_TOKEN,
)
from .errors import InsecureTransportError, InvalidRequestError, InvalidTargetError, RequestTooLargeError
from .server import secure_transport

bp = Blueprint("oauth", __name__)


def _server():
    return current_app.extensions["authserver.oauth"]


def _error(error) -> Response:
    return _server().handle_error_response(None, error)


@bp.before_request
def check_form_request():
    """RFC 6749 §3.2: POST, form-encoded, each parameter at most once; bodies bounded."""
    if request.method != "POST":
        return None
    if not secure_transport(request):
        return _error(InsecureTransportError())
    limit = _server().runtime.settings.oauth_max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        return _error(RequestTooLargeError(f"The request body is larger than {limit} bytes."))
    # One byte over the limit: a chunked body (no Content-Length) is cut there, so reaching it means too large.
    request.max_content_length = limit + 1
    if request.mimetype != FORM_CONTENT_TYPE:
        return _error(InvalidRequestError("The request body must be application/x-www-form-urlencoded."))
    form = request.form  # parsed within max_content_length
    if request.stream.tell() > limit:
        return _error(RequestTooLargeError(f"The request body is larger than {limit} bytes."))
    for key in form:
        if len(form.getlist(key)) > 1:
            if key == PARAM_RESOURCE:  # RFC 8707 §2 allows several; a token here names exactly one API
                return _error(InvalidTargetError("Ask for one resource per token request: each access token "
                                                 "is for exactly one API."))
            return _error(InvalidRequestError("A request parameter is repeated: each may appear at most once."))
        if "\x00" in form[key]:  # no parameter has a use for it, and PostgreSQL text refuses it (a 500 otherwise)
            return _error(InvalidRequestError("A request parameter contains a NUL character."))
    return None


@bp.post(PATH_TOKEN)
def token():
    if not request.form.get("grant_type"):
        return _error(InvalidRequestError("The grant_type parameter is missing."))  # RFC 6749 §5.2
    return _server().create_token_response()


@bp.post(PATH_INTROSPECT)
def introspect():
    return _server().create_endpoint_response("introspection")


@bp.post(PATH_REVOKE)
def revoke():
    return _server().create_endpoint_response("revocation")


@bp.get(PATH_JWKS)
def jwks_document():
    response = Response(json.dumps(jwks()), content_type="application/jwk-set+json")
    response.headers["Cache-Control"] = "public, max-age=60"
    return response


@bp.get(PATH_METADATA)
def metadata():
    """RFC 8414 §2."""
    settings = _server().runtime.settings
    issuer = settings.issuer
    document = {
        "issuer": issuer,
        "token_endpoint": issuer + PATH_TOKEN,
        "jwks_uri": issuer + PATH_JWKS,
        "introspection_endpoint": issuer + PATH_INTROSPECT,
        "revocation_endpoint": issuer + PATH_REVOKE,
        "grant_types_supported": [GRANT_TYPE_JWT_BEARER],
        "response_types_supported": [],
        "token_endpoint_auth_methods_supported": CLIENT_AUTH_METHODS,
        "introspection_endpoint_auth_methods_supported": CLIENT_AUTH_METHODS,
        "revocation_endpoint_auth_methods_supported": CLIENT_AUTH_METHODS,
        "scopes_supported": open_platform_scopes(),
        # RFC 8707: the token endpoint takes one `resource` (an API identifier), which becomes `aud`.
        "resource_indicators_supported": True,
        "service_documentation": issuer + "/api/v1/docs",
    }
    response = Response(json.dumps(document), content_type="application/json")
    response.headers["Cache-Control"] = "public, max-age=300"
    return response


def oauth_error_for_status(status: int) -> Response:
    """JSON answers for the HTTP-level failures (405, 413, ...) on OAuth paths."""
    messages = {
        404: "No such OAuth endpoint.",
        405: "This endpoint accepts POST only.",
        413: "The request body is too large.",
    }
    body = {"error": "invalid_request", "error_description": messages.get(status, "The request is invalid.")}
    headers = list(default_json_headers)
    if isinstance(request.routing_exception, MethodNotAllowed) and request.routing_exception.valid_methods:
        headers.append(("Allow", ", ".join(sorted(request.routing_exception.valid_methods))))  # RFC 9110 §15.5.6
    return Response(json.dumps(body), status=status, headers=headers)
