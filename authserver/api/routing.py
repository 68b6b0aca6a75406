"""The route table of /api/v1. Every operation is declared once, with its schemas; Flask's routes and
the OpenAPI document are both built from this table, so they cannot drift apart."""
from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from flask import Blueprint, Response, request
from pydantic import BaseModel, ValidationError
from werkzeug.exceptions import HTTPException

from ..errors import DomainError, NotFound
from .auth import authenticate
from .problems import API_PREFIX, ApiProblem, from_api_problem, from_domain_error, from_http_error

bp = Blueprint("api_v1", __name__, url_prefix=API_PREFIX)

JSON = "application/json"
IDENTIFIER_MAX = 256


@dataclass(frozen=True)
class Binary:
    """A response body that is not JSON, e.g. an image."""

    media_type: str
    description: str
    schema: dict | None = None  # default: a string of bytes of that media type


@dataclass(frozen=True)
class Html:
    description: str


@dataclass(frozen=True)
class Upload:
    """A request body that is a file: sent raw with its media type, or as one field of multipart/form-data."""

    media_types: tuple[str, ...]
    form_field: str
    description: str


@dataclass(frozen=True)
class Reply:
    body: BaseModel | None = None
    status: int | None = None
    headers: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Operation:
    method: str
    path: str  # OpenAPI path template below API_PREFIX, e.g. "/clients/{client_id}"
    endpoint: str
    summary: str
    description: str
    tag: str
    responses: dict  # status -> response model, Binary, Html or None (no body)
    body: type[BaseModel] | None = None
    body_optional: bool = False  # no body at all stands for an empty object
    upload: Upload | None = None
    query: type[BaseModel] | None = None
    errors: tuple[int, ...] = ()
    authenticated: bool = True
    converters: dict = field(default_factory=dict)
    response_headers: dict = field(default_factory=dict)  # status -> {header: description}

    @property
    def path_parameters(self) -> list[str]:
        return re.findall(r"{(\w+)}", self.path)

    @property
    def flask_rule(self) -> str:
        def convert(match: re.Match) -> str:
            name = match.group(1)
            converter = self.converters.get(name)
            return f"<{converter}:{name}>" if converter else f"<{name}>"

        return re.sub(r"{(\w+)}", convert, self.path)

    @property
    def success_status(self) -> int:
        return min(s for s in self.responses if 200 <= s < 300)

    def error_statuses(self) -> list[int]:
        statuses = set(self.errors)
        if self.authenticated:
            statuses |= {401, 403}
        if self.path_parameters:
            statuses.add(404)
        if self.body is not None or self.upload is not None:
            statuses |= {400, 413, 415}
        if self.body is not None or self.query is not None:
            statuses.add(422)
        return sorted(statuses)


OPERATIONS: list[Operation] = []


def operation(method: str, path: str, *, summary: str, tag: str, responses: dict, description: str = "",
              **options: Any) -> Callable:
    """Declare an operation and register its Flask route. The view gets the call context (None for
    public operations), the path parameters, and `body`, `query` or `upload` when declared."""

    def decorate(view: Callable) -> Callable:
        op = Operation(method=method, path=path, endpoint=view.__name__, summary=summary,
                       description=description or (view.__doc__ or "").strip(), tag=tag, responses=responses,
                       **options)
        OPERATIONS.append(op)
        bp.add_url_rule(op.flask_rule, endpoint=op.endpoint, view_func=_handler(op, view), methods=[method])
        return view

    return decorate


def _handler(op: Operation, view: Callable) -> Callable:
    def handle(**path_params: str):
        for value in path_params.values():
            # Identifiers are short printable text; anything else names nothing here.
            if len(value) > IDENTIFIER_MAX or not value.isprintable():
                raise NotFound("Not found.")
        context = authenticate() if op.authenticated else None
        kwargs: dict[str, Any] = dict(path_params)
        if op.query is not None:
            kwargs["query"] = _parse_query(op.query)
        if op.body is not None:
            absent = op.body_optional and not request.content_length and not request.get_data(cache=True)
            kwargs["body"] = op.body.model_validate({}) if absent else _parse_json_body(op.body)
        if op.upload is not None:
            kwargs["upload"] = _read_upload(op.upload)
        return _render(op, view(context, **kwargs))

    handle.__name__ = view.__name__
    return handle


def _render(op: Operation, result: Any) -> Response:
    if isinstance(result, Response):
        return result
    reply = result if isinstance(result, Reply) else Reply(body=result)
    status = reply.status or (204 if reply.body is None else op.success_status)
    if reply.body is None:
        response = Response(status=status)
    else:
        response = Response(reply.body.model_dump_json(), status=status, content_type=JSON)
    for name, value in reply.headers.items():
        response.headers[name] = value
    return response


def _validation_problem(exc: ValidationError, where: str) -> ApiProblem:
    errors = []
    for error in exc.errors(include_url=False, include_input=False, include_context=False):
        loc = ".".join(str(part) for part in error["loc"])
        errors.append({"field": loc, "message": error["msg"]})
    summary = "; ".join(f"{e['field'] or where}: {e['message']}" for e in errors[:5])
    return ApiProblem(422, "Unprocessable Content", f"The {where} does not match the schema: {summary}.",
                      slug="validation-error", errors=errors)


def _parse_query(model: type[BaseModel]) -> BaseModel:
    try:
        return model.model_validate({key: request.args.get(key) for key in request.args})
    except ValidationError as exc:
        raise _validation_problem(exc, "query") from None


def _has_lone_surrogate(value: Any) -> bool:
    """JSON's \\ud800 escapes can name half a character (RFC 8259 §8.2); such text cannot be stored."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return True
        return False
    if isinstance(value, dict):
        return any(_has_lone_surrogate(k) or _has_lone_surrogate(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_lone_surrogate(v) for v in value)
    return False


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not a JSON number")


def _unsupported_media_type(accepted: str) -> ApiProblem:
    header = "Accept-Patch" if request.method == "PATCH" else "Accept-Post"
    return ApiProblem(415, "Unsupported Media Type", f"Send the request body as {accepted}.",
                      headers={header: accepted})


def _parse_json_body(model: type[BaseModel]) -> BaseModel:
    mimetype = request.mimetype
    if mimetype != JSON and not (mimetype.startswith("application/") and mimetype.endswith("+json")):
        raise _unsupported_media_type(JSON)
    raw = request.get_data(cache=True)
    try:
        payload = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
    except UnicodeDecodeError:
        raise ApiProblem(400, "Bad Request", "The request body is not valid UTF-8.", slug="malformed-request") from None
    except json.JSONDecodeError as exc:
        raise ApiProblem(400, "Bad Request", f"The request body is not valid JSON: {exc.msg} at line {exc.lineno} "
                         f"column {exc.colno}.", slug="malformed-request") from None
    except (ValueError, RecursionError) as exc:
        detail = str(exc) if isinstance(exc, ValueError) else "it is nested too deeply"
        raise ApiProblem(400, "Bad Request", f"The request body is not valid JSON: {detail}.",
                         slug="malformed-request") from None
    if _has_lone_surrogate(payload):
        raise ApiProblem(400, "Bad Request", "The request body holds a lone UTF-16 surrogate escape.",
                         slug="malformed-request")
    try:
        return model.model_validate(payload)
    except ValidationError as exc:
        raise _validation_problem(exc, "request body") from None


def _read_upload(spec: Upload) -> bytes:
    mimetype = request.mimetype
    if mimetype == "multipart/form-data":
        file = request.files.get(spec.form_field)
        if file is None:
            raise ApiProblem(400, "Bad Request", f"Send the file in the multipart field {spec.form_field!r}.",
                             slug="malformed-request")
        return file.read()
    if mimetype in spec.media_types:
        return request.get_data(cache=True)
    raise _unsupported_media_type(", ".join((*spec.media_types, "multipart/form-data")))


@bp.errorhandler(DomainError)
def _domain_error(exc: DomainError):
    return from_domain_error(exc)


@bp.errorhandler(ApiProblem)
def _api_problem(exc: ApiProblem):
    return from_api_problem(exc)


@bp.errorhandler(HTTPException)
def _http_error(exc: HTTPException):
    return from_http_error(exc)


@bp.after_request
def _no_store(response: Response) -> Response:
    # Management answers describe credentials and are per caller: no cache may keep them.
    response.headers.setdefault("Cache-Control", "no-store")
    return response
