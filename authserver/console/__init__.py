"""The developer console (/console): server-rendered pages for an organization's admins."""
from __future__ import annotations

from datetime import timedelta

from flask import Flask


def register(app: Flask) -> None:
    from . import issuers  # noqa: F401  (its routes join the blueprint before it is registered)
    from .views import bp

    # The cookie only carries the session's id; the server decides when the session ends (idle timeout,
    # absolute lifetime, sign-out). The cookie is never kept longer than the longest session.
    settings = app.extensions["authserver.settings"]
    app.config["PERMANENT_SESSION_LIFETIME"] = timedelta(hours=settings.console_session_max_hours)
    app.register_blueprint(bp)
