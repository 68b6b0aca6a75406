"""The storage interface of the token path: every statement the token, introspection and revocation
endpoints run, in one place.

Each statement is an ordinary SQLAlchemy construct compiled once per dialect (`store.Prepared`) and
run on the request's DBAPI connection (`store`), skipping the ORM: per request, the ORM would cost
more CPU than the signature checks do. Nothing here commits; the caller owns the transaction
(services/token_issuance.py on the token path)."""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any, NamedTuple

from sqlalchemy import String, and_, bindparam, func, insert, or_, select, update

from . import store
from .models import (
    AccessToken,
    Account,
    Api,
    ApiClient,
    ApiOrgAccess,
    Client,
    ClientGrant,
    ClientKey,
    ClientSecret,
    RateLimitCounter,
    SigningKey,
    UsedAssertion,
)
from .store import Prepared


class SecretMatch(NamedTuple):
    client_id: str
    org_id: str
    keys_version: int
    access_version: int
    secret_id: str
    secret_hash: str
    last_used_at: int | None
    expires_at: int | None  # the secret's expiry (None: never)
    leaked_at: int | None  # set when a leak report named it


class ClientRecord(NamedTuple):
    client_id: str
    org_id: str
    keys_version: int
    access_version: int


class TokenRecord(NamedTuple):
    jti: str
    client_id: str
    account_id: str
    scope: str
    audience: str
    issued_at: int
    expires_at: int
    revoked_at: int | None
    disabled_at: int | None
    org_id: str  # the organization of the token's subject, which is always the client's
    kid: str | None  # the key that signed it (None: issued before the server recorded it)
    key_withdrawn_at: int | None  # set when that key was withdrawn: the token is no longer valid


class Duplicate(Exception):
    """A row with the same unique key exists (or a concurrent transaction committed one first)."""


# --- client authentication ----------------------------------------------------------------------

_SECRET_BY_HASH = Prepared(
    select(
        Client.client_id, Client.org_id, Client.keys_version, Client.access_version,
        ClientSecret.secret_id, ClientSecret.secret_hash, ClientSecret.last_used_at,
        ClientSecret.expires_at, ClientSecret.leaked_at,
    )
    .join(Client, Client.client_id == ClientSecret.client_id)
    .where(ClientSecret.secret_hash == bindparam("hash"))
)
_TOUCH_SECRET = Prepared(
    update(ClientSecret)
    .where(ClientSecret.secret_id == bindparam("sid"))
    .where(or_(ClientSecret.last_used_at.is_(None), ClientSecret.last_used_at < bindparam("now")))
    .values(last_used_at=bindparam("now"))
)


def secret_by_hash(secret_hash: str) -> SecretMatch | None:
    row = store.fetch_one(_SECRET_BY_HASH, {"hash": secret_hash})
    return SecretMatch(*row) if row is not None else None


def touch_secrets(uses: Iterable[tuple[str, int]]) -> None:
    """Record when secrets were last used ((secret_id, time) pairs); never moves a time backwards."""
    for secret_id, at in uses:
        store.run(_TOUCH_SECRET, {"sid": secret_id, "now": at})


# --- what a client may do -----------------------------------------------------------------------

_CLIENT_KEYS = Prepared(select(ClientKey.kid, ClientKey.public_jwk).where(ClientKey.client_id == bindparam("cid")))
_CLIENT_JWKS_URI = Prepared(select(Client.jwks_uri).where(Client.client_id == bindparam("cid")))
_CLIENT_BY_ID = Prepared(
    select(Client.client_id, Client.org_id, Client.keys_version, Client.access_version)
    .where(Client.client_id == bindparam("cid"))
)
_GRANTS = Prepared(
    select(Api.identifier, ClientGrant.scope, ClientGrant.is_default, Api.org_id, Api.open_to_all, ApiOrgAccess.org_id)
    .select_from(ClientGrant)
    .join(Api, Api.api_id == ClientGrant.api_id)
    .outerjoin(ApiOrgAccess, and_(ApiOrgAccess.api_id == Api.api_id, ApiOrgAccess.org_id == bindparam("org")))
    .where(ClientGrant.client_id == bindparam("cid"))
    .order_by(Api.identifier)
)
_BOUND_APIS = Prepared(
    select(Api.identifier, Api.org_id)
    .select_from(ApiClient)
    .join(Api, Api.api_id == ApiClient.api_id)
    .where(ApiClient.client_id == bindparam("cid"))
)
_ACTIVE_SUBJECT = Prepared(select(Account.account_id).where(
    Account.account_id == bindparam("sub"),
    Account.org_id == bindparam("org"),
    Account.disabled_at.is_(None),
))


def client_keys(client_id: str) -> list[tuple[str, str]]:
    """(kid, public JWK as JSON text) of each key registered for the client."""
    return store.fetch_all(_CLIENT_KEYS, {"cid": client_id})


def client_jwks_uri(client_id: str) -> str | None:
    """The URL of the client's JWK Set, if it registered one."""
    row = store.fetch_one(_CLIENT_JWKS_URI, {"cid": client_id})
    return row[0] if row is not None else None


def client_by_id(client_id: str) -> ClientRecord | None:
    """A client found by its id, for methods that authenticate it by its keys (private_key_jwt)."""
    row = store.fetch_one(_CLIENT_BY_ID, {"cid": client_id})
    return ClientRecord(*row) if row is not None else None


def client_grants(client_id: str, org_id: str) -> list[tuple[Any, ...]]:
    """(API identifier, granted scope, is default, API org, open to all, opened to this org) per grant."""
    return store.fetch_all(_GRANTS, {"cid": client_id, "org": org_id})


def bound_apis(client_id: str) -> list[tuple[str, str | None]]:
    """(API identifier, API org) of each API the client introspects for."""
    return store.fetch_all(_BOUND_APIS, {"cid": client_id})


def is_active_subject(org_id: str, account_id: str) -> bool:
    return store.fetch_one(_ACTIVE_SUBJECT, {"sub": account_id, "org": org_id}) is not None


# --- the token's transaction --------------------------------------------------------------------

_INSERT_TOKEN = Prepared(insert(AccessToken).values({c.name: bindparam(c.name) for c in AccessToken.__table__.columns}))
_INSERT_JTI = Prepared(insert(UsedAssertion).values(
    client_id=bindparam("client_id"), jti=bindparam("jti"), expires_at=bindparam("expires_at")))


def _counter_upsert(dialect_name: str) -> Any:
    from sqlalchemy.dialects import postgresql, sqlite

    upsert = postgresql.insert if dialect_name == "postgresql" else sqlite.insert
    stmt = upsert(RateLimitCounter).values(bucket=bindparam("bucket"), count=1, expires_at=bindparam("expires_at"))
    return stmt.on_conflict_do_update(
        index_elements=[RateLimitCounter.bucket], set_={"count": RateLimitCounter.count + 1}
    ).returning(RateLimitCounter.count)


_COUNT_HIT = Prepared(_counter_upsert)
_COUNT_READ = Prepared(select(RateLimitCounter.count).where(RateLimitCounter.bucket == bindparam("bucket")))


def insert_token(record: dict[str, Any]) -> None:
    store.run(_INSERT_TOKEN, record)


class Window(NamedTuple):
    """A rate-limit window counted in the database: its bucket, when it ends, the most events it admits."""

    bucket: str
    expires_at: int
    limit: int


class Recorded(NamedTuple):
    counted: int | None  # the window's count after this token's event (None: no window given)
    used: frozenset[str]  # the jtis recorded as used (a jti missing here was used already)


def record_token(record: dict[str, Any], window: Window | None, jtis: list[tuple[str, str, int]]) -> Recorded:
    """The writes of one token, in the caller's transaction: count the event in `window`, use up each
    (scope, jti, kept until) of `jtis`, insert the token record. The caller decides from the answer and
    rolls back when it refuses: an exceeded window or a jti used already.

    On PostgreSQL all of it is one statement (one round trip instead of one per write; a jti used already
    is skipped, not an error). Elsewhere the writes run one by one and stop at the first refusal."""
    if store.dialect_name() == "postgresql":
        row = list(store.fetch_one(_recording(window is not None, len(jtis)), _recording_params(record, window, jtis)))
        counted = row.pop(0) if window is not None else None
        inserted = frozenset(row.pop(0) or ()) if jtis else frozenset()
        return Recorded(counted, inserted)
    counted = None
    if window is not None:
        counted = count_hit(window.bucket, window.expires_at)
        if counted > window.limit:
            return Recorded(counted, frozenset())
    used: set[str] = set()
    for scope, jti, until in jtis:
        try:
            insert_used_jti(scope, jti, until)
        except Duplicate:
            return Recorded(counted, frozenset(used))
        used.add(jti)
    insert_token(record)
    return Recorded(counted, frozenset(used))


def _recording_statement(counted: bool, jtis: int) -> Any:
    """PostgreSQL: the writes of record_token as data-modifying WITH queries of one SELECT, which answers
    (the window's count, the jtis inserted, the token rows inserted)."""
    from sqlalchemy.dialects import postgresql

    columns: list[Any] = []
    if counted:
        counter = (
            postgresql.insert(RateLimitCounter)
            .values(bucket=bindparam("bucket"), count=1, expires_at=bindparam("bucket_expires_at"))
            .on_conflict_do_update(index_elements=[RateLimitCounter.bucket],
                                   set_={"count": RateLimitCounter.count + 1})
            .returning(RateLimitCounter.count)
            .cte("counted")
        )
        columns.append(select(counter.c.count).scalar_subquery())
    if jtis:
        used = (
            postgresql.insert(UsedAssertion)
            .values([{"client_id": bindparam(f"scope_{i}"), "jti": bindparam(f"jti_{i}"),
                      "expires_at": bindparam(f"until_{i}")} for i in range(jtis)])
            .on_conflict_do_nothing()
            .returning(UsedAssertion.jti)
            .cte("used")
        )
        columns.append(select(func.array_agg(used.c.jti)).scalar_subquery())
    token = (
        postgresql.insert(AccessToken)
        .values({c.name: bindparam(c.name) for c in AccessToken.__table__.columns})
        .returning(AccessToken.jti)
        .cte("token")
    )
    # Selected so the token's WITH query is part of the statement (a WITH query nothing names is left out).
    columns.append(select(func.count()).select_from(token).scalar_subquery())
    return select(*columns)


_RECORDING: dict[tuple[bool, int], Prepared] = {}


def _recording(counted: bool, jtis: int) -> Prepared:
    prepared = _RECORDING.get((counted, jtis))
    if prepared is None:  # built at first use: a handful of shapes (with or without a window, 0-2 jtis)
        prepared = _RECORDING[(counted, jtis)] = Prepared(lambda _dialect: _recording_statement(counted, jtis))
    return prepared


def _recording_params(record: dict[str, Any], window: Window | None,
                      jtis: list[tuple[str, str, int]]) -> dict[str, Any]:
    params = dict(record)
    if window is not None:
        params["bucket"] = window.bucket
        params["bucket_expires_at"] = window.expires_at
    for i, (scope, jti, until) in enumerate(jtis):
        params[f"scope_{i}"] = scope
        params[f"jti_{i}"] = jti
        params[f"until_{i}"] = until
    return params


def insert_used_jti(client_id: str, jti: str, expires_at: int) -> None:
    """Raises Duplicate when the client already used this jti (at once, or when a concurrent
    transaction inserting the same one commits first)."""
    try:
        store.run(_INSERT_JTI, {"client_id": client_id, "jti": jti, "expires_at": expires_at})
    except store.integrity_error():
        raise Duplicate() from None


def count_hit(bucket: str, expires_at: int) -> int:
    """Add one event to a rate-limit window; the window's count after it."""
    return int(store.fetch_one(_COUNT_HIT, {"bucket": bucket, "expires_at": expires_at})[0])


def count_read(bucket: str) -> int:
    row = store.fetch_one(_COUNT_READ, {"bucket": bucket})
    return row[0] if row is not None else 0


# --- introspection and revocation ---------------------------------------------------------------

# The record, its account's state and the state of the key that signed it, in one statement: the key
# the record names, or for a record older than that column, the key that verified the token.
_TOKEN_RECORD = Prepared(
    select(
        AccessToken.jti, AccessToken.client_id, AccessToken.account_id, AccessToken.scope, AccessToken.audience,
        AccessToken.issued_at, AccessToken.expires_at, AccessToken.revoked_at, Account.disabled_at, Account.org_id,
        AccessToken.kid, SigningKey.withdrawn_at,
    )
    .join(Account, Account.account_id == AccessToken.account_id)
    .outerjoin(SigningKey, SigningKey.kid == func.coalesce(AccessToken.kid, bindparam("kid", type_=String)))
    .where(AccessToken.jti == bindparam("jti"))
)
_REVOKE = Prepared(
    update(AccessToken)
    .where(AccessToken.jti == bindparam("jti"), AccessToken.revoked_at.is_(None))
    .values(revoked_at=bindparam("now"))
)


def token_record(jti: str, kid: str | None) -> TokenRecord | None:
    row = store.fetch_one(_TOKEN_RECORD, {"jti": jti, "kid": kid})
    return TokenRecord(*row) if row is not None else None


def revoke(jti: str, now: int) -> None:
    store.run(_REVOKE, {"jti": jti, "now": now})
