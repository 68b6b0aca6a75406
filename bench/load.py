"""What is sent: authserver set up through its command line, assertions, token requests and checks."""
from __future__ import annotations

import base64
import json
import re
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common import BENCH_DIR, BenchError, log, short, write_private
from servers import authserver_bin

# --------------------------------------------------------------------------
# HTTP helpers


def basic_auth(client_id: str, client_secret: str) -> str:
    """client_secret_basic with form-urlencoded id and secret (RFC 6749 §2.3.1)."""
    raw = f"{urllib.parse.quote_plus(client_id)}:{urllib.parse.quote_plus(client_secret)}"
    return "Basic " + base64.b64encode(raw.encode()).decode()


def post_form(url: str, form: dict[str, str], authorization: str) -> tuple[int, dict]:
    data = urllib.parse.urlencode(form).encode()
    req = urllib.request.Request(
        url,
        data=data,
        method="POST",
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "Authorization": authorization,
            "Accept": "application/json",
        },
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            status, body = r.status, r.read()
    except urllib.error.HTTPError as e:
        status, body = e.code, e.read()
    try:
        return status, json.loads(body or b"{}")
    except ValueError:
        return status, {"_raw": body[:200].decode(errors="replace")}


def cli(env: dict[str, str], cwd: Path, *argv: str) -> Any:
    """Run `authserver ARGV --json` and return its parsed stdout."""
    exe = authserver_bin()
    assert exe is not None
    cmd = [exe, *argv, "--json"]
    shown = " ".join(a if " " not in a else repr(a) for a in ["authserver", *argv, "--json"])
    try:
        proc = subprocess.run(
            cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=300,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        raise BenchError(f"`{shown}` did not finish within 300 s") from None
    if proc.returncode != 0:
        err = [line for line in proc.stderr.strip().splitlines() if line.strip()]
        last = err[-1].strip() if err else "(nothing on stderr)"
        raise BenchError(
            f"`{shown}` exited with {proc.returncode}: {last[:300]}\n" + "\n".join(err[-15:])
        )
    try:
        return json.loads(proc.stdout)
    except ValueError:
        raise BenchError(
            f"`{shown}` printed something other than one JSON document on stdout "
            f"({len(proc.stdout)} characters, starting {proc.stdout[:60]!r})"
        ) from None


def _need(obj: Any, key: str, shown: str) -> str:
    if not isinstance(obj, dict) or not isinstance(obj.get(key), str) or not obj[key]:
        keys = sorted(obj) if isinstance(obj, dict) else type(obj).__name__
        raise BenchError(f"`{shown}` did not return a string {key!r} (got keys {keys})")
    return obj[key]


@dataclass
class Setup:
    issuer: str
    client_id: str
    client_secret: str
    account_id: str
    kid: str
    private_key: Any
    rs_client_id: str
    rs_client_secret: str


BENCH_API = "https://bench.example.test/api"


def setup_authserver(env: dict[str, str], work: Path, issuer: str) -> Setup:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    init = cli(env, work, "init")
    if not isinstance(init, (dict, list)):
        raise BenchError("`authserver init --json` did not print a JSON object")
    org_id = _need(cli(env, work, "org", "create", "bench-org"), "org_id", "org create")
    account_id = _need(
        cli(env, work, "account", "create", org_id, "bench-service", "--kind", "service"),
        "account_id",
        "account create",
    )
    client_id = _need(
        cli(env, work, "client", "create", org_id, "bench-client"),
        "client_id",
        "client create",
    )
    # The API its tokens are for (their aud), granted as the client's default: requests name no resource.
    api_id = _need(
        cli(env, work, "api", "create", "--org", org_id, "bench-api", BENCH_API, "--scope", "read", "--scope", "write"),
        "api_id",
        "api create",
    )
    cli(env, work, "client", "grant", client_id, BENCH_API, "--scope", "read write", "--default")
    if not re.fullmatch(r"[0-9a-f]{32}", client_id):
        log(f"  note: client_id {short(client_id)} is not 32 lowercase hex characters as specified")
    sec = cli(env, work, "secret", "add", client_id)
    _need(sec, "secret_id", "secret add")
    client_secret = _need(sec, "client_secret", "secret add")

    key = ec.generate_private_key(ec.SECP256R1())
    write_private(
        work / "client-key.pem",
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode(),
    )
    pub = work / "client-key.pub.pem"
    pub.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    kid = _need(cli(env, work, "key", "add", client_id, str(pub)), "kid", "key add")

    # The resource server that introspects: the API's own client (it may introspect the API's tokens).
    rs_client_id = _need(
        cli(env, work, "client", "create", org_id, "bench-api-client"),
        "client_id",
        "client create",
    )
    cli(env, work, "api", "bind-client", api_id, rs_client_id)
    rs_secret = _need(cli(env, work, "secret", "add", rs_client_id), "client_secret", "secret add")
    return Setup(issuer, client_id, client_secret, account_id, kid, key, rs_client_id, rs_secret)


def make_assertions(s: Setup, count: int) -> list[str]:
    import jwt

    aud = s.issuer + "/oauth/token"
    now = int(time.time())
    out = []
    headers = {"kid": s.kid}
    for _ in range(count):
        claims = {
            "iss": s.client_id,
            "sub": s.account_id,
            "aud": aud,
            "iat": now,
            "exp": now + 300,
            "jti": uuid.uuid4().hex,
        }
        out.append(jwt.encode(claims, s.private_key, algorithm="ES256", headers=headers))
    return out


def write_assertion_file(path: Path, s: Setup, count: int) -> None:
    t0 = time.monotonic()
    lines = [basic_auth(s.client_id, s.client_secret)]
    lines.extend(make_assertions(s, count))
    write_private(path, "\n".join(lines) + "\n")
    log(f"    pre-generated {count} assertions in {time.monotonic() - t0:.1f} s")


def check_token_response(status: int, body: dict, alg: str) -> str:
    """Check one token response (200, Bearer, expires_in, scope, an at+jwt signed with `alg` and a kid);
    return the access token."""
    import jwt

    if status != 200:
        raise BenchError(
            f"token request answered {status} "
            f"{body.get('error', '')}: {body.get('error_description', body.get('_raw', ''))}"
        )
    token = body.get("access_token")
    if not isinstance(token, str):
        raise BenchError(f"token response has no access_token (keys {sorted(body)})")
    problems = []
    if str(body.get("token_type", "")).lower() != "bearer":
        problems.append(f"token_type {body.get('token_type')!r}")
    for k in ("expires_in", "scope"):
        if k not in body:
            problems.append(f"no {k}")
    try:
        header = jwt.get_unverified_header(token)
        if header.get("alg") != alg:
            problems.append(f"access token alg {header.get('alg')!r}, expected {alg}")
        if header.get("typ") != "at+jwt":
            problems.append(f"access token typ {header.get('typ')!r}")
        if not header.get("kid"):
            problems.append("access token has no kid")
    except jwt.PyJWTError as e:
        problems.append(f"access token is not a JWT ({e})")
    if problems:
        log("    note: unexpected token response: " + "; ".join(problems))
    return token


def seed(db_url: str, s: Setup, args) -> None:
    sys.path.insert(0, str(BENCH_DIR))
    try:
        import seed_large
    except ImportError as e:
        raise BenchError(f"--large needs bench/seed_large.py: {e}") from None
    t0 = time.monotonic()
    log("  seeding the database (--large) …")
    try:
        seed_large.seed(
            db_url,
            tokens=args.large_tokens,
            clients=args.large_clients,
            account_id=s.account_id,
            client_id=s.client_id,
            log=log,
        )
    except (Exception, SystemExit) as e:
        raise BenchError(f"seeding failed: {e}") from None
    log(f"  seeded in {time.monotonic() - t0:.0f} s")
