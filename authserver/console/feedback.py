"""The one place where a domain failure becomes what the console shows: a form error or a flash."""
from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from flask import flash

from ..errors import Conflict, DomainError, Forbidden, InvalidInput, NotFound, Unauthenticated

T = TypeVar("T")

# Each domain failure's HTTP status and page title, most specific class first: the console's one mapping.
DOMAIN_PAGES: tuple[tuple[type[DomainError], int, str], ...] = (
    (InvalidInput, 400, "Invalid input"),
    (Unauthenticated, 401, "Sign-in required"),
    (Forbidden, 403, "Forbidden"),
    (NotFound, 404, "Not found"),
    (Conflict, 409, "Conflict"),
    (DomainError, 400, "Invalid request"),
)


def status_of(exc: DomainError) -> int:
    return next(status for kind, status, _ in DOMAIN_PAGES if isinstance(exc, kind))


class FormErrors(dict):
    """Messages by form field ("form" for the form as a whole), with the HTTP status to answer."""

    def __init__(self, messages: dict[str, str] | None = None, status: int = 400):
        super().__init__(messages or {})
        self.status = status


def form_errors(exc: DomainError, fields: tuple[str, ...], default: str = "form") -> FormErrors:
    """Attach the service's message to the field it names when the form has that field."""
    field = exc.field if exc.field in fields else default
    return FormErrors({field: exc.message}, status=status_of(exc))


def attempt(fields: tuple[str, ...], action: Callable[..., T], *args, default_field: str = "form",
            **kwargs) -> tuple[T | None, FormErrors]:
    """Run a service call. A refused rule becomes form errors (on `default_field` when the form has no
    field of the name the service gives); NotFound stays a 404 page. Every other keyword goes to the service."""
    try:
        return action(*args, **kwargs), FormErrors()
    except NotFound:
        raise
    except DomainError as exc:
        return None, form_errors(exc, fields, default_field)


def flash_errors(errors: FormErrors) -> None:
    for message in errors.values():
        flash(message, "error")


def error_page_text(exc: DomainError) -> tuple[int, str, str]:
    """(status, title, message) of the page shown when a refused rule ends the request."""
    if isinstance(exc, NotFound):
        return 404, "Not found", exc.message + " It may have been deleted, or it belongs to another organization."
    status, title = next((status, title) for kind, status, title in DOMAIN_PAGES if isinstance(exc, kind))
    return status, title, exc.message
