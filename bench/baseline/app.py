"""Baseline for the benchmark: a minimal Flask + Authlib client-credentials server.

This follows Authlib's documented Flask pattern as closely as possible and adds
nothing: Flask-SQLAlchemy models built on Authlib's SQLAlchemy mixins, a
plain-text ``client_secret`` column compared directly (``OAuth2ClientMixin``),
Authlib's ``ClientCredentialsGrant``, opaque bearer tokens saved to a table,
and an SQLite file.  It does less work per token than authserver (no
assertion to verify, no signature to make, no hashed secret), which is what
makes it a useful floor to compare against.

Configuration: ``BASELINE_DATABASE`` is the SQLite file (default
``baseline.db`` in the working directory).

Set-up (creates the tables and one client with the given credentials)::

    BASELINE_CLIENT_SECRET=SECRET python bench/baseline/app.py init --client-id ID

Serve (as the benchmark does)::

    BASELINE_DATABASE=/tmp/x.db gunicorn -w 2 -b 127.0.0.1:8001 \
        --chdir bench/baseline 'app:create_app()'
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.integrations.sqla_oauth2 import (
    OAuth2ClientMixin,
    OAuth2TokenMixin,
    create_query_client_func,
    create_save_token_func,
)
from authlib.oauth2.rfc6749 import grants
from flask import Flask
from flask_sqlalchemy import SQLAlchemy

db = SQLAlchemy()


class Client(db.Model, OAuth2ClientMixin):
    __tablename__ = "oauth2_client"

    id = db.Column(db.Integer, primary_key=True)


class Token(db.Model, OAuth2TokenMixin):
    __tablename__ = "oauth2_token"

    id = db.Column(db.Integer, primary_key=True)
    user_id = db.Column(db.Integer, nullable=True)


authorization = AuthorizationServer()


def _database_uri() -> str:
    path = os.path.abspath(os.environ.get("BASELINE_DATABASE", "baseline.db"))
    return "sqlite:///" + path


def create_app() -> Flask:
    app = Flask(__name__)
    app.config["SQLALCHEMY_DATABASE_URI"] = _database_uri()
    app.config["SQLALCHEMY_TRACK_MODIFICATIONS"] = False
    db.init_app(app)

    authorization.init_app(
        app,
        query_client=create_query_client_func(db.session, Client),
        save_token=create_save_token_func(db.session, Token),
    )
    authorization.register_grant(grants.ClientCredentialsGrant)

    @app.route("/oauth/token", methods=["POST"])
    def issue_token():
        return authorization.create_token_response()

    @app.route("/healthz")
    def healthz():
        return {"status": "ok"}

    return app


def init(client_id: str, client_secret: str, scope: str = "read write") -> None:
    """Create the schema and one confidential client using client_secret_basic."""
    app = create_app()
    with app.app_context():
        db.create_all()
        client = Client(
            client_id=client_id,
            client_secret=client_secret,
            client_id_issued_at=int(time.time()),
        )
        client.set_client_metadata(
            {
                "client_name": "bench",
                "grant_types": ["client_credentials"],
                "response_types": [],
                "scope": scope,
                "token_endpoint_auth_method": "client_secret_basic",
            }
        )
        db.session.add(client)
        db.session.commit()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p_init = sub.add_parser("init", help="create the tables and one client")
    p_init.add_argument("--client-id", required=True)
    p_init.add_argument(
        "--client-secret",
        default=os.environ.get("BASELINE_CLIENT_SECRET"),
        help="default: the environment variable BASELINE_CLIENT_SECRET (keeps it off the command line)",
    )
    p_init.add_argument("--scope", default="read write")
    args = parser.parse_args(argv)
    if args.command == "init" and not args.client_secret:
        parser.error("give --client-secret or set BASELINE_CLIENT_SECRET")
    if args.command == "init":
        init(args.client_id, args.client_secret, args.scope)
        print(json.dumps({"client_id": args.client_id, "database": _database_uri()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
