"""Errors of the management API as problem details (RFC 9457), mapped once from every failure kind."""
from __future__ import annotations

import json
import re

from flask import Response
from werkzeug.exceptions import HTTPException

from ..errors import (
    Conflict,
    DomainError,
    Forbidden,
    InsufficientScope,
    InvalidInput,
    InvalidToken,
    NotFound,
    PublicClientRefused,
    Unauthenticated,
)
from ..keyfetch import KeyFetchError
from ..services.apis import MANAGE_SCOPE
from ..services.common import current_settings
from .auth import CsrfFailed

PROBLEM_JSON = "application/problem+json"
API_PREFIX = "/api/v1"
REALM = "authserver"

# Problem types of this API: slug -> what it means. Each has an anchor on the docs page, which is
# what the `type` URI points at (RFC 9457 §3.1.1).
PROBLEM_TYPES = {
    "malformed-request": "The body is not valid JSON, or not valid UTF-8.",
    "validation-error": "The body or query does not match the schema of the operation; `errors` lists each field.",
    "invalid-input": "A rule of the domain refused a value (for example a name longer than 100 characters).",
    "public-client-refused": "Every client is confidential: public clients (type public, auth method none) are "
                             "refused.",
    "unauthenticated": "No credentials: send `Authorization: Bearer <access token>`.",
    "invalid-token": "The access token is malformed, expired, revoked, not issued by this server, or issued for "
                     "another API.",
    "insufficient-scope": "The access token lacks the `manage` scope.",
    "forbidden": "The caller may not do this (not an admin, a platform API that only the operator changes, or a CSRF "
                 "check failed).",
    "not-found": "No such object in the caller's organization.",
    "conflict": "The change conflicts with the current state (duplicate kid or API identifier, an API clients still "
                "have access to, ...).",
}


class ApiProblem(Exception):
    """A failure of the API layer itself (parsing, media types), rendered like a domain error."""

    def __init__(self, status: int, title: str, detail: str, *, slug: str | None = None,
                 errors: list[dict] | None = None, headers: dict | None = None):
        super().__init__(detail)
        self.status, self.title, self.detail = status, title, detail
        self.slug, self.errors, self.headers = slug, errors, headers or {}


# Each domain failure's status and title, most specific class first: the API's one mapping of them.
DOMAIN_PROBLEMS: tuple[tuple[type[DomainError], int, str], ...] = (
    (PublicClientRefused, 400, "Public clients are not supported"),
    (KeyFetchError, 400, "Cannot fetch keys"),
    (InvalidInput, 400, "Invalid input"),
    (InvalidToken, 401, "Invalid access token"),
    (Unauthenticated, 401, "Authentication required"),
    (InsufficientScope, 403, "Insufficient scope"),
    (CsrfFailed, 403, "CSRF check failed"),
    (Forbidden, 403, "Forbidden"),
    (NotFound, 404, "Not found"),
    (Conflict, 409, "Conflict"),
    (DomainError, 400, "Invalid request"),
)


def status_and_title(exc: DomainError) -> tuple[int, str]:
    return next((status, title) for kind, status, title in DOMAIN_PROBLEMS if isinstance(exc, kind))


def type_uri(slug: str) -> str:
    return f"{current_settings().issuer.rstrip('/')}{API_PREFIX}/docs#problem-{slug}"


def _slug(exc: DomainError) -> str:
    """InvalidInput -> invalid-input: the type follows the exception class, so it is defined once."""
    for cls in type(exc).__mro__:
        if cls is DomainError:
            return "invalid-input"
        slug = re.sub(r"(?<!^)(?=[A-Z])", "-", cls.__name__).lower()
        if slug in PROBLEM_TYPES:
            return slug
    return "invalid-input"


def problem_response(status: int, title: str, detail: str | None = None, *, slug: str | None = None,
                     errors: list[dict] | None = None, field: str | None = None,
                     headers: dict | None = None) -> Response:
    body: dict = {"type": type_uri(slug) if slug else "about:blank", "title": title, "status": status}
    if detail:
        body["detail"] = detail
    if field:
        body["field"] = field
    if errors:
        body["errors"] = errors
    response = Response(json.dumps(body), status=status, content_type=PROBLEM_JSON)
    for name, value in (headers or {}).items():
        response.headers[name] = value
    response.headers["Cache-Control"] = "no-store"
    return response


def _challenge(exc: DomainError) -> dict:
    """RFC 6750 §3: the WWW-Authenticate challenge of an authentication or scope failure."""
    if isinstance(exc, InvalidToken):
        return {"WWW-Authenticate": f'Bearer realm="{REALM}", error="invalid_token", error_description="{exc.message}"'}
    if isinstance(exc, InsufficientScope):
        return {"WWW-Authenticate": f'Bearer realm="{REALM}", error="insufficient_scope", scope="{MANAGE_SCOPE}"'}
    if isinstance(exc, Unauthenticated):
        return {"WWW-Authenticate": f'Bearer realm="{REALM}"'}
    return {}


def from_domain_error(exc: DomainError) -> Response:
    errors = [{"field": exc.field, "message": exc.message}] if exc.field else None
    status, title = status_and_title(exc)
    return problem_response(status, title, exc.message, slug=_slug(exc), errors=errors, field=exc.field,
                            headers=_challenge(exc))


def from_api_problem(exc: ApiProblem) -> Response:
    return problem_response(exc.status, exc.title, exc.detail, slug=exc.slug, errors=exc.errors, headers=exc.headers)


def from_http_error(exc: HTTPException) -> Response:
    """Werkzeug's errors (unknown route, wrong method, body too large) keep their headers, e.g. Allow."""
    headers = {k: v for k, v in exc.get_headers() if k.lower() != "content-type"}
    return problem_response(exc.code or 500, exc.name, exc.description, headers=headers)
