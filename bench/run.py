#!/usr/bin/env python3
"""Load benchmark of authserver's token and introspection endpoints.

One command runs everything and prints a Markdown table:

    .venv/bin/python bench/run.py            # 10 s per run
    .venv/bin/python bench/run.py --quick    # 3 s per run, a smoke test

What one run does
-----------------
1. Baseline: a minimal Flask + Authlib client-credentials server
   (bench/baseline/app.py) under gunicorn with 2 sync workers on SQLite.
2. For every database (SQLite by default; PostgreSQL with ``--postgres`` or
   when AUTHSERVER_TEST_DATABASE_URL is set) and every access-token signing
   algorithm (RS256, ES256): a fresh instance directory and database, set up
   with the ``authserver`` command line as an operator would (org,
   service account, client, secret, ES256 client key), then
   ``authserver serve --host 127.0.0.1 --port P --workers 2``.
3. wrk at concurrency 1 and 16 against: the baseline's token endpoint; the
   JWT-bearer token endpoint (each request carries a fresh, pre-generated
   assertion that is sent exactly once); introspection of a valid token.
4. For each run: requests/s, p50, p99, errors (non-200 answers, inactive
   introspection answers and socket errors) and server CPU milliseconds per
   request (utime+stime of the server's whole process tree, from /proc,
   before and after the run, divided by completed requests).
5. The table, each row's requests/s as a ratio of the baseline's at the same
   concurrency and the performance targets go to stdout and bench/results/latest.md.

Every server this script starts is stopped on exit, error or Ctrl-C.
Client secrets and tokens are never printed; they live only in files with
mode 0600 inside the temporary directory, which is removed at the end.

The code, by concern: servers.py (the gunicorn processes and databases under test), load.py (what is
sent: setup through the CLI, assertions, checks of the answers), measurement.py (wrk, CPU time from
/proc, waiting for a quiet machine), scenarios.py (the runs: baseline, floor, authserver), report.py
(the Markdown); this file reads the command line and runs the scenarios.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

import measurement
from common import DEFAULT_PEER, DEFAULT_POSTGRES, RESULTS_DIR, BenchError, log
from measurement import RunResult
from report import load_average, render
from scenarios import run_authserver, run_baseline, run_floor, run_peer
from servers import _on_sigterm, authserver_bin, stop_all_servers

# --------------------------------------------------------------------------
# Main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Benchmark authserver's token and introspection endpoints against "
        "a Flask + Authlib client-credentials baseline."
    )
    p.add_argument("--quick", action="store_true", help="3 s runs (smoke test)")
    p.add_argument("--duration", type=int, help="seconds per run (default 10, or 3 with --quick)")
    p.add_argument(
        "--database",
        action="append",
        default=None,
        metavar="sqlite|URL",
        help="'sqlite', or a PostgreSQL URL of a server on which a fresh database is "
        "created and dropped (repeatable). Default: sqlite, plus PostgreSQL when "
        "AUTHSERVER_TEST_DATABASE_URL is set.",
    )
    p.add_argument(
        "--postgres",
        nargs="?",
        const=DEFAULT_POSTGRES,
        default=None,
        metavar="URL",
        help=f"also benchmark on PostgreSQL (default server {DEFAULT_POSTGRES})",
    )
    p.add_argument("--algs", default="RS256,ES256", help="access-token algorithms (default RS256,ES256)")
    p.add_argument("--concurrency", default="1,16", help="wrk connections per run (default 1,16)")
    p.add_argument("--workers", type=int, default=2, help="gunicorn workers for both servers (default 2)")
    p.add_argument(
        "--only", choices=("all", "baseline", "peer", "authserver"), default="all",
        help="run only the baseline (and floor), only the oidc-provider peer, or only authserver",
    )
    p.add_argument(
        "--assertion-rate", type=int, default=3000,
        help="assertions pre-generated per second of run (default 3000; more are made if they run out)",
    )
    p.add_argument("--large", action="store_true",
                   help="seed each authserver database with many tokens and clients before measuring")
    p.add_argument("--large-tokens", type=int, default=1_000_000)
    p.add_argument("--large-clients", type=int, default=100_000)
    p.add_argument(
        "--env", action="append", default=[], metavar="NAME=VALUE",
        help="extra environment for the authserver CLI and server (repeatable)",
    )
    p.add_argument(
        "--quiet-wait", type=float, default=None, metavar="S",
        help="before each run wait up to S seconds for other programs to leave the CPUs idle "
        "(default 15, or 0 with --quick)",
    )
    p.add_argument(
        "--peer", metavar="DIR", default=str(DEFAULT_PEER) if DEFAULT_PEER.is_dir() else None,
        help="the oidc-provider peer's directory (server.mjs, node_modules): measured in the same run as the speed "
             f"anchor, its token rate the × oidc-provider column (default {DEFAULT_PEER} when it exists)",
    )
    p.add_argument("--no-peer", dest="peer", action="store_const", const=None, help="do not measure the peer")
    p.add_argument(
        "--uwsgi", metavar="PATH",
        help="serve authserver with this uWSGI binary (HTTP/1.1 keep-alive, --workers processes) instead of "
             "`authserver serve`: the serving-layer comparison of bench/README.md; `pip install uwsgi` first",
    )
    p.add_argument("--output", default=str(RESULTS_DIR / "latest.md"), help="where to write the Markdown")
    p.add_argument("--keep-tmp", action="store_true", help="keep the temporary directory (it holds secrets)")
    args = p.parse_args(argv)
    args.duration = args.duration or (3 if args.quick else 10)
    if args.quiet_wait is None:
        args.quiet_wait = 0.0 if args.quick else 15.0
    args.concurrency = [int(c) for c in args.concurrency.split(",") if c.strip()]
    args.algs = [a.strip() for a in args.algs.split(",") if a.strip()]
    env = {}
    for item in args.env:
        if "=" not in item:
            p.error(f"--env wants NAME=VALUE, got {item!r}")
        k, v = item.split("=", 1)
        env[k] = v
    args.env = env
    dbs = args.database or ["sqlite"]
    if args.database is None and os.environ.get("AUTHSERVER_TEST_DATABASE_URL"):
        dbs.append(os.environ["AUTHSERVER_TEST_DATABASE_URL"])
    if args.postgres:
        dbs.append(args.postgres)
    args.databases = []
    for d in dbs:
        if d == "sqlite":
            args.databases.append(("sqlite", None))
        elif d.startswith(("postgresql", "postgres:")):
            args.databases.append(("postgresql", d))
        else:
            p.error(f"--database wants 'sqlite' or a postgresql:// URL, got {d.split(':')[0]}:…")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if shutil.which("wrk") is None:
        log("wrk is not installed: apt-get install -y wrk")
        return 2
    measurement.QUIET_WAIT = args.quiet_wait
    signal.signal(signal.SIGTERM, _on_sigterm)
    started = time.monotonic()
    load0 = load_average()
    results: list[RunResult] = []
    notes: list[str] = []
    tmp = Path(tempfile.mkdtemp(prefix="authserver-bench-"))
    os.chmod(tmp, 0o700)
    interrupted = False
    try:
        if args.only in ("all", "baseline"):
            try:
                run_baseline(tmp, args, results)
                run_floor(tmp, args, results)
            except BenchError as e:
                notes.append(f"baseline not measured: {str(e).splitlines()[0][:300]}")
                log(f"  FAILED: {e}")
        if args.peer and args.only in ("all", "peer"):
            try:
                run_peer(tmp, args, results)
            except BenchError as e:
                notes.append(f"oidc-provider not measured: {str(e).splitlines()[0][:300]}")
                log(f"  FAILED: {e}")
        if args.only in ("all", "authserver"):
            if authserver_bin() is None:
                notes.append("the `authserver` command is not installed; authserver was not measured")
                log("authserver CLI not found; skipping authserver")
            else:
                for db_kind, admin_url in args.databases:
                    for alg in args.algs:
                        run_authserver(tmp, args, db_kind, admin_url, alg, results)
    except KeyboardInterrupt:
        interrupted = True
        notes.append("interrupted; the table is incomplete")
        log("interrupted")
    except BenchError as e:
        notes.append(f"stopped early: {str(e).splitlines()[0][:300]}")
        log(f"FAILED: {e}")
    except Exception as e:  # report what was measured so far, then the error
        notes.append(f"stopped early by an unexpected error: {type(e).__name__}")
        log(f"unexpected error: {type(e).__name__}: {str(e)[:300]}")
    finally:
        stop_all_servers()
        if args.keep_tmp:
            log(f"temporary files kept in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)

    report = render(results, args, started, notes, load0)
    print(report)
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(report)
    log(f"written to {out}")
    if interrupted:
        return 130
    return 1 if any(r.failed for r in results) or notes else 0


if __name__ == "__main__":
    sys.exit(main())
