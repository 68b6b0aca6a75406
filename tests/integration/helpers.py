"""Assertions shared by the integration tests: RFC 6749 §5.2 error answers and database state."""
from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import func, select

from authserver.extensions import db
from authserver.models import AccessToken, UsedAssertion


def short(value: str, keep: int = 8) -> str:
    """A credential shortened for assertion messages: never print a whole secret or token."""
    return value[:keep] + "..." if isinstance(value, str) and len(value) > keep else value


def body_text(response) -> str:
    """The answer for an assertion message, with any access token shortened."""
    try:
        body = json.loads(response.get_data(as_text=True))
    except ValueError:
        return response.get_data(as_text=True)[:400]
    if isinstance(body, dict) and "access_token" in body:
        body["access_token"] = short(body["access_token"])
    return json.dumps(body)[:400]


def assert_no_store(response) -> None:
    assert "no-store" in response.headers.get("Cache-Control", ""), dict(response.headers)


def assert_oauth_error(response, status: int, error: str) -> dict:
    """An RFC 6749 §5.2 error: the status, the JSON {"error", "error_description"} and no caching."""
    assert response.status_code == status, (response.status_code, body_text(response))
    assert response.mimetype == "application/json", response.mimetype
    body = response.get_json()
    assert body["error"] == error, body
    assert isinstance(body.get("error_description"), str) and body["error_description"], body
    assert "access_token" not in body
    assert_no_store(response)
    return body


def count(model, *where) -> int:
    """Rows in the database now (a fresh read, not the session's identity map)."""
    db.session.rollback()
    return db.session.scalar(select(func.count()).select_from(model).where(*where))


def assert_nothing_issued(client_id: str | None = None) -> None:
    """A refused token request left no access token and no used assertion id behind."""
    token_filter = () if client_id is None else (AccessToken.client_id == client_id,)
    jti_filter = () if client_id is None else (UsedAssertion.client_id == client_id,)
    assert count(AccessToken, *token_filter) == 0
    assert count(UsedAssertion, *jti_filter) == 0


def token_record(jti: str):
    db.session.rollback()
    return db.session.execute(select(AccessToken).where(AccessToken.jti == jti)).scalar_one_or_none()


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_json(value: dict) -> str:
    return b64url(json.dumps(value, separators=(",", ":")).encode())


def unverified_claims(token: str) -> dict:
    import jwt

    return jwt.decode(token, options={"verify_signature": False})


@contextmanager
def case(label) -> Iterator[None]:
    """Name the case of a loop in the failure report (several cases share one app: fewer setups)."""
    try:
        yield
    except AssertionError as exc:
        exc.add_note(f"case: {label!r}"[:200])
        raise
