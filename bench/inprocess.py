#!/usr/bin/env python3
"""Where a token request's CPU goes, without gunicorn or HTTP: the WSGI app called in-process.

    .venv/bin/python bench/inprocess.py                      # CPU ms per token request, in-process
    .venv/bin/python bench/inprocess.py --endpoint introspect
    .venv/bin/python bench/inprocess.py --profile --top 30   # cProfile, sorted by own time
    .venv/bin/python bench/inprocess.py --client-key rsa     # RS256 assertions instead of ES256
    .venv/bin/python bench/inprocess.py --federated          # a trusted issuer's assertions against the
                                                             # client's own, alternating in one run

Compare its figure with bench/run.py's CPU ms/req for the same configuration: the difference is
what gunicorn, HTTP parsing and the TCP connection cost (the `flask floor` row measures that too).
A fresh instance directory with a SQLite database is made in a temporary directory and removed.
"""
from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import sys
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoint", choices=["token", "introspect"], default="token")
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--alg", default="ES256", help="access-token signing algorithm")
    parser.add_argument("--client-key", choices=["ec", "rsa"], default="ec")
    parser.add_argument("--log-level", default="INFO")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--sort", default="tottime", help="pstats sort key: tottime or cumulative")
    parser.add_argument("--callees", help="also print what the functions matching this pattern call")
    parser.add_argument("--callers", help="also print what calls the functions matching this pattern")
    parser.add_argument("--federated", action="store_true",
                        help="compare tokens for a trusted issuer's assertions (workload identity federation) with "
                             "tokens for the client's own assertions, in alternating rounds")
    parser.add_argument("--rounds", type=int, default=6, help="alternating rounds of --federated")
    args = parser.parse_args()

    tmp = tempfile.TemporaryDirectory(prefix="authserver-profile-")
    os.environ.update(
        {
            "AUTHSERVER_INSTANCE_PATH": tmp.name,
            "AUTHSERVER_SIGNING_ALG": args.alg,
            "AUTHSERVER_LOG_LEVEL": args.log_level,
            "AUTHSERVER_RATE_LIMIT_TOKEN_REQUESTS_PER_CLIENT": "100000000",
        }
    )
    import logging

    import jwt
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    from authserver import create_app
    from authserver.cli import initialise
    from authserver.services.accounts import create_account
    from authserver.services.client_keys import add_key
    from authserver.services.client_secrets import add_secret
    from authserver.services.clients import register_client
    from authserver.services.organizations import create_organization
    from tests.conftest import basic

    app = create_app()
    logging.getLogger("authserver").handlers[0].stream = open(os.devnull, "w")  # format lines, write nowhere
    with app.app_context():
        initialise()
        org = create_organization("Profile")
        account = create_account(org.org_id, "worker", "service")
        client = register_client(org.org_id, "client")
        from authserver.services.apis import BUILTIN_DEFAULT, builtin_api, grant_client

        grant_client(client.client_id, builtin_api(BUILTIN_DEFAULT).api_id, "read", default=True)
        secret = add_secret(client.client_id)
        key = ec.generate_private_key(ec.SECP256R1()) if args.client_key == "ec" else \
            rsa.generate_private_key(public_exponent=65537, key_size=2048)
        public = key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        add_key(client.client_id, public, kid="k1")
        # A trusted issuer with pasted keys (nothing fetched while measuring), one rule, this client allowed.
        from jwt.algorithms import ECAlgorithm

        from authserver.services import trusted_issuers

        issuer_key = ec.generate_private_key(ec.SECP256R1())
        issuer_jwk = {**json.loads(ECAlgorithm.to_jwk(issuer_key.public_key())), "kid": "fed-1", "use": "sig"}
        issuer = trusted_issuers.add_issuer(org.org_id, FEDERATED_ISSUER, "authserver", jwks={"keys": [issuer_jwk]})
        trusted_issuers.add_rule(issuer.issuer_id, account.account_id, {"sub": FEDERATED_SUBJECT})
        trusted_issuers.allow_client(issuer.issuer_id, client.client_id)
        ids = (client.client_id, account.account_id, secret.client_secret)
    client_id, account_id, client_secret = ids
    authorization = basic(client_id, client_secret)["Authorization"]
    alg = "ES256" if args.client_key == "ec" else "RS256"
    now = int(time.time())
    assertions = [jwt.encode({"iss": client_id, "sub": account_id, "aud": "http://127.0.0.1:8000/oauth/token",
                              "iat": now, "exp": now + 300, "jti": uuid.uuid4().hex}, key, algorithm=alg,
                             headers={"kid": "k1"}) for _ in range(args.requests + 100)]

    federated = [jwt.encode({"iss": FEDERATED_ISSUER, "sub": FEDERATED_SUBJECT, "aud": "authserver", "iat": now,
                             "exp": now + 300, "jti": uuid.uuid4().hex}, issuer_key, algorithm="ES256",
                            headers={"kid": "fed-1"}) for _ in range(args.requests + 100)]

    def call(path: str, form: dict) -> bytes:
        body = urlencode(form).encode()
        environ = {"REQUEST_METHOD": "POST", "PATH_INFO": path, "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "8000",
                   "HTTP_HOST": "127.0.0.1:8000", "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(body),
                   "wsgi.errors": sys.stderr, "CONTENT_LENGTH": str(len(body)), "SERVER_PROTOCOL": "HTTP/1.1",
                   "CONTENT_TYPE": "application/x-www-form-urlencoded", "HTTP_AUTHORIZATION": authorization,
                   "REMOTE_ADDR": "127.0.0.1"}
        status: list[str] = []
        out = b"".join(app(environ, lambda s, h, e=None: status.append(s)))
        if not status[0].startswith("200"):
            raise SystemExit(f"{path} answered {status[0]}: {out[:200]!r}")
        return out

    def token(assertion: str) -> bytes:
        return call("/oauth/token", {"grant_type": JWT_BEARER, "assertion": assertion})

    for assertion in assertions[:50]:
        token(assertion)
    if args.federated:
        for assertion in federated[:50]:
            token(assertion)
        compare_federated(args, token, assertions[100:100 + args.requests], federated[100:100 + args.requests])
        tmp.cleanup()
        return
    if args.endpoint == "token":
        work = [lambda a=a: token(a) for a in assertions[100:100 + args.requests]]
    else:
        access_token = json.loads(token(assertions[60]))["access_token"]
        work = [lambda: call("/oauth/introspect", {"token": access_token})] * args.requests

    profiler = cProfile.Profile() if args.profile else None
    started = time.process_time()
    if profiler:
        profiler.enable()
    for request in work:
        request()
    if profiler:
        profiler.disable()
    cpu = time.process_time() - started
    print(f"{args.endpoint}: {cpu / args.requests * 1000:.3f} ms CPU per request in-process "
          f"({args.requests} requests, {args.alg} access tokens, {alg} assertions, log level {args.log_level})")
    if profiler:
        stats = pstats.Stats(profiler).sort_stats(args.sort)
        stats.print_stats(args.top)
        if args.callees:
            stats.print_callees(args.callees)
        if args.callers:
            stats.print_callers(args.callers)
    tmp.cleanup()


FEDERATED_ISSUER = "https://workloads.example.com"
FEDERATED_SUBJECT = "system:serviceaccount:bench:worker"


def compare_federated(args, token, own: list[str], federated: list[str]) -> None:
    """CPU ms per token for each kind of assertion, in alternating rounds (the order flips every round)."""
    per_round = len(own) // args.rounds
    spent = {"own": 0.0, "federated": 0.0}
    for index in range(args.rounds):
        kinds = ["own", "federated"] if index % 2 == 0 else ["federated", "own"]
        for kind in kinds:
            batch = (own if kind == "own" else federated)[index * per_round:(index + 1) * per_round]
            started = time.process_time()
            for assertion in batch:
                token(assertion)
            spent[kind] += time.process_time() - started
    count = per_round * args.rounds
    own_ms, federated_ms = (spent[k] / count * 1000 for k in ("own", "federated"))
    print(f"token, the client's own assertion:     {own_ms:.3f} ms CPU per request in-process")
    print(f"token, a trusted issuer's assertion:  {federated_ms:.3f} ms CPU per request in-process")
    print(f"federated / own: {federated_ms / own_ms:.2f}x ({args.rounds} alternating rounds of {per_round} each)")


if __name__ == "__main__":
    main()
