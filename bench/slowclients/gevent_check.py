#!/usr/bin/env python3
"""Does the token path stay correct under gunicorn's gevent worker?

    /tmp/slowvenv/bin/python bench/slowclients/gevent_check.py            # all checks
    /tmp/slowvenv/bin/python bench/slowclients/gevent_check.py --skip-pg  # no PostgreSQL

1. psycopg 3 under gevent.monkey.patch_all(): which wait function it picked, and whether 8 greenlets
   each running `SELECT pg_sleep(0.3)` on their own connection overlap (about 0.3 s in all) or
   run one after another (about 2.4 s) — i.e. whether a slow query blocks the whole worker.
2. `gunicorn -k gevent -w 2` (bench/slowclients/inspect.conf.py: the project's config plus a hook
   that logs, from inside each worker, the type of store.py's locks and psycopg's wait function),
   for each backend: SQLite; SQLite + Redis (the rate limiter and replay cache talk to Redis *inside*
   store.write_section(), i.e. while holding the flock and the thread lock); PostgreSQL.
   For each: wrk c16 for a few seconds with fresh assertions (every answer must be 200), then
   replay checks (the same assertion sent twice, sequentially and by 8 greenlet-parallel clients at
   once: exactly one 200), then the worker log is searched for WORKER TIMEOUT and tracebacks.

Redis: a private redis-server started by this script on a free loopback port (stopped at the end).
PostgreSQL: a fresh database on AUTHSERVER_TEST_DATABASE_URL or postgresql://root@127.0.0.1:5432/postgres,
dropped at the end.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import runner  # noqa: E402  (loads bench/run.py as benchrun)

benchrun = runner.benchrun
log = benchrun.log
ROOT = runner.ROOT
BIN = runner.BIN

PSYCOPG_COOP = r"""
import gevent.monkey; gevent.monkey.patch_all()
import sys, time, json, gevent, psycopg, psycopg.waiting
url = sys.argv[1]
conns = [psycopg.connect(url, autocommit=True) for _ in range(8)]
def one(c):
    c.execute("SELECT pg_sleep(0.3)")
t0 = time.monotonic()
gevent.joinall([gevent.spawn(one, c) for c in conns], timeout=10)
wall = time.monotonic() - t0
print(json.dumps({"wait_function": psycopg.waiting.wait.__name__, "eight_0.3s_sleeps_wall_s": round(wall, 2)}))
"""


def psycopg_coop(admin_url: str) -> dict:
    proc = subprocess.run([sys.executable, "-c", PSYCOPG_COOP, benchrun._libpq_url(admin_url)],
                          capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        return {"error": proc.stderr.strip()[-300:]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def start_redis(tmp: Path) -> tuple[subprocess.Popen, str]:
    exe = shutil.which("redis-server")
    if exe is None:
        raise benchrun.BenchError("redis-server not installed")
    port = benchrun.free_port()
    proc = subprocess.Popen([exe, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no",
                             "--dir", str(tmp)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    time.sleep(0.5)
    return proc, f"redis://127.0.0.1:{port}/0"


def replay_checks(url: str, setup, auth: str) -> dict:
    import http.client

    def post(assertion: str) -> tuple[int, str]:
        conn = http.client.HTTPConnection("127.0.0.1", int(url.rsplit(":", 1)[1]), timeout=10)
        try:
            conn.request("POST", "/oauth/token", body=urllib.parse.urlencode(
                {"grant_type": runner.JWT_BEARER, "assertion": assertion}),
                headers={"Content-Type": "application/x-www-form-urlencoded", "Authorization": auth})
            r = conn.getresponse()
            body = r.read()
            try:
                err = json.loads(body).get("error", "")
            except ValueError:
                err = "?"
            return r.status, err
        finally:
            conn.close()

    a = benchrun.make_assertions(setup, 1)[0]
    seq = [post(a), post(a)]
    out = {"sequential": seq, "sequential_ok": seq[0][0] == 200 and seq[1] == (400, "invalid_grant")}
    bad = 0
    for _ in range(10):  # ten rounds: one assertion sent by 8 clients at once
        a = benchrun.make_assertions(setup, 1)[0]
        results: list = []
        barrier = threading.Barrier(8)

        def go(barrier=barrier, results=results, a=a):
            barrier.wait()
            results.append(post(a))

        ts = [threading.Thread(target=go) for _ in range(8)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(20)
        oks = sum(1 for s, _ in results if s == 200)
        if oks != 1 or any(s not in (200, 400) for s, _ in results):
            bad += 1
            out.setdefault("bad_rounds", []).append(sorted(results))
    out["parallel_rounds_with_exactly_one_200"] = f"{10 - bad}/10"
    return out


def check_backend(name: str, tmp: Path, extra_env: dict, args, db_kind: str, admin_url: str | None) -> dict:
    log(f"== gevent on {name}")
    work = tmp / name.replace(" ", "-").replace("+", "")
    (work / "instance").mkdir(parents=True, mode=0o700)
    port = benchrun.free_port()
    issuer = f"http://127.0.0.1:{port}"
    res: dict = {"backend": name}
    with benchrun.Database(db_kind, admin_url, work / "instance") as db:
        env = dict(os.environ)
        env.update({
            "AUTHSERVER_INSTANCE_PATH": str(work / "instance"),
            "AUTHSERVER_ISSUER": issuer,
            "AUTHSERVER_PURGE_INTERVAL": "0",
            "AUTHSERVER_DATABASE_URL": db.url,
            "AUTHSERVER_RATE_LIMIT_TOKEN_REQUESTS_PER_CLIENT": str(benchrun.BENCH_TOKEN_RATE_LIMIT),
            "PYTHONPATH": str(ROOT),
            **extra_env,
        })
        setup = benchrun.setup_authserver(env, work, issuer)
        cmd = [str(BIN / "python"), "-m", "gunicorn", "-c", str(HERE / "inspect.conf.py"),
               "-b", f"127.0.0.1:{port}", "-w", "2", "-k", "gevent", "authserver.wsgi:app"]
        server = benchrun.Server(f"gevent-{name}", cmd, env, ROOT, work / "server.log", port)
        try:
            server.start(timeout=60)
            auth = benchrun.basic_auth(setup.client_id, setup.client_secret)
            path = work / "assertions.txt"
            benchrun.write_assertion_file(path, setup, max(3000, args.seconds * 2000))
            raw = benchrun.run_wrk(server.url, benchrun.WRK_DIR / "token.lua", path, 16, args.seconds)
            res["wrk_c16"] = {k: raw[k] for k in ("requests", "non200", "connect_errors", "read_errors",
                                                  "write_errors", "timeouts", "exhausted")}
            res["wrk_c16"]["p99_ms"] = raw["p99_us"] / 1000
            res["replay"] = replay_checks(server.url, setup, auth)
        finally:
            server.stop()
        text = (work / "server.log").read_text(errors="replace")
        res["inspect"] = sorted({ln.split("INSPECT ", 1)[1] for ln in text.splitlines() if "INSPECT " in ln})
        res["worker_timeouts"] = text.count("WORKER TIMEOUT")
        res["tracebacks"] = text.count("Traceback")
        res["log_lines_about_workers"] = [
            ln[:160]
            for ln in text.splitlines()
            if any(
                w in ln
                for w in ("Booting worker", "exited", "signal", "Worker exiting", "WORKER TIMEOUT", "Shutting down")
            )
        ][:12]
        if res["tracebacks"]:
            res["log_excerpt"] = [ln for ln in text.splitlines() if "Error" in ln][:5]
    log("  " + json.dumps(res))
    return res


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--skip-pg", action="store_true")
    ap.add_argument("--skip-redis", action="store_true")
    ap.add_argument("--seconds", type=int, default=4)
    ap.add_argument("--output", default=str(HERE / "gevent_check.json"))
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, benchrun._on_sigterm)
    admin_url = os.environ.get("AUTHSERVER_TEST_DATABASE_URL") or benchrun.DEFAULT_POSTGRES
    tmp = Path(tempfile.mkdtemp(prefix="authserver-gevent-check-"))
    out: dict = {}
    redis = None
    try:
        if not args.skip_pg:
            out["psycopg_cooperative"] = psycopg_coop(admin_url)
            log("psycopg under gevent: " + json.dumps(out["psycopg_cooperative"]))
        out["sqlite"] = check_backend("sqlite", tmp, {}, args, "sqlite", None)
        if not args.skip_redis:
            redis, redis_url = start_redis(tmp)
            out["sqlite+redis"] = check_backend("sqlite+redis", tmp, {"AUTHSERVER_REDIS_URL": redis_url}, args,
                                                "sqlite", None)
        if not args.skip_pg:
            out["postgresql"] = check_backend("postgresql", tmp, {}, args, "postgresql", admin_url)
    except KeyboardInterrupt:
        log("interrupted")
    finally:
        benchrun.stop_all_servers()
        if redis is not None:
            os.killpg(redis.pid, signal.SIGTERM)
            redis.wait(10)
        shutil.rmtree(tmp, ignore_errors=True)
    Path(args.output).write_text(json.dumps(out, indent=1))
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
