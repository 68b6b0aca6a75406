"""The management API, /api/v1: JSON over the same services as the console and the CLI."""
from __future__ import annotations

from flask import Flask

from ..csrf import csrf

# Each resource module declares its operations in the route table when imported, in this order,
# which is also the order of the OpenAPI document and the docs page.
from . import accounts, apis, audit, clients, icons, issuers, keys, openapi, secrets  # noqa: F401,I001
from .routing import bp


def register(app: Flask) -> None:
    # The form-based CSRF check of the console does not fit an API that bearer tokens call:
    # the API checks the CSRF token itself, for session callers only (see auth.py).
    csrf.exempt(bp)
    app.register_blueprint(bp)
