#!/usr/bin/env python3
"""Fill an authserver database with a large amount of data, fast.

For the benchmark's "cost must not grow with the data" check: by default
1,000,000 access-token records and 100,000 client applications, inserted with
SQLAlchemy Core bulk inserts (executemany in batches) straight into the
tables that ``authserver init`` created.

What is inserted
- organizations: one per 100 clients (1,000 by default), each with one service
  account;
- clients: 100,000, 100 per organization, each with one client secret (a
  random value in the server's stored-hash format, so no seeded secret can
  ever authenticate) and, when the database already holds a client key to copy
  the shape from, one public key;
- access tokens: 1,000,000 records spread over the seeded clients and
  accounts, plus 1 % for the given client/account (the ones the benchmark
  uses). All are still valid for hours, so a background purge of expired
  tokens has nothing to do during a benchmark run;
- optionally used assertion ``jti`` records (``--used-assertions``).

The schema is read from the database itself (reflection), so the script
follows migrations without importing the server; NOT NULL columns it does not
know get a neutral value of their type. Afterwards it runs ANALYZE so the
query planner has statistics, as a production database would.

Usage::

    .venv/bin/python bench/seed_large.py [DATABASE_URL] [--tokens N] [--clients N]
        [--account-id ID --client-id ID]

DATABASE_URL defaults to AUTHSERVER_DATABASE_URL. ``bench/run.py --large``
calls :func:`seed` before starting the server.
"""

from __future__ import annotations

import argparse
import os
import random
import secrets
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from sqlalchemy import (
    Boolean,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    func,
    select,
    text,
)
from sqlalchemy.engine import Engine, make_url

CLIENTS_PER_ORG = 100
BATCH = 20_000


def normalise_url(url: str) -> str:
    """Use psycopg 3 for PostgreSQL when the URL names no driver."""
    u = make_url(url)
    if u.drivername in ("postgresql", "postgres"):
        u = u.set(drivername="postgresql+psycopg")
    return u.render_as_string(hide_password=False)


def _neutral(col) -> Any:
    t = col.type
    if isinstance(t, Boolean):
        return False
    if isinstance(t, Integer):
        return 0
    if isinstance(t, LargeBinary):
        return b""
    if isinstance(t, (String, Text)):
        return ""
    try:
        py = t.python_type
    except NotImplementedError:
        return None
    return py()


def _filler(table: Table, known: Iterable[str]) -> dict[str, Any]:
    """Values for NOT NULL columns without a server default that we don't set."""
    known = set(known)
    out: dict[str, Any] = {}
    for col in table.columns:
        if col.name in known or col.nullable or col.server_default is not None:
            continue
        if col.primary_key and col.autoincrement in (True, "auto") and isinstance(col.type, Integer):
            continue
        out[col.name] = _neutral(col)
    return out


def _rows(table: Table, gen: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    filler: dict[str, Any] | None = None
    cols = {c.name for c in table.columns}
    for row in gen:
        if filler is None:
            missing = set(row) - cols
            if missing:
                raise SystemExit(f"table {table.name} has no column(s) {sorted(missing)}")
            filler = _filler(table, row)
        yield {**filler, **row} if filler else row


def _insert(engine: Engine, table: Table, gen: Iterator[dict[str, Any]], total: int, log) -> None:
    t0 = time.monotonic()
    done = 0
    batch: list[dict[str, Any]] = []
    stmt = table.insert()
    for row in _rows(table, gen):
        batch.append(row)
        if len(batch) >= BATCH:
            with engine.begin() as conn:
                conn.execute(stmt, batch)
            done += len(batch)
            batch = []
            if done % 200_000 == 0:
                log(f"    {table.name}: {done:,}/{total:,}")
    if batch:
        with engine.begin() as conn:
            conn.execute(stmt, batch)
        done += len(batch)
    log(f"    {table.name}: {done:,} rows in {time.monotonic() - t0:.1f} s")


def seed(
    db_url: str,
    tokens: int = 1_000_000,
    clients: int = 100_000,
    account_id: str | None = None,
    client_id: str | None = None,
    used_assertions: int = 0,
    log: Callable[[str], None] = print,
    rng_seed: int = 7523,
) -> dict[str, int]:
    engine = create_engine(normalise_url(db_url))
    md = MetaData()
    names = ["organizations", "accounts", "clients", "client_secrets", "client_keys",
             "access_tokens", "used_assertions"]
    md.reflect(engine, only=lambda name, _md: name in names)
    missing = [n for n in names[:3] + ["access_tokens"] if n not in md.tables]
    if missing:
        raise SystemExit(f"{db_url.split('@')[-1]}: no table(s) {missing}; run `authserver init` first")
    t = md.tables
    rnd = random.Random(rng_seed)
    now = int(time.time())

    def hexid(bits: int) -> str:
        return f"{rnd.getrandbits(bits):0{bits // 4}x}"

    # Shapes copied from what the server itself stored, when there is something.
    scheme = "hs256v1"
    key_shape: dict[str, Any] | None = None
    with engine.connect() as conn:
        if "client_secrets" in t:
            h = conn.execute(select(t["client_secrets"].c.secret_hash).limit(1)).scalar()
            if h and "$" in h:
                scheme = h.split("$", 1)[0]
        if "client_keys" in t:
            k = conn.execute(select(t["client_keys"]).limit(1)).mappings().first()
            if k is not None:
                key_shape = {c: k[c] for c in ("kty", "key_type", "public_jwk") if c in k}
        before = conn.execute(select(func.count()).select_from(t["access_tokens"])).scalar()

    n_orgs = max(1, -(-clients // CLIENTS_PER_ORG))
    org_ids = [f"org_{hexid(80)}" for _ in range(n_orgs)]
    acc_ids = [f"acc_{hexid(80)}" for _ in range(n_orgs)]
    client_ids = [hexid(128) for _ in range(clients)]
    secret_ids = [f"sec_{hexid(80)}" for _ in range(clients)]

    log(f"  seeding {n_orgs:,} organizations, {clients:,} clients, {tokens:,} access tokens")
    _insert(engine, t["organizations"], (
        {"org_id": o, "name": f"seed org {i}", "created_at": now - 86400}
        for i, o in enumerate(org_ids)), n_orgs, log)
    _insert(engine, t["accounts"], (
        {"account_id": a, "org_id": org_ids[i], "name": f"seed service {i}", "kind": "service",
         "created_at": now - 86400}
        for i, a in enumerate(acc_ids)), n_orgs, log)
    _insert(engine, t["clients"], (
        {"client_id": c, "org_id": org_ids[i // CLIENTS_PER_ORG], "name": f"seed client {i}",
         "description": "", "created_at": now - 86400, "updated_at": now - 86400}
        for i, c in enumerate(client_ids)), clients, log)
    if "client_secrets" in t:
        _insert(engine, t["client_secrets"], (
            {"secret_id": secret_ids[i], "client_id": c, "secret_hash": f"{scheme}${hexid(256)}",
             "created_at": now - 86400}
            for i, c in enumerate(client_ids)), clients, log)
    if "client_keys" in t and key_shape is not None:
        _insert(engine, t["client_keys"], (
            {"client_id": c, "kid": hexid(64), **key_shape, "created_at": now - 86400}
            for c in client_ids), clients, log)

    def token_rows() -> Iterator[dict[str, Any]]:
        for i in range(tokens):
            if client_id and account_id and i % 100 == 0:
                cid, aid, sid = client_id, account_id, None
            else:
                j = rnd.randrange(clients)
                cid, aid, sid = client_ids[j], acc_ids[j // CLIENTS_PER_ORG], secret_ids[j]
            issued = now - rnd.randrange(3600)
            yield {
                "jti": secrets.token_urlsafe(16),
                "client_id": cid,
                "account_id": aid,
                "secret_id": sid,
                "scope": "read",
                "audience": "https://api.example.com",
                "issued_at": issued,
                # Valid for at least 2 more hours: nothing for a purge to do meanwhile.
                "expires_at": now + 7200 + rnd.randrange(3600),
                "revoked_at": None,
            }

    _insert(engine, t["access_tokens"], token_rows(), tokens, log)

    if used_assertions and "used_assertions" in t:
        _insert(engine, t["used_assertions"], (
            {"client_id": client_ids[rnd.randrange(clients)], "jti": secrets.token_urlsafe(16),
             "expires_at": now + 7200}
            for _ in range(used_assertions)), used_assertions, log)

    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            for name in names:
                if name in t:
                    conn.execute(text(f'ANALYZE "{name}"'))
        elif engine.dialect.name == "sqlite":
            conn.execute(text("ANALYZE"))
    with engine.connect() as conn:
        after = conn.execute(select(func.count()).select_from(t["access_tokens"])).scalar()
    engine.dispose()
    log(f"  access_tokens: {before:,} → {after:,} rows")
    return {"organizations": n_orgs, "clients": clients, "access_tokens": tokens}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("database_url", nargs="?", default=os.environ.get("AUTHSERVER_DATABASE_URL"),
                   help="SQLAlchemy URL (default: AUTHSERVER_DATABASE_URL)")
    p.add_argument("--tokens", type=int, default=1_000_000)
    p.add_argument("--clients", type=int, default=100_000)
    p.add_argument("--used-assertions", type=int, default=0)
    p.add_argument("--account-id", help="also give 1 %% of the tokens to this account …")
    p.add_argument("--client-id", help="… and this client")
    args = p.parse_args(argv)
    if not args.database_url:
        p.error("give a database URL or set AUTHSERVER_DATABASE_URL")
    if args.clients < 1:
        p.error("--clients must be at least 1")
    t0 = time.monotonic()
    seed(args.database_url, tokens=args.tokens, clients=args.clients,
         account_id=args.account_id, client_id=args.client_id,
         used_assertions=args.used_assertions)
    print(f"done in {time.monotonic() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
