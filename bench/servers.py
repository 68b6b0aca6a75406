"""The servers under test: gunicorn processes started and always stopped, and throwaway databases."""
from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from common import BIN_DIR, CLK_TCK, BenchError, log
from measurement import _proc_stat


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

    def __enter__(self) -> Database:
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
