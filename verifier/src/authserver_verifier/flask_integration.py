"""Flask helpers: a view decorator that answers per RFC 6750 §3, and the RFC 9728 metadata route.

Flask is imported only when a helper is used, so the library itself does not need it."""
from __future__ import annotations

import functools
import json
import logging
import re
import urllib.parse
from collections.abc import Callable, Iterable
from typing import Any

from .errors import VerificationError, VerifierUnavailable
from .verifier import RESOURCE_METADATA_PREFIX, Verifier, _scope_set

log = logging.getLogger("authserver_verifier")

# RFC 6750 §2.1: b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
_B64TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
NO_TOKEN_DESCRIPTION = (
    "This resource needs an access token in the Authorization header (Authorization: Bearer <token>)."
)


def _import_flask():
    try:
        import flask
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError(
            "the Flask helpers of authserver_verifier need Flask: pip install 'authserver-verifier[flask]'"
        ) from error
    return flask


def _quoted(value: str) -> str:
    """A quoted-string for a challenge parameter: RFC 6750 §3 allows %x20-21 / %x23-5B / %x5D-7E."""
    cleaned = "".join(ch if 0x20 <= ord(ch) <= 0x7E and ch not in '"\\' else "'" if ch == '"' else " " for ch in value)
    return f'"{cleaned}"'


def bearer_challenge(*, realm: str | None = None, error: str | None = None, description: str | None = None,
                     scopes: Iterable[str] = (), resource_metadata: str | None = None) -> str:
    """A ``WWW-Authenticate`` value (RFC 6750 §3, RFC 9728 §5.1)."""
    params = []
    if realm:
        params.append(f"realm={_quoted(realm)}")
    if error:
        params.append(f"error={_quoted(error)}")
        if description:
            params.append(f"error_description={_quoted(description)}")
    scopes = sorted(set(scopes))
    if scopes:
        params.append(f"scope={_quoted(' '.join(scopes))}")
    if resource_metadata:
        params.append(f"resource_metadata={_quoted(resource_metadata)}")
    return "Bearer" + (" " + ", ".join(params) if params else "")


def require_token(verifier: Verifier, scopes: str | Iterable[str] = (), introspect: bool = False, *,
                  realm: str | None = None) -> Callable:
    """Decorate a Flask view: it runs only with a valid access token from ``Authorization: Bearer``
    carrying every scope in ``scopes``; the token (an ``AccessToken``) is then in ``flask.g.access_token``.
    With ``introspect=True`` the token is also checked at the introspection endpoint (revocation).

    Failures answer JSON ``{"error", "error_description"}`` with 400/401/403 and a Bearer challenge, or
    503 when the issuer cannot be reached and no keys are cached. A request without credentials gets
    401 and a challenge without an error code (RFC 6750 §3.1). Tokens in the query or body are refused.
    """
    flask = _import_flask()
    required = _scope_set(scopes)
    if introspect and verifier.introspection_client_id is None:
        raise ValueError("require_token(..., introspect=True) needs a Verifier with introspection_client")
    realm = verifier.audience if realm is None else realm

    def respond(status: int, error: str | None, description: str, scopes: Iterable[str] = required):
        body = {"error": error, "error_description": description} if error else {"error_description": description}
        response = flask.Response(json.dumps(body), status=status, content_type="application/json")
        response.headers["Cache-Control"] = "no-store"
        if status == 503:
            response.headers["Retry-After"] = "30"
        else:
            response.headers["WWW-Authenticate"] = bearer_challenge(
                realm=realm, error=error, description=description, scopes=scopes,
                resource_metadata=verifier.resource_metadata_url)
        return response

    def decorator(view: Callable) -> Callable:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any):
            request = flask.request
            in_query = "access_token" in request.args
            header = request.headers.get("Authorization")
            if header is None:
                if in_query:
                    return respond(400, "invalid_request",
                                   "Access tokens are accepted only in the Authorization header, not in the URL.")
                return respond(401, None, NO_TOKEN_DESCRIPTION)
            scheme, _, credentials = header.strip().partition(" ")
            if scheme.lower() != "bearer":
                return respond(401, None, NO_TOKEN_DESCRIPTION)
            token = credentials.strip(" ")
            if not _B64TOKEN.fullmatch(token):
                return respond(
                    400, "invalid_request", "The Authorization header does not hold one well-formed Bearer token."
                )
            if in_query:
                return respond(400, "invalid_request", "The request carries an access token in more than one way.")
            try:
                access_token = verifier.verify(token, required)
                if introspect:
                    access_token = verifier.introspect(token, required)
            except VerifierUnavailable as error:
                log.warning("authserver_verifier: cannot check an access token: %s", error.description)
                return respond(503, error.error, "The access token cannot be checked right now; try again later.")
            except VerificationError as error:
                return respond(error.status_code, error.error, error.description, error.scopes or required)
            flask.g.access_token = access_token
            return view(*args, **kwargs)

        return wrapper

    return decorator


def protected_resource_metadata_path(resource: str) -> str:
    """The path part of the RFC 9728 §3.1 well-known URL for ``resource``."""
    parts = urllib.parse.urlsplit(resource)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"{resource!r} is not an http(s) URL: pass path= to choose where the metadata is served")
    return RESOURCE_METADATA_PREFIX + ("" if parts.path == "/" else parts.path)


def register_protected_resource_metadata(app, verifier: Verifier, *, scopes_supported: Iterable[str] | None = None,
                                         resource_name: str | None = None, path: str | None = None) -> str:
    """Serve ``verifier.protected_resource_metadata(...)`` with GET on the RFC 9728 well-known path of
    the API's identifier (``/.well-known/oauth-protected-resource`` followed by the identifier's path,
    if any). Returns the path."""
    flask = _import_flask()
    document = json.dumps(verifier.protected_resource_metadata(scopes_supported=scopes_supported,
                                                               resource_name=resource_name))
    path = path or protected_resource_metadata_path(verifier.audience)

    def protected_resource_metadata():
        response = flask.Response(document, content_type="application/json")
        response.headers["Cache-Control"] = "public, max-age=3600"
        return response

    app.add_url_rule(path, endpoint="authserver_verifier_protected_resource_metadata",
                     view_func=protected_resource_metadata, methods=["GET"])
    return path
