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
   with the ``authserver`` command line exactly as SPEC §6 defines it (org,
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
   concurrency and the issue-4 targets go to stdout and bench/results/latest.md.

Every server this script starts is stopped on exit, error or Ctrl-C.
Client secrets and tokens are never printed; they live only in files with
mode 0600 inside the temporary directory, which is removed at the end.
"""

from __future__ import annotations

import argparse
import base64
import datetime as _dt
import json
import os
import platform
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
WRK_DIR = BENCH_DIR / "wrk"
RESULTS_DIR = BENCH_DIR / "results"
BIN_DIR = Path(sys.executable).parent

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
CLK_TCK = os.sysconf("SC_CLK_TCK")
DEFAULT_POSTGRES = "postgresql://root@127.0.0.1:5432/postgres"
QUIET_WAIT = 0.0  # set from --quiet-wait
BENCH_TOKEN_RATE_LIMIT = 100_000_000  # token requests per client per minute

# Issue 4 targets for the JWT-bearer grant, ES256 access tokens, SQLite,
# 2 workers, concurrency 16.
TARGET_RATIO = 4.0
TARGET_CPU_MS = 0.8
TARGET_P99_MS = 25.0
TARGET_INTROSPECT_RATIO = 3.0


class BenchError(RuntimeError):
    """A step of the benchmark failed; the message says which and why."""


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------
# Processes


def _proc_stat(pid: int) -> tuple[int, int] | None:
    """(ppid, utime+stime+cutime+cstime in ticks) of pid, or None if gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            data = fh.read().decode("ascii", "replace")
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    rest = data[data.rindex(")") + 2 :].split()
    # rest[0] is field 3 (state) of proc(5): ppid is field 4, utime 14,
    # stime 15, cutime 16, cstime 17.
    ppid = int(rest[1])
    ticks = int(rest[11]) + int(rest[12]) + int(rest[13]) + int(rest[14])
    return ppid, ticks


def _children(pid: int) -> list[int]:
    kids: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except FileNotFoundError:
        return kids
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/children") as fh:
                kids.extend(int(x) for x in fh.read().split())
        except (FileNotFoundError, ProcessLookupError):
            continue
    return kids


def process_tree(root: int) -> list[int]:
    """root and all its live descendants (bounded walk)."""
    seen: list[int] = []
    todo = [root]
    while todo and len(seen) < 1000:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.append(pid)
        todo.extend(_children(pid))
    return seen


def tree_cpu_seconds(root: int) -> tuple[float, int]:
    """CPU seconds used so far by root's process tree, and its process count.

    Each process contributes utime+stime plus cutime+cstime (its reaped
    children), so a worker that exits between two samples is still counted
    once: its time moves from its own entry into its parent's.
    """
    total = 0
    pids = process_tree(root)
    for pid in pids:
        st = _proc_stat(pid)
        if st is not None:
            total += st[1]
    return total / CLK_TCK, len(pids)


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine has spent busy (all cores), from /proc/stat."""
    with open("/proc/stat") as fh:
        fields = fh.readline().split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[:8])
    return (user + nice + system + irq + softirq + steal) / CLK_TCK


def wait_for_quiet(max_wait: float, threshold: float = 0.25) -> float:
    """Wait (at most max_wait s) until the machine is nearly idle: under
    `threshold` cores busy over two consecutive 1 s samples. Returns the last
    busy figure (cores). Our own servers are idle between runs, so what is
    busy then is other programs."""
    if max_wait <= 0:
        return 0.0
    deadline = time.monotonic() + max_wait
    calm = 0
    busy = 0.0
    while True:
        b0, t0 = machine_busy_seconds(), time.monotonic()
        time.sleep(1.0)
        busy = (machine_busy_seconds() - b0) / (time.monotonic() - t0)
        calm = calm + 1 if busy < threshold else 0
        if calm >= 2 or time.monotonic() >= deadline:
            return busy


def children_cpu_seconds() -> float:
    """CPU seconds of this script's reaped children (wrk)."""
    import resource

    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    name: str
    cmd: list[str]
    env: dict[str, str]
    cwd: Path
    log_path: Path
    port: int
    health_path: str = "/healthz"
    proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> None:
        log(f"  starting {self.name} on port {self.port}")
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            self.cmd,
            env=self.env,
            cwd=self.cwd,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # own process group: Ctrl-C reaches us, not it
        )
        LIVE_SERVERS.append(self)
        deadline = time.monotonic() + timeout
        last = "no answer"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BenchError(
                    f"{self.name} exited with code {self.proc.returncode} while starting"
                    + self.log_tail()
                )
            try:
                with urllib.request.urlopen(self.url + self.health_path, timeout=2) as r:
                    if r.status == 200:
                        return
                    last = f"HTTP {r.status}"
            except urllib.error.HTTPError as e:
                last = f"HTTP {e.code}"
            except OSError as e:
                last = str(e)
            time.sleep(0.2)
        raise BenchError(
            f"{self.name} not ready after {timeout:.0f}s ({last})" + self.log_tail()
        )

    def log_tail(self, lines: int = 25) -> str:
        try:
            text = self.log_path.read_text(errors="replace").splitlines()[-lines:]
        except OSError:
            return ""
        return "\n--- last lines of " + str(self.log_path.name) + " ---\n" + "\n".join(text)

    def stop(self) -> None:
        proc = self.proc
        if proc is None:
            return
        self.proc = None
        if proc.poll() is None:
            log(f"  stopping {self.name} (pid {proc.pid})")
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                log(f"  {self.name} ignored SIGTERM; killing")
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait(timeout=10)
        else:
            # The leader may be gone while its group lives on.
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        try:
            self._log.close()
        except Exception:
            pass
        if self in LIVE_SERVERS:
            LIVE_SERVERS.remove(self)


LIVE_SERVERS: list[Server] = []


def stop_all_servers() -> None:
    for srv in list(LIVE_SERVERS):
        try:
            srv.stop()
        except Exception as e:  # keep stopping the others
            log(f"  could not stop {srv.name}: {e}")


def _on_sigterm(signum, frame):  # noqa: ARG001
    raise KeyboardInterrupt


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


def write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)


def short(value: str) -> str:
    return value[:8] + "…" if len(value) > 8 else value


# --------------------------------------------------------------------------
# wrk


@dataclass
class RunResult:
    server: str
    database: str
    alg: str
    endpoint: str
    concurrency: int
    data: str = ""  # "" or "seeded" (--large)
    requests: int = 0
    rps: float = 0.0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    errors: int = 0
    cpu_ms: float | None = None
    db_cpu_ms: float | None = None
    wrk_cpu_pct: float | None = None
    other_cpu_pct: float | None = None
    note: str = ""
    failed: bool = False
    raw: dict = field(default_factory=dict)

    @property
    def label(self) -> str:
        return (f"{self.server} {self.endpoint} {self.database}"
                f"{' seeded' if self.data else ''} {self.alg} c{self.concurrency}")


def wrk_threads(concurrency: int) -> int:
    return 1 if concurrency < 2 else 2


def run_wrk(
    url: str,
    script: Path,
    script_arg: Path,
    concurrency: int,
    duration: int,
) -> dict:
    cmd = [
        "wrk",
        f"-t{wrk_threads(concurrency)}",
        f"-c{concurrency}",
        f"-d{duration}s",
        "--timeout",
        "10s",
        "--latency",
        "-s",
        str(script),
        url,
        "--",
        str(script_arg),
        str(wrk_threads(concurrency)),
    ]
    proc = subprocess.run(
        cmd, capture_output=True, text=True, timeout=duration + 120, stdin=subprocess.DEVNULL
    )
    m = re.search(r"^BENCH_RESULT (\{.*\})$", proc.stdout, re.M)
    if proc.returncode != 0 or not m:
        raise BenchError(
            f"wrk failed (exit {proc.returncode}): {proc.stderr.strip()[-800:]} {proc.stdout.strip()[-800:]}"
        )
    result = json.loads(m.group(1))
    result["stderr"] = proc.stderr.strip()
    return result


def measure(
    server: Server,
    result: RunResult,
    script: Path,
    script_arg: Path,
    duration: int,
    db: "Database | None" = None,
) -> RunResult:
    """Run wrk once against server and fill in result (including server CPU,
    and for PostgreSQL the CPU of the database backends serving it)."""
    assert server.proc is not None
    pid = server.proc.pid
    busy = wait_for_quiet(QUIET_WAIT)
    if busy >= 0.25:
        log(f"    machine still busy ({busy:.2f} cores used by others); measuring anyway")
    db0 = db.backend_cpu() if db is not None else None
    cpu0, nproc0 = tree_cpu_seconds(pid)
    busy0, wrk0, wall0 = machine_busy_seconds(), children_cpu_seconds(), time.monotonic()
    raw = run_wrk(server.url, script, script_arg, result.concurrency, duration)
    # Let requests still in flight when wrk stopped finish before sampling.
    time.sleep(0.3)
    cpu1, nproc1 = tree_cpu_seconds(pid)
    busy1, wrk1, wall1 = machine_busy_seconds(), children_cpu_seconds(), time.monotonic()
    db1 = db.backend_cpu() if db is not None else None
    if server.proc.poll() is not None:
        raise BenchError(f"{server.name} died during the run" + server.log_tail())
    requests = raw["requests"] - raw.get("exhausted", 0)
    seconds = raw["duration_us"] / 1e6
    socket_errors = (
        raw["connect_errors"] + raw["read_errors"] + raw["write_errors"] + raw["timeouts"]
    )
    result.raw = raw
    result.requests = requests
    result.rps = requests / seconds if seconds else 0.0
    result.p50_ms = raw["p50_us"] / 1000
    result.p99_ms = raw["p99_us"] / 1000
    result.errors = raw["non200"] + raw.get("inactive", 0) + socket_errors
    result.cpu_ms = (cpu1 - cpu0) * 1000 / requests if requests else None
    if db0 is not None and db1 is not None and requests:
        # Backends that appeared during the run count from zero.
        used = sum(max(0.0, t - db0.get(p, 0.0)) for p, t in db1.items())
        result.db_cpu_ms = used * 1000 / requests
    # Everything else the machine did meanwhile (other programs, PostgreSQL's
    # own background processes): a high figure means the run was disturbed.
    wall = wall1 - wall0
    server_s = cpu1 - cpu0 + ((result.db_cpu_ms or 0) * requests / 1000)
    result.wrk_cpu_pct = (wrk1 - wrk0) / wall * 100
    result.other_cpu_pct = max(0.0, (busy1 - busy0) - server_s - (wrk1 - wrk0)) / wall * 100
    notes = []
    if raw.get("inactive"):
        notes.append(f"{raw['inactive']} inactive")
    if socket_errors:
        notes.append(
            "socket errors: connect {connect_errors}, read {read_errors}, "
            "write {write_errors}, timeout {timeouts}".format(**raw)
        )
    if result.other_cpu_pct > 15:
        notes.append(f"other programs used {result.other_cpu_pct:.0f} % of a core meanwhile")
    if nproc0 != nproc1:
        notes.append(f"server processes {nproc0}→{nproc1}")
    if raw.get("stderr"):
        first = raw["stderr"].splitlines()[0]
        notes.append(first[:120])
    result.note = "; ".join(notes)
    log(
        f"    {result.label}: {result.rps:8.1f} req/s  p50 {result.p50_ms:6.2f} ms  "
        f"p99 {result.p99_ms:6.2f} ms  errors {result.errors}  "
        f"CPU {result.cpu_ms if result.cpu_ms is None else round(result.cpu_ms, 3)} ms/req"
        + (f" + database {result.db_cpu_ms:.3f}" if result.db_cpu_ms is not None else "")
        + f"  ({nproc1} server processes; wrk {result.wrk_cpu_pct:.0f} %,"
        f" other {result.other_cpu_pct:.0f} % of a core)"
    )
    return result


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
    try:
        server.start()
        # Warm both workers up.
        run_wrk(server.url, WRK_DIR / "baseline.lua", auth_file, 4, 1)
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


def _gunicorn_has_control_socket(gunicorn: list[str]) -> bool:
    try:
        out = subprocess.run(
            gunicorn + ["--help"], capture_output=True, text=True, timeout=30
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return False
    return "--no-control-socket" in out


# --------------------------------------------------------------------------
# authserver


def authserver_bin() -> str | None:
    cand = BIN_DIR / "authserver"
    if cand.exists():
        return str(cand)
    return shutil.which("authserver")


class Database:
    """A database for one authserver configuration: a SQLite file, or a fresh
    PostgreSQL database created on the given server and dropped afterwards."""

    def __init__(self, kind: str, admin_url: str | None, instance: Path):
        self.kind = kind
        self.admin_url = admin_url
        self.instance = instance
        self.pg_name: str | None = None
        self.url = ""

    def __enter__(self) -> "Database":
        if self.kind == "sqlite":
            self.url = f"sqlite:///{self.instance / 'authserver.db'}"
            return self
        import psycopg  # the project's PostgreSQL driver

        self.pg_name = "authserver_bench_" + secrets.token_hex(4)
        with psycopg.connect(_libpq_url(self.admin_url), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{self.pg_name}"')
        parts = urllib.parse.urlsplit(self.admin_url)
        scheme = "postgresql+psycopg"
        self.url = urllib.parse.urlunsplit(
            (scheme, parts.netloc, "/" + self.pg_name, parts.query, "")
        )
        log(f"  created PostgreSQL database {self.pg_name}")
        return self

    def __exit__(self, *exc) -> None:
        if self.pg_name is None:
            return
        import psycopg

        try:
            with psycopg.connect(_libpq_url(self.admin_url), autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{self.pg_name}" WITH (FORCE)')
            log(f"  dropped PostgreSQL database {self.pg_name}")
        except Exception as e:
            log(f"  could not drop PostgreSQL database {self.pg_name}: {e}")


    def backend_cpu(self) -> dict[int, float] | None:
        """CPU seconds so far of each PostgreSQL backend connected to our database."""
        if self.pg_name is None:
            return None
        import psycopg

        with psycopg.connect(_libpq_url(self.admin_url), autocommit=True) as conn:
            pids = [
                r[0]
                for r in conn.execute(
                    "SELECT pid FROM pg_stat_activity WHERE datname = %s", (self.pg_name,)
                )
            ]
        out = {}
        for pid in pids:
            st = _proc_stat(pid)
            if st is not None:
                out[pid] = st[1] / CLK_TCK
        return out


def _libpq_url(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    scheme = parts.scheme.split("+", 1)[0]
    if scheme == "postgres":
        scheme = "postgresql"
    return urllib.parse.urlunsplit((scheme,) + tuple(parts[1:]))


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
    # The API its tokens are for (SPEC §9), granted as the client's default: requests name no resource.
    api_id = _need(
        cli(env, work, "api", "create", "--org", org_id, "bench-api", BENCH_API, "--scope", "read", "--scope", "write"),
        "api_id",
        "api create",
    )
    cli(env, work, "client", "grant", client_id, BENCH_API, "--scope", "read write", "--default")
    if not re.fullmatch(r"[0-9a-f]{32}", client_id):
        log(f"  note: client_id {short(client_id)} is not 32 lowercase hex characters (SPEC §3)")
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

    # The resource server that introspects: the API's own client (SPEC §9).
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
    """Validate one token response against SPEC §4; return the access token."""
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
        log("    note: token response differs from SPEC §4: " + "; ".join(problems))
    return token


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
    for attempt in range(3):  # bounded: at most two retries with more assertions
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


# --------------------------------------------------------------------------
# Report


def machine_description() -> str:
    cpu = platform.processor() or "unknown CPU"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemTotal"):
                mem = f", {int(line.split()[1]) // 1024 // 1024} GiB RAM"
                break
    except OSError:
        pass
    return f"{os.cpu_count()} cores, {cpu}{mem}, Linux {platform.release()}"


def versions() -> str:
    parts = [f"Python {platform.python_version()}"]
    try:
        out = subprocess.run(["wrk", "--version"], capture_output=True, text=True, timeout=10)
        first = (out.stdout or out.stderr).splitlines()[0]
        parts.append(first.split(" Copyright")[0])
    except (OSError, IndexError, subprocess.TimeoutExpired):
        pass
    try:
        from importlib.metadata import version

        for pkg in ("gunicorn", "Flask", "Authlib", "SQLAlchemy", "PyJWT"):
            parts.append(f"{pkg} {version(pkg)}")
    except Exception:
        pass
    return ", ".join(parts)


def git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True, text=True, timeout=10,
        )
        return out.stdout.strip() or "none"
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"


def fmt(v: float | None, digits: int = 2) -> str:
    return "–" if v is None else f"{v:.{digits}f}"


def load_average() -> str:
    try:
        return " ".join(open("/proc/loadavg").read().split()[:3])
    except OSError:
        return "unknown"


def render(results: list[RunResult], args, started: float, notes: list[str], load0: str) -> str:
    base = {
        r.concurrency: r.rps
        for r in results
        if r.server == "baseline" and not r.failed and r.rps > 0
    }
    lines = [
        "# authserver benchmark results",
        "",
        f"- date: {_dt.datetime.now(_dt.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- commit: {git_commit()}",
        f"- machine: {machine_description()}",
        f"- software: {versions()}",
        f"- command: `{' '.join(['bench/run.py', *sys.argv[1:]])}`",
        f"- load average (1, 5, 15 min) before the run: {load0}; after: {load_average()}",
        f"- runs: {args.duration} s each after a 1 s warm-up, "
        + ", ".join(f"wrk -t{wrk_threads(c)} -c{c}" for c in args.concurrency)
        + f", gunicorn with {args.workers} workers;"
        f" wall time {time.monotonic() - started:.0f} s"
        + (f"; rows marked 'seeded' were measured after adding {args.large_tokens:,} access tokens "
           f"and {args.large_clients:,} clients to the same database" if args.large else ""),
        "",
        "| server | endpoint | database | access token | conc. | req/s | p50 ms | p99 ms | errors | CPU ms/req | DB CPU ms/req | × baseline |",
        "|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        dbcol = r.database + (", seeded" if r.data else "")
        if r.failed:
            lines.append(
                f"| {r.server} | {r.endpoint} | {dbcol} | {r.alg} | {r.concurrency} "
                f"| failed | | | | | | |"
            )
            continue
        ratio = f"{r.rps / base[r.concurrency]:.2f}" if r.concurrency in base else "–"
        lines.append(
            f"| {r.server} | {r.endpoint} | {dbcol} | {r.alg} | {r.concurrency} "
            f"| {r.rps:.0f} | {fmt(r.p50_ms)} | {fmt(r.p99_ms)} | {r.errors} "
            f"| {fmt(r.cpu_ms, 3)} | {fmt(r.db_cpu_ms, 3)} | {ratio} |"
        )
    lines.append("")
    lines.append(
        "req/s counts completed requests; errors = non-200 answers + introspection answers that "
        "were not active + socket errors; CPU ms/req = user+system CPU of the server's master and "
        "workers during the run ÷ completed requests (SQLite runs inside the workers, so it is "
        "included); DB CPU ms/req = the same for the PostgreSQL backends connected to the "
        "benchmark's database; × baseline = req/s ÷ the baseline's req/s at the same concurrency."
    )

    # Targets (issue 4): JWT bearer, ES256, SQLite, concurrency 16.
    def find(endpoint: str, db: str = "sqlite", alg: str = "ES256", c: int = 16, data: str = ""):
        for r in results:
            if (r.server, r.endpoint, r.database, r.alg, r.concurrency, r.data) == (
                "authserver", endpoint, db, alg, c, data,
            ) and not r.failed:
                return r
        return None

    tok, intro = find("token"), find("introspect")
    lines += ["", "## Targets (JWT bearer, ES256 access tokens, SQLite, 2 workers, concurrency 16)", ""]
    if tok is None:
        lines.append("Not measured in this run.")
    else:
        checks = []
        if 16 in base:
            ratio = tok.rps / base[16]
            checks.append((f"≥ {TARGET_RATIO:g}× the baseline's tokens/s", f"{ratio:.2f}×", ratio >= TARGET_RATIO))
        if tok.cpu_ms is not None:
            checks.append((f"≤ {TARGET_CPU_MS} ms server CPU per token", f"{tok.cpu_ms:.3f} ms", tok.cpu_ms <= TARGET_CPU_MS))
        checks.append((f"p99 < {TARGET_P99_MS:g} ms", f"{tok.p99_ms:.1f} ms", tok.p99_ms < TARGET_P99_MS))
        checks.append(("zero errors", str(tok.errors), tok.errors == 0))
        if intro is not None and tok.rps:
            r = intro.rps / tok.rps
            checks.append((f"introspection ≥ {TARGET_INTROSPECT_RATIO:g}× the token endpoint's rate", f"{r:.2f}×", r >= TARGET_INTROSPECT_RATIO))
        lines += ["| target | measured | met |", "|---|---:|---|"]
        for what, measured, ok in checks:
            lines.append(f"| {what} | {measured} | {'yes' if ok else 'NO'} |")

    seeded = [r for r in results if r.data and not r.failed]
    if seeded:
        lines += [
            "",
            "## Growth with the data (seeded ÷ unseeded, same server and database; target: within 10 %)",
            "",
            "| endpoint | database | access token | conc. | req/s | CPU ms/req | p99 |",
            "|---|---|---|---:|---:|---:|---:|",
        ]

        def pct(a: float | None, b: float | None) -> str:
            if a is None or not b:
                return "–"
            return f"{(a / b - 1) * 100:+.1f} %"

        for r in seeded:
            b = find(r.endpoint, r.database, r.alg, r.concurrency, "")
            if b is None:
                continue
            lines.append(
                f"| {r.endpoint} | {r.database} | {r.alg} | {r.concurrency} "
                f"| {pct(r.rps, b.rps)} | {pct(r.cpu_ms, b.cpu_ms)} | {pct(r.p99_ms, b.p99_ms)} |"
            )

    failed = [r for r in results if r.failed or r.note]
    if failed or notes:
        lines += ["", "## Notes", ""]
        for n in notes:
            lines.append(f"- {n}")
        for r in failed:
            lines.append(f"- {r.label}: {'FAILED: ' if r.failed else ''}{r.note}")
    return "\n".join(lines) + "\n"


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
        "--only", choices=("all", "baseline", "authserver"), default="all",
        help="run only the baseline or only authserver",
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
    global QUIET_WAIT
    QUIET_WAIT = args.quiet_wait
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
