"""The developer console (/console): server-rendered pages for an organization's admins."""
from __future__ import annotations

from datetime import timedelta

from flask import Flask

# Idle lifetime of a console session; the cookie is refreshed on every request (Flask default).
SESSION_IDLE_LIFETIME = timedelta(hours=8)


def register(app: Flask) -> None:
    from .views import bp

    app.config["PERMANENT_SESSION_LIFETIME"] = SESSION_IDLE_LIFETIME
    app.register_blueprint(bp)
