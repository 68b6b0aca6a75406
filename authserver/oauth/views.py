"""The OAuth endpoints' blueprint: parse strictly, hand over to Authlib, answer per RFC 6749 §5.2."""
from __future__ import annotations

from json import loads as json_loads

from authlib.consts import default_json_headers
from flask import Blueprint, Response, current_app, json, request
from werkzeug.exceptions import MethodNotAllowed

from ..crypto.keys import ASSERTION_ALGS
from ..services.apis import open_platform_scopes
from ..services.client_secrets import LEAK_REPORTER, MAX_LEAK_REPORT_SECRETS, MAX_SECRET_LENGTH, report_leaked_secrets
from ..services.common import Actor
from ..services.signing_keys import jwks
from .constants import (
    CLIENT_AUTH_METHODS,
    FORM_CONTENT_TYPE,
    GRANT_TYPE_JWT_BEARER,
    JSON_CONTENT_TYPE,
    PARAM_RESOURCE,
    PATH_INTROSPECT,
    PATH_JWKS,
    PATH_METADATA,
    PATH_REVOKE,
    PATH_SECRET_LEAK,
    PATH_TOKEN,
)
from .errors import (
    InsecureTransportError,
    InvalidRequestError,
    InvalidTargetError,
    RequestTooLargeError,
    SlowDownError,
)
from .server import secure_transport

bp = Blueprint("oauth", __name__)


def _server():
    return current_app.extensions["authserver.oauth"]


def _error(error) -> Response:
    return _server().handle_error_response(None, error)


@bp.before_request
def check_form_request():
    """RFC 6749 §3.2: POST, form-encoded, each parameter at most once; bodies bounded."""
    req = request._get_current_object()  # the proxy's object, read once
    if req.method != "POST":
        return None
    settings = _server().services.settings
    if not secure_transport(req, settings.issuer):
        return _error(InsecureTransportError())
    limit = settings.oauth_max_body_bytes
    if req.content_length is not None and req.content_length > limit:
        return _error(RequestTooLargeError(f"The request body is larger than {limit} bytes."))
    # One byte over the limit: a chunked body (no Content-Length) is cut there, so reaching it means too large.
    req.max_content_length = limit + 1
    if req.endpoint == "oauth.report_secret_leak":
        return None  # a JSON body, bounded above and checked by its view
    if req.mimetype != FORM_CONTENT_TYPE:
        return _error(InvalidRequestError("The request body must be application/x-www-form-urlencoded."))
    form = req.form  # parsed within max_content_length
    if req.stream.tell() > limit:
        return _error(RequestTooLargeError(f"The request body is larger than {limit} bytes."))
    for key, values in dict.items(form):  # a MultiDict holds each name's values as one list
        if len(values) > 1:
            if key == PARAM_RESOURCE:  # RFC 8707 §2 allows several; a token here names exactly one API
                return _error(InvalidTargetError("Ask for one resource per token request: each access token "
                                                 "is for exactly one API."))
            return _error(InvalidRequestError("A request parameter is repeated: each may appear at most once."))
        if "\x00" in values[0]:  # no parameter has a use for it, and PostgreSQL text refuses it (a 500 otherwise)
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


LEAK_REPORT_ACCEPTED = {"status": "accepted"}


def _leak_report_entries() -> list[str]:
    """{"secrets": ["...", ...]}: one to MAX_LEAK_REPORT_SECRETS strings; anything else is a 400
    (RFC 6749 §5.2 descriptions allow no double quote, so the messages name the member without them)."""
    if request.mimetype != JSON_CONTENT_TYPE:
        raise InvalidRequestError(
            "The request body must be application/json: an object with a secrets array of strings."
        )
    limit = _server().services.settings.oauth_max_body_bytes
    raw = request.get_data(cache=True)  # read within max_content_length (set before the view)
    if len(raw) > limit:
        raise RequestTooLargeError(f"The request body is larger than {limit} bytes.")
    try:
        body = json_loads(raw.decode("utf-8"), parse_constant=_refuse_constant)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise InvalidRequestError("The request body is not valid JSON (UTF-8): send an object with a secrets array "
                                  "of strings.") from None
    if not isinstance(body, dict) or set(body) != {"secrets"}:
        raise InvalidRequestError("The request body must be a JSON object with one member, secrets.")
    reported = body["secrets"]
    if not isinstance(reported, list) or not reported:
        raise InvalidRequestError("The secrets member must be a non-empty array of strings.")
    if len(reported) > MAX_LEAK_REPORT_SECRETS:
        raise InvalidRequestError(f"The secrets array may hold at most {MAX_LEAK_REPORT_SECRETS} strings per request; "
                                  "send the rest in further requests.")
    if not all(isinstance(item, str) and 0 < len(item) <= MAX_SECRET_LENGTH for item in reported):
        raise InvalidRequestError(f"Each entry of the secrets array must be a string of 1 to {MAX_SECRET_LENGTH} "
                                  "characters.")
    return reported


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not JSON")


@bp.post(PATH_SECRET_LEAK)
def report_secret_leak():
    """Secret scanners report client secrets they found in public. No client authentication: the
    reporter need not be a client. Every valid secret named is disabled and audited; the answer is
    the same 202 whatever was found, so it tells nobody whether a string is a secret."""
    limits = _server().services.rate_limiter
    decision = limits.hit(limits.policies.leak_reports_per_address, request.remote_addr or "unknown")
    if not decision.allowed:
        return _error(SlowDownError("Too many leak reports from this address; retry later.", decision.retry_after))
    try:
        reported = _leak_report_entries()
    except InvalidRequestError as error:
        return _error(error)
    report_leaked_secrets(reported, Actor(LEAK_REPORTER, request.remote_addr))
    response = Response(json.dumps(LEAK_REPORT_ACCEPTED), status=202, content_type=JSON_CONTENT_TYPE)
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get(PATH_JWKS)
def jwks_document():
    response = Response(json.dumps(jwks()), content_type="application/jwk-set+json")
    response.headers["Cache-Control"] = "public, max-age=60"
    return response


@bp.get(PATH_METADATA)
def metadata():
    """RFC 8414 §2."""
    settings = _server().services.settings
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
        # private_key_jwt: the algorithms a client assertion may be signed with (RFC 8414 §2).
        "token_endpoint_auth_signing_alg_values_supported": list(ASSERTION_ALGS),
        "introspection_endpoint_auth_signing_alg_values_supported": list(ASSERTION_ALGS),
        "revocation_endpoint_auth_signing_alg_values_supported": list(ASSERTION_ALGS),
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
