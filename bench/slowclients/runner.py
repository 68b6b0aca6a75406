#!/usr/bin/env python3
"""Which serving layer keeps serving while hundreds of idle / slowloris connections are open?

Run with a venv that has authserver installed editable plus the candidate servers
(never the project's .venv; see README.md here):

    /tmp/slowvenv/bin/python bench/slowclients/runner.py                # every candidate
    /tmp/slowvenv/bin/python bench/slowclients/runner.py --only sync,gevent --probe-seconds 5

For each candidate, in one run and in order (sync first, sync again last as a drift check):

1. a copy of one pristine instance directory (set up once with the `authserver` CLI exactly as
   bench/run.py's setup_authserver does: org, service account, client, secret, ES256 client key),
   so every server starts on identical, fresh state; same port and issuer for all;
2. the server on 127.0.0.1 with 2 worker processes; one token request checked by hand;
3. "quiet" probe: a normal client for --quiet-seconds, no attack;
4. "attack" probe: bench/slowclients/slowclients.py opens --idle idle + --slow slowloris
   connections (re-opened when the server closes them); once they are open, the normal client
   probes for --probe-seconds: three loops side by side, each request with a 3 s timeout:
     healthz    GET /healthz on a new connection each time
     token      POST /oauth/token (fresh assertion) on a new connection each time
     token-ka   POST /oauth/token on one kept-alive connection (new one only when the server closes it)
5. load: wrk -t2 -c16 with bench/wrk/token.lua, with keep-alive and with WRK_CONNECTION_CLOSE=1
   ("Connection: close"), --wrk-seconds each, server CPU ms per token from /proc of its process tree.

Results: a Markdown table on stdout and in bench/slowclients/results.md (or --output), raw JSON
next to it. Every server and client this script starts is stopped at the end (by its own pid /
process group). Traffic goes to 127.0.0.1 only.
"""
from __future__ import annotations

import argparse
import http.client
import importlib.util
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
BIN = Path(sys.executable).parent
GUNICORN_CONF = "python:authserver.gunicorn_conf"

_spec = importlib.util.spec_from_file_location("benchrun", ROOT / "bench" / "run.py")
benchrun = importlib.util.module_from_spec(_spec)
sys.modules["benchrun"] = benchrun
_spec.loader.exec_module(benchrun)

JWT_BEARER = benchrun.JWT_BEARER
log = benchrun.log


def gunicorn(klass: str, *extra: str):
    def cmd(port: int) -> list[str]:
        return [str(BIN / "python"), "-m", "gunicorn", "-c", GUNICORN_CONF,
                "-b", f"127.0.0.1:{port}", "-w", "2", "-k", klass, *extra, "authserver.wsgi:app"]
    return cmd


def granian(threads: int):
    def cmd(port: int) -> list[str]:
        return [str(BIN / "granian"), "--interface", "wsgi", "--host", "127.0.0.1", "--port", str(port),
                "--workers", "2", "--blocking-threads", str(threads), "--working-dir", str(ROOT), "authserver.wsgi:app"]
    return cmd


def uvicorn_a2wsgi(port: int) -> list[str]:
    return [str(BIN / "uvicorn"), "--host", "127.0.0.1", "--port", str(port), "--workers", "2",
            "--no-access-log", "--app-dir", str(HERE), "asgi_app:app"]


CANDIDATES = {
    "sync": ("gunicorn sync, 2 workers (today)", gunicorn("sync")),
    "gthread4": ("gunicorn gthread, 2 workers x 4 threads", gunicorn("gthread", "--threads", "4")),
    "gthread8": ("gunicorn gthread, 2 workers x 8 threads", gunicorn("gthread", "--threads", "8")),
    "gevent": ("gunicorn gevent, 2 workers x 1000 connections", gunicorn("gevent")),
    "granian": ("granian WSGI, 2 workers x 4 blocking threads", granian(4)),
    "uvicorn": ("uvicorn + a2wsgi, 2 workers x 8 threads", uvicorn_a2wsgi),
}


# --------------------------------------------------------------------------- normal client


class Assertions:
    """Fresh assertions on demand, each handed out once (thread-safe)."""

    def __init__(self, setup):
        self.setup = setup
        self.lock = threading.Lock()
        self.buf: list[str] = []

    def next(self) -> str:
        with self.lock:
            if not self.buf:
                self.buf = benchrun.make_assertions(self.setup, 200)
            return self.buf.pop()


def _token_body(assertion: str) -> str:
    return urllib.parse.urlencode({"grant_type": JWT_BEARER, "assertion": assertion})


def probe(port: int, seconds: float, assertions: Assertions, auth: str, timeout: float = 3.0) -> dict:
    deadline = time.monotonic() + seconds
    out: dict[str, dict] = {}

    def record(name: str, lat: list[float], fails: int, extra: dict | None = None) -> None:
        n = len(lat) + fails
        s = sorted(lat)
        out[name] = {
            "attempts": n,
            "ok": len(lat),
            "success": round(len(lat) / n, 3) if n else None,
            "p50_ms": round(s[len(s) // 2] * 1000, 1) if s else None,
            "p99_ms": round(s[min(len(s) - 1, int(0.99 * len(s)))] * 1000, 1) if s else None,
            **(extra or {}),
        }

    def fresh(name: str, method: str, path: str, body_fn) -> None:
        lat, fails = [], 0
        while time.monotonic() < deadline:
            body = body_fn() if body_fn else None
            headers = {"Connection": "close"}
            if body is not None:
                headers.update({"Content-Type": "application/x-www-form-urlencoded", "Authorization": auth})
            t0 = time.monotonic()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
            try:
                conn.request(method, path, body=body, headers=headers)
                r = conn.getresponse()
                r.read()
                if r.status == 200:
                    lat.append(time.monotonic() - t0)
                else:
                    fails += 1
            except (OSError, http.client.HTTPException):
                fails += 1
            finally:
                conn.close()
        record(name, lat, fails)

    def keepalive(name: str) -> None:
        lat, fails, connects = [], 0, 0
        conn = None
        while time.monotonic() < deadline:
            body = _token_body(assertions.next())
            t0 = time.monotonic()
            if conn is None:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
                connects += 1
            try:
                conn.request("POST", "/oauth/token", body=body, headers={
                    "Content-Type": "application/x-www-form-urlencoded", "Authorization": auth})
                r = conn.getresponse()
                r.read()
                if r.status == 200:
                    lat.append(time.monotonic() - t0)
                else:
                    fails += 1
                if r.will_close:
                    conn.close()
                    conn = None
            except (OSError, http.client.HTTPException):
                fails += 1
                conn.close()
                conn = None
        if conn is not None:
            conn.close()
        n = len(lat) + fails
        record(name, lat, fails, {"requests_per_connection": round(n / connects, 1) if connects else None})

    threads = [
        threading.Thread(target=fresh, args=("healthz", "GET", "/healthz", None)),
        threading.Thread(target=fresh, args=("token", "POST", "/oauth/token",
                                             lambda: _token_body(assertions.next()))),
        threading.Thread(target=keepalive, args=("token-ka",)),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(seconds + timeout + 5)
    return out


# --------------------------------------------------------------------------- phases


def attack(server, args, assertions: Assertions, auth: str) -> dict:
    total = args.settle + args.probe_seconds + 1
    cmd = [sys.executable, str(HERE / "slowclients.py"), "--port", str(server.port), "--idle", str(args.idle),
           "--slow", str(args.slow), "--seconds", str(total)]
    pid = server.proc.pid
    cpu0, _ = benchrun.tree_cpu_seconds(pid)
    gen = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           stdin=subprocess.DEVNULL)
    try:
        time.sleep(args.settle)
        t0 = time.monotonic()
        res = probe(server.port, args.probe_seconds, assertions, auth)
        wall = time.monotonic() - t0
        cpu1, nprocs = benchrun.tree_cpu_seconds(pid)
        stdout, stderr = gen.communicate(timeout=total + 30)
    finally:
        if gen.poll() is None:
            gen.kill()
            gen.wait()
    line = [ln for ln in stdout.splitlines() if ln.startswith("SLOWCLIENTS ")]
    res["slowclients"] = json.loads(line[0][len("SLOWCLIENTS "):]) if line else {"error": stderr[-300:]}
    res["server_cpu_pct"] = round((cpu1 - cpu0) / (args.settle + wall) * 100, 1)
    res["server_processes"] = nprocs
    return res


def load(server, args, setup, work: Path, keepalive: bool) -> dict:
    path = work / f"assertions-{'ka' if keepalive else 'close'}.txt"
    count = max(3000, args.wrk_seconds * 2500)
    benchrun.write_assertion_file(path, setup, count)
    script = benchrun.WRK_DIR / "token.lua"
    # token.lua sends "Connection: close" on every request when this is set.
    os.environ["WRK_CONNECTION_CLOSE"] = "0" if keepalive else "1"
    pid = server.proc.pid
    cpu0, _ = benchrun.tree_cpu_seconds(pid)
    busy0, wrk0 = benchrun.machine_busy_seconds(), benchrun.children_cpu_seconds()
    raw = benchrun.run_wrk(server.url, script, path, 16, args.wrk_seconds)
    time.sleep(0.3)
    cpu1, _ = benchrun.tree_cpu_seconds(pid)
    busy1, wrk1 = benchrun.machine_busy_seconds(), benchrun.children_cpu_seconds()
    path.unlink(missing_ok=True)
    requests = raw["requests"] - raw.get("exhausted", 0)
    secs = raw["duration_us"] / 1e6
    errors = raw["non200"] + raw["connect_errors"] + raw["read_errors"] + raw["write_errors"] + raw["timeouts"]
    other = (busy1 - busy0) - (cpu1 - cpu0) - (wrk1 - wrk0)
    return {
        "rps": round(requests / secs, 1) if secs else 0.0,
        "p50_ms": raw["p50_us"] / 1000, "p99_ms": raw["p99_us"] / 1000,
        "errors": errors, "requests": requests, "exhausted": raw.get("exhausted", 0),
        "cpu_ms": round((cpu1 - cpu0) * 1000 / requests, 3) if requests else None,
        "other_cores": round(max(0.0, other) / (secs + 0.3), 2),
    }


def run_candidate(key: str, label: str, cmd_fn, pristine: Path, tmp: Path, base_env: dict, setup, port: int,
                  args) -> dict:
    log(f"== {key}: {label}")
    work = tmp / key
    shutil.copytree(pristine, work)
    env = dict(base_env)
    env["AUTHSERVER_INSTANCE_PATH"] = str(work / "instance")
    env["PYTHONPATH"] = str(ROOT)
    server = benchrun.Server(key, cmd_fn(port), env, ROOT, work / "server.log", port)
    result: dict = {"key": key, "label": label}
    try:
        server.start(timeout=60)
        auth = benchrun.basic_auth(setup.client_id, setup.client_secret)
        status, body = benchrun.post_form(
            server.url + "/oauth/token",
            {"grant_type": JWT_BEARER, "assertion": benchrun.make_assertions(setup, 1)[0]},
            auth,
        )
        benchrun.check_token_response(status, body, args.alg)
        assertions = Assertions(setup)
        # Warm-up of both workers (discarded).
        warm = work / "warm.txt"
        benchrun.write_assertion_file(warm, setup, 1500)
        benchrun.run_wrk(server.url, benchrun.WRK_DIR / "token.lua", warm, 4, 1)
        result["quiet"] = probe(port, args.quiet_seconds, assertions, auth)
        log(f"  quiet:  {json.dumps(result['quiet'])}")
        result["attack"] = attack(server, args, assertions, auth)
        log(f"  attack: {json.dumps(result['attack'])}")
        if server.proc.poll() is not None:
            raise benchrun.BenchError("server died during the attack" + server.log_tail())
        time.sleep(1.0)  # let the server drop what the slow clients left behind
        result["load_ka"] = load(server, args, setup, work, True)
        log(f"  wrk c16 keep-alive: {json.dumps(result['load_ka'])}")
        result["load_close"] = load(server, args, setup, work, False)
        log(f"  wrk c16 close:      {json.dumps(result['load_close'])}")
        log_text = (work / "server.log").read_text(errors="replace")
        result["log_worker_timeouts"] = log_text.count("WORKER TIMEOUT")
        result["log_tracebacks"] = log_text.count("Traceback")
    except Exception as e:  # keep going with the other candidates
        result["failed"] = f"{type(e).__name__}: {str(e)[:400]}"
        log(f"  FAILED: {result['failed']}")
    finally:
        server.stop()
        time.sleep(1.0)
    return result


# --------------------------------------------------------------------------- report


def _ratio(a, b) -> str:
    if a is None or b in (None, 0):
        return "–"
    return f"{a / b:.2f}"


def _att(r: dict, name: str) -> str:
    a = r.get("attack", {}).get(name)
    if not a:
        return "–"
    p50 = "–" if a["p50_ms"] is None else f"{a['p50_ms']:.0f}"
    p99 = "–" if a["p99_ms"] is None else f"{a['p99_ms']:.0f}"
    return f"{a['ok']}/{a['attempts']} ({p50} / {p99})"


def render(results: list[dict], args, facts: dict) -> str:
    lines = ["# Slow clients: results of one run", ""]
    lines.append(f"- started {facts['started']}, {facts['nproc']} CPUs, load average before "
                 f"{facts['load_before']}, after {facts['load_after']}")
    lines.append(f"- python {platform.python_version()}, {facts['versions']}")
    lines.append(
        f"- attack: {args.idle} idle + {args.slow} slowloris connections (re-opened when closed), "
        f"probe {args.probe_seconds:g} s after {args.settle:g} s settle; quiet probe {args.quiet_seconds:g} s; "
        f"wrk -t2 -c16 {args.wrk_seconds} s per row; 2 worker processes everywhere; SQLite; {args.alg} access tokens"
    )
    lines.append("")
    lines.append("## Under attack (normal client: ok/attempts, (p50 / p99 ms) of the successful ones, 3 s timeout)")
    lines.append("")
    lines.append("| server | /healthz new conn | token new conn | token keep-alive | keep-alive req/conn | "
                 "slow conns closed by server (idle / slow) | server CPU % during attack |")
    lines.append("|---|---|---|---|---|---|---|")
    for r in results:
        if "attack" not in r:
            lines.append(f"| {r['key']} | FAILED: {r.get('failed', '?')[:120]} | | | | | |")
            continue
        a = r["attack"]
        sc = a.get("slowclients", {}).get("closed_by_server", {})
        lines.append(f"| {r['key']} | {_att(r, 'healthz')} | {_att(r, 'token')} | {_att(r, 'token-ka')} | "
                     f"{a.get('token-ka', {}).get('requests_per_connection', '–')} | "
                     f"{sc.get('idle', '–')} / {sc.get('slow', '–')} | {a.get('server_cpu_pct', '–')} |")
    lines.append("")
    lines.append("## Without attack: quiet probe (p50 ms, sequential) and wrk c16 (ratios to sync in this run)")
    lines.append("")
    base = next((r for r in results if r["key"] == "sync" and "load_ka" in r), None)
    lines.append("| server | quiet healthz p50 | quiet token p50 (new / ka) | c16 keep-alive tok/s | × sync | p99 ms | "
                 "CPU ms/token | × sync | c16 close tok/s | × sync | p99 ms | CPU ms/token | × sync | errors | "
                 "others' cores |")
    lines.append("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        if "load_ka" not in r or "load_close" not in r:
            continue
        q = r["quiet"]
        ka, cl = r["load_ka"], r["load_close"]
        bka = base["load_ka"] if base else {}
        bcl = base["load_close"] if base else {}
        lines.append(
            f"| {r['key']} | {q['healthz']['p50_ms']} | {q['token']['p50_ms']} / {q['token-ka']['p50_ms']} | "
            f"{ka['rps']:.0f} | {_ratio(ka['rps'], bka.get('rps'))} | {ka['p99_ms']:.1f} | {ka['cpu_ms']:.2f} | "
            f"{_ratio(ka['cpu_ms'], bka.get('cpu_ms'))} | "
            f"{cl['rps']:.0f} | {_ratio(cl['rps'], bcl.get('rps'))} | {cl['p99_ms']:.1f} | {cl['cpu_ms']:.2f} | "
            f"{_ratio(cl['cpu_ms'], bcl.get('cpu_ms'))} | {ka['errors']} / {cl['errors']} | "
            f"{ka['other_cores']} / {cl['other_cores']} |")
    lines.append("")
    lines.append("Server-log counts (WORKER TIMEOUT / Traceback): " + ", ".join(
        f"{r['key']} {r.get('log_worker_timeouts', '–')}/{r.get('log_tracebacks', '–')}" for r in results))
    lines.append("")
    return "\n".join(lines)


def interleaved_load(keys: list[str], pristine: Path, tmp: Path, base_env: dict, setup, args) -> dict:
    """All candidates up at once (each on its own port and instance copy); then --rounds rounds, each
    running wrk c16 keep-alive and close against every candidate in turn. Per round, every figure is
    divided by sync's figure of the same round; the medians of those ratios are reported."""
    import dataclasses

    servers, setups = {}, {}
    try:
        for key in keys:
            label, cmd_fn = CANDIDATES[key]
            port = benchrun.free_port()
            work = tmp / f"load-{key}"
            shutil.copytree(pristine, work)
            env = dict(base_env)
            env.update({"AUTHSERVER_INSTANCE_PATH": str(work / "instance"), "PYTHONPATH": str(ROOT),
                        "AUTHSERVER_ISSUER": f"http://127.0.0.1:{port}"})
            srv = benchrun.Server(f"load-{key}", cmd_fn(port), env, ROOT, work / "server.log", port)
            srv.start(timeout=60)
            servers[key] = (srv, work)
            setups[key] = dataclasses.replace(setup, issuer=f"http://127.0.0.1:{port}")
            warm = work / "warm.txt"
            benchrun.write_assertion_file(warm, setups[key], 1500)
            benchrun.run_wrk(srv.url, benchrun.WRK_DIR / "token.lua", warm, 4, 1)
        rounds = []
        for r in range(args.rounds):
            rnd = {}
            order = keys if r % 2 == 0 else list(reversed(keys))
            for key in order:
                srv, work = servers[key]
                rnd[key] = {"ka": load(srv, args, setups[key], work, True),
                            "close": load(srv, args, setups[key], work, False)}
                log(f"  round {r + 1} {key}: ka {rnd[key]['ka']['rps']:.0f}/s {rnd[key]['ka']['cpu_ms']} ms, "
                    f"close {rnd[key]['close']['rps']:.0f}/s {rnd[key]['close']['cpu_ms']} ms, others "
                    f"{rnd[key]['ka']['other_cores']}/{rnd[key]['close']['other_cores']} cores")
            rounds.append(rnd)
        summary = {}
        for key in keys:
            row = {}
            for mode in ("ka", "close"):
                for metric in ("rps", "cpu_ms", "p99_ms"):
                    vals = [rnd[key][mode][metric] / rnd["sync"][mode][metric] for rnd in rounds
                            if rnd["sync"][mode][metric]]
                    row[f"{mode}_{metric}_ratio"] = (round(statistics.median(vals), 2), round(min(vals), 2),
                                                     round(max(vals), 2)) if vals else None
                    row[f"{mode}_{metric}_median"] = round(
                        statistics.median(rnd[key][mode][metric] for rnd in rounds), 2
                    )
                row[f"{mode}_errors"] = sum(rnd[key][mode]["errors"] for rnd in rounds)
            summary[key] = row
        return {"rounds": rounds, "summary": summary}
    finally:
        for srv, _ in servers.values():
            srv.stop()


def render_load(load_res: dict, args) -> str:
    lines = [
        "",
        f"## Load without attack, interleaved: {args.rounds} rounds x wrk -t2 -c16 {args.wrk_seconds} s "
        "per candidate and mode, all servers up at once",
        "",
        "Ratio to sync measured in the same round: median (min–max over rounds). Absolute medians are only "
        "for orientation: the machine is shared.",
        "",
        "| server | keep-alive tok/s × sync | keep-alive CPU ms/token × sync | keep-alive p99 × sync | "
        "close tok/s × sync | close CPU ms/token × sync | close p99 × sync | median CPU ms/token (ka / close) "
        "| errors |",
        "|---|---|---|---|---|---|---|---|---|",
    ]

    def f(t):
        return "–" if t is None else f"{t[0]:.2f} ({t[1]:.2f}–{t[2]:.2f})"

    for key, row in load_res["summary"].items():
        lines.append(
            f"| {key} | {f(row['ka_rps_ratio'])} | {f(row['ka_cpu_ms_ratio'])} | {f(row['ka_p99_ms_ratio'])} | "
            f"{f(row['close_rps_ratio'])} | {f(row['close_cpu_ms_ratio'])} | {f(row['close_p99_ms_ratio'])} | "
            f"{row['ka_cpu_ms_median']} / {row['close_cpu_ms_median']} | {row['ka_errors']} / {row['close_errors']} |"
        )
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default=",".join(CANDIDATES), help="comma-separated candidates: " + ",".join(CANDIDATES))
    ap.add_argument("--no-repeat-sync", action="store_true", help="do not measure sync a second time at the end")
    ap.add_argument("--idle", type=int, default=300)
    ap.add_argument("--slow", type=int, default=50)
    ap.add_argument("--settle", type=float, default=2.0)
    ap.add_argument("--probe-seconds", type=float, default=8.0)
    ap.add_argument("--quiet-seconds", type=float, default=3.0)
    ap.add_argument("--wrk-seconds", type=int, default=5)
    ap.add_argument("--mode", choices=["attack", "load", "both"], default="both",
                    help="attack: per-candidate attack probes (+ one wrk pass each); load: interleaved wrk rounds")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--alg", default="ES256", choices=["ES256", "RS256"], help="access-token signing algorithm")
    ap.add_argument("--output", default=str(HERE / "results.md"))
    args = ap.parse_args()
    keys = [k.strip() for k in args.only.split(",") if k.strip()]
    unknown = [k for k in keys if k not in CANDIDATES]
    if unknown:
        ap.error(f"unknown candidates {unknown}")
    if "sync" in keys:
        keys.remove("sync")
    order = ["sync", *keys] + ([] if args.no_repeat_sync or not keys else ["sync"])

    signal_handler = benchrun._on_sigterm
    import signal
    signal.signal(signal.SIGTERM, signal_handler)

    facts = {"started": time.strftime("%Y-%m-%d %H:%M:%S"), "nproc": os.cpu_count(),
             "load_before": open("/proc/loadavg").read().split()[:3]}
    vers = []
    for mod in ("gunicorn", "gevent", "granian", "uvicorn", "a2wsgi", "psycopg"):
        try:
            from importlib.metadata import version
            vers.append(f"{mod} {version(mod)}")
        except Exception:
            pass
    facts["versions"] = ", ".join(vers)

    tmp = Path(tempfile.mkdtemp(prefix="authserver-slowclients-"))
    results: list[dict] = []
    load_res: dict | None = None
    try:
        port = benchrun.free_port()
        issuer = f"http://127.0.0.1:{port}"
        pristine = tmp / "pristine"
        (pristine / "instance").mkdir(parents=True, mode=0o700)
        base_env = dict(os.environ)
        base_env.update({
            "AUTHSERVER_INSTANCE_PATH": str(pristine / "instance"),
            "AUTHSERVER_ISSUER": issuer,
            "AUTHSERVER_PURGE_INTERVAL": "0",
            "AUTHSERVER_SIGNING_ALG": args.alg,
            "AUTHSERVER_RATE_LIMIT_TOKEN_REQUESTS_PER_CLIENT": str(benchrun.BENCH_TOKEN_RATE_LIMIT),
        })
        base_env.pop("AUTHSERVER_DATABASE_URL", None)
        log(f"setting up one pristine instance (issuer {issuer})")
        setup = benchrun.setup_authserver(base_env, pristine, issuer)
        for i, key in enumerate(order if args.mode in ("attack", "both") else []):
            label, cmd_fn = CANDIDATES[key]
            r = run_candidate(key if i == 0 or key != "sync" else "sync", label, cmd_fn, pristine, tmp,
                              base_env, setup, port, args) if key != "sync" or i == 0 else None
            if r is None:  # the repeat of sync: its own work directory
                r = run_candidate("sync-again", label, cmd_fn, pristine, tmp, base_env, setup, port, args)
            results.append(r)
        if args.mode in ("load", "both"):
            log("== interleaved load rounds")
            load_res = interleaved_load(["sync", *keys], pristine, tmp, base_env, setup, args)
    except KeyboardInterrupt:
        log("interrupted")
    finally:
        benchrun.stop_all_servers()
        shutil.rmtree(tmp, ignore_errors=True)
    facts["load_after"] = open("/proc/loadavg").read().split()[:3]
    report = render(results, args, facts)
    if load_res is not None:
        report += render_load(load_res, args)
    print(report)
    out = Path(args.output)
    out.write_text(report)
    out.with_suffix(".json").write_text(json.dumps({"facts": facts, "results": results, "load": load_res}, indent=1))
    log(f"written to {out} and {out.with_suffix('.json')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
