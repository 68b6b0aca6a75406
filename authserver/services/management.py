"""Who may call the management API: the one rule that turns a bearer token or a console session
into a caller acting for an organization."""
from __future__ import annotations

from dataclasses import dataclass

from ..access_tokens import KeyRing, decode_access_token
from ..errors import Forbidden, InsufficientScope, InvalidToken, Unauthenticated
from ..extensions import db
from ..models import Account
from .accounts import active_admin
from .apis import MANAGE_SCOPE, management_identifier
from .app_services import app_services
from .common import current_settings
from .tokens import active_token_record


@dataclass(frozen=True)
class Caller:
    """An active admin user acting for its organization."""

    account_id: str
    org_id: str


def _oauth_keyring() -> KeyRing:
    return app_services().keyring


def resolve_token_caller(token: str) -> Caller:
    """The caller behind an access token of this server (RFC 6750): a valid, unexpired, unrevoked token
    (RFC 9068, checked like introspection does) whose scope holds `manage` and whose subject is an
    active admin user. InvalidToken (401), InsufficientScope (403) or Forbidden (403) otherwise."""
    settings = current_settings()
    claims = decode_access_token(token, _oauth_keyring(), settings.issuer)
    record = active_token_record(claims) if claims is not None else None
    if claims is None or record is None or record.account_id != claims.get("sub"):
        raise InvalidToken("The access token is invalid, expired or revoked.")
    audience = management_identifier()
    if record.audience != audience or claims.get("aud") != audience:
        # The management API is an API like any other; tokens for other APIs are refused here.
        raise InvalidToken(f"The access token is for another API: ask for one with resource={audience}.")
    if MANAGE_SCOPE not in record.scope.split(" "):
        raise InsufficientScope(f"The access token lacks the {MANAGE_SCOPE} scope.")
    account = db.session.get(Account, record.account_id)
    admin = active_admin(account.account_id, account.org_id) if account is not None else None
    if admin is None:
        raise Forbidden("The token's subject is not an administrator of its organization.")
    return Caller(admin.account_id, admin.org_id)


def resolve_session_caller(account_id: object, org_id: object) -> Caller:
    """The caller behind a console session, re-checked on every request: the account must still be
    an active admin of the organization the session was opened for."""
    admin = active_admin(account_id, org_id)
    if admin is None:
        raise Unauthenticated("This session no longer belongs to an active administrator: sign in again.")
    return Caller(admin.account_id, admin.org_id)
