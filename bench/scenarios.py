"""One measured scenario each: the baseline, the floor, and authserver on one database and algorithm."""
from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

from common import BENCH_DIR, BENCH_TOKEN_RATE_LIMIT, BIN_DIR, JWT_BEARER, WRK_DIR, BenchError, log, write_private
from load import (
    Setup,
    basic_auth,
    check_token_response,
    make_assertions,
    post_form,
    seed,
    setup_authserver,
    write_assertion_file,
)
from measurement import RunResult, measure, run_wrk
from servers import Database, Server, _gunicorn_has_control_socket, authserver_bin, free_port

# --------------------------------------------------------------------------
# Baseline


def run_baseline(tmp: Path, args, results: list[RunResult]) -> None:
    log("== baseline: Flask + Authlib client_credentials, SQLite, gunicorn 2 sync workers")
    work = tmp / "baseline"
    work.mkdir()
    client_id = "bench-baseline"
    client_secret = secrets.token_urlsafe(32)
    env = dict(os.environ)
    env["BASELINE_DATABASE"] = str(work / "baseline.db")
    # The secret goes through the environment, never the command line.
    init = subprocess.run(
        [sys.executable, str(BENCH_DIR / "baseline" / "app.py"), "init", "--client-id", client_id],
        env={**env, "BASELINE_CLIENT_SECRET": client_secret},
        cwd=work,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if init.returncode != 0:
        err = [line for line in init.stderr.splitlines() if line.strip()]
        raise BenchError(f"baseline set-up failed: {err[-1] if err else init.returncode}")
    auth_file = work / "request.txt"
    write_private(auth_file, basic_auth(client_id, client_secret) + "\n")
    run_plain_gunicorn("baseline", BENCH_DIR / "baseline", "app:create_app()", env, work, auth_file,
                       ("baseline", "sqlite", "opaque"), args, results)


def run_plain_gunicorn(name: str, app_dir: Path, app_spec: str, env: dict, work: Path, auth_file: Path,
                       labels: tuple[str, str, str], args, results: list[RunResult]) -> None:
    """Serve a small comparison app with gunicorn's sync workers and measure its token endpoint."""
    gunicorn = [str(BIN_DIR / "gunicorn")] if (BIN_DIR / "gunicorn").exists() else ["gunicorn"]
    port = free_port()
    cmd = gunicorn + ["--workers", str(args.workers), "--worker-class", "sync", "--bind", f"127.0.0.1:{port}",
                      "--chdir", str(app_dir)]
    if _gunicorn_has_control_socket(gunicorn):
        cmd.append("--no-control-socket")
    cmd.append(app_spec)
    server = Server(name, cmd, env, work, work / "server.log", port)
    measure_client_credentials(server, auth_file, labels, args, results)


def measure_client_credentials(server: Server, auth_file: Path, labels: tuple[str, str, str], args,
                               results: list[RunResult]) -> None:
    """Start the server, warm its workers up, measure its client-credentials token endpoint at each
    concurrency (bench/wrk/baseline.lua with the request file), always stop it."""
    try:
        server.start()
        run_wrk(server.url, WRK_DIR / "baseline.lua", auth_file, 4, 1)  # warm the workers up
        for c in args.concurrency:
            res = RunResult(labels[0], labels[1], labels[2], "token", c)
            try:
                measure(server, res, WRK_DIR / "baseline.lua", auth_file, args.duration)
            except BenchError as e:
                res.failed, res.note = True, str(e).splitlines()[0][:200]
                log(f"    {res.label}: FAILED {e}")
            results.append(res)
    finally:
        server.stop()


def run_floor(tmp: Path, args, results: list[RunResult]) -> None:
    """A Flask endpoint that does no OAuth work, on the same gunicorn settings: the fixed cost."""
    log("== floor: a Flask endpoint doing no OAuth work, gunicorn 2 sync workers")
    work = tmp / "floor"
    work.mkdir()
    auth_file = work / "request.txt"
    write_private(auth_file, basic_auth("floor", "floor") + "\n")
    run_plain_gunicorn("floor", BENCH_DIR / "floor", "app:app", dict(os.environ), work, auth_file,
                       ("flask floor", "none", "none"), args, results)


# --------------------------------------------------------------------------
# The speed anchor: node's oidc-provider


PEER_CLIENT = ("bench-client", "bench-secret")  # the peer's one static client (its server.mjs)


def run_peer(tmp: Path, args, results: list[RunResult]) -> None:
    """node's oidc-provider issuing RS256 JWT access tokens (client credentials, client_secret_basic, in-memory
    storage) as a cluster of --workers processes: the rate authserver's token endpoint is measured against."""
    peer = Path(args.peer).resolve()
    log(f"== oidc-provider: client_credentials, RS256 JWT access tokens, node cluster of {args.workers} ({peer})")
    if not (peer / "server.mjs").is_file() or not (peer / "node_modules").is_dir():
        raise BenchError(f"{peer} holds no installed oidc-provider peer (server.mjs and node_modules: run its "
                         "setup.sh once)")
    work = tmp / "oidc-provider"
    work.mkdir()
    auth_file = work / "request.txt"
    # Its token endpoint is /token; without a scope it issues a JWT for its one resource.
    write_private(auth_file, basic_auth(*PEER_CLIENT) + "\n/token\ngrant_type=client_credentials\n")
    port = free_port()
    env = {**os.environ, "NODE_ENV": "production", "PORT": str(port), "WORKERS": str(args.workers),
           "TOKEN_FORMAT": "jwt"}
    server = Server("oidc-provider", ["node", "server.mjs"], env, peer, work / "server.log", port,
                    health_path="/.well-known/openid-configuration")
    measure_client_credentials(server, auth_file, ("oidc-provider", "memory", "RS256"), args, results)


def run_authserver(
    tmp: Path, args, db_kind: str, admin_url: str | None, alg: str, results: list[RunResult]
) -> None:
    db_label = "sqlite" if db_kind == "sqlite" else "postgresql"
    log(f"== authserver: {db_label}, {alg} access tokens")
    work = tmp / f"authserver-{db_label}-{alg}"
    work.mkdir()
    instance = work / "instance"
    instance.mkdir(mode=0o700)
    port = free_port()
    issuer = f"http://127.0.0.1:{port}"
    phases = ["", "seeded"] if args.large else [""]

    def mark_failed(why: str) -> None:
        have = {(r.endpoint, r.concurrency, r.data) for r in results
                if r.server == "authserver" and r.database == db_label and r.alg == alg}
        for data in phases:
            for endpoint in ("token", "introspect"):
                for c in args.concurrency:
                    if (endpoint, c, data) not in have:
                        res = RunResult("authserver", db_label, alg, endpoint, c, data=data, failed=True)
                        res.note = why.splitlines()[0][:300]
                        results.append(res)

    with Database(db_kind, admin_url, instance) as db:
        env = dict(os.environ)
        env.update(
            {
                "AUTHSERVER_INSTANCE_PATH": str(instance),
                "AUTHSERVER_DATABASE_URL": db.url,
                "AUTHSERVER_SIGNING_ALG": alg,
                "AUTHSERVER_ISSUER": issuer,
                # One client asks for every token, far faster than the default
                # per-client limit (6,000 a minute) allows. The limit stays on,
                # so its bookkeeping is measured, but never trips.
                "AUTHSERVER_RATE_LIMIT_TOKEN_REQUESTS_PER_CLIENT": str(BENCH_TOKEN_RATE_LIMIT),
            }
        )
        env.update(args.env)
        try:
            s = setup_authserver(env, work, issuer)
        except BenchError as e:
            log(f"  FAILED to set up: {e}")
            mark_failed(f"set-up failed: {e}")
            return

        cmd = [
            authserver_bin(),
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(args.workers),
        ]
        if args.uwsgi:
            # The same application under uWSGI's HTTP/1.1 socket, which keeps connections alive (gunicorn's
            # sync workers close each one): application loaded in each worker after the fork, as under gunicorn;
            # its own access log only; threads enabled for the application's background writer.
            cmd = [args.uwsgi, "--http11-socket", f"127.0.0.1:{port}", "--processes", str(args.workers), "--master",
                   "--home", str(Path(sys.executable).parent.parent), "--module", "authserver.wsgi:app",
                   "--lazy-apps", "--enable-threads", "--disable-logging", "--die-on-term", "--need-app"]
        server = Server(f"authserver ({db_label}, {alg})", cmd, env, work, work / "server.log", port)
        try:
            server.start()
            # One request by hand: checks the set-up and yields a token to introspect.
            one = make_assertions(s, 1)[0]
            status, body = post_form(
                server.url + "/oauth/token",
                {"grant_type": JWT_BEARER, "assertion": one},
                basic_auth(s.client_id, s.client_secret),
            )
            access_token = check_token_response(status, body, alg)
            status, body = post_form(
                server.url + "/oauth/introspect",
                {"token": access_token, "token_type_hint": "access_token"},
                basic_auth(s.rs_client_id, s.rs_client_secret),
            )
            if status != 200 or body.get("active") is not True:
                raise BenchError(
                    f"introspection of a fresh token by the API's own client answered "
                    f"{status} {json.dumps({k: body.get(k) for k in ('active', 'error')})}"
                )
            intro_file = work / "introspect.txt"
            write_private(
                intro_file,
                basic_auth(s.rs_client_id, s.rs_client_secret) + "\n" + access_token + "\n",
            )

            for data in phases:
                if data == "seeded":
                    # Same server, same configuration, now with a large database.
                    seed(db.url, s, args)
                # Warm-up of both workers (results discarded).
                warm = work / "warmup.txt"
                write_assertion_file(warm, s, 2000)
                run_wrk(server.url, WRK_DIR / "token.lua", warm, 4, 1)
                run_wrk(server.url, WRK_DIR / "introspect.lua", intro_file, 4, 1)

                for c in args.concurrency:
                    res = _measure_token(server, s, work, args, db_label, alg, c, db, data)
                    results.append(res)
                for c in args.concurrency:
                    res = RunResult("authserver", db_label, alg, "introspect", c, data=data)
                    try:
                        measure(server, res, WRK_DIR / "introspect.lua", intro_file, args.duration, db)
                    except BenchError as e:
                        res.failed, res.note = True, str(e).splitlines()[0][:300]
                        log(f"    {res.label}: FAILED {e}")
                    results.append(res)
        except BenchError as e:
            log(f"  FAILED: {e}" + ("" if "--- last lines" in str(e) else server.log_tail(15)))
            mark_failed(str(e))
        finally:
            server.stop()


def _measure_token(
    server: Server, s: Setup, work: Path, args, db_label: str, alg: str, c: int,
    db: Database, data: str,
) -> RunResult:
    count = max(1000, int(args.duration * args.assertion_rate))
    path = work / f"assertions-c{c}.txt"
    for _attempt in range(3):  # bounded: at most two retries with more assertions
        res = RunResult("authserver", db_label, alg, "token", c, data=data)
        try:
            write_assertion_file(path, s, count)
            measure(server, res, WRK_DIR / "token.lua", path, args.duration, db)
        except BenchError as e:
            res.failed, res.note = True, str(e).splitlines()[0][:300]
            log(f"    {res.label}: FAILED {e}")
            return res
        finally:
            path.unlink(missing_ok=True)
        if not res.raw.get("exhausted"):
            return res
        log(f"    ran out of {count} assertions; retrying with {count * 3}")
        count *= 3
    res.note = (res.note + "; " if res.note else "") + "assertions ran out (figures cover part of the run)"
    return res
