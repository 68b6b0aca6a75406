"""The background purger lives and dies with its server, and one purger per deployment works."""
from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import psycopg
import pytest

from ..conftest import PG_URL
from ..servers import AUTHSERVER, free_port, master_pid, running_server, server_env


def _children(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    state = Path(f"/proc/{pid}/stat").read_text().split()[2] if Path(f"/proc/{pid}/stat").exists() else "X"
    return state != "Z"


def test_no_process_outlives_a_killed_master(tmp_path):
    port = free_port()
    env = server_env(tmp_path / "instance", f"http://127.0.0.1:{port}", AUTHSERVER_PURGE_INTERVAL="1")
    with running_server(env, port, workers=2):
        master = master_pid(port)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            children = _children(master)
            if any("purge" in _cmdline(c) for c in children) and len(children) >= 3:
                break
            time.sleep(0.2)
        children = _children(master)
        assert any("purge" in _cmdline(c) for c in children), [_cmdline(c) for c in children]
        os.kill(master, signal.SIGKILL)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and any(_alive(c) for c in children):
            time.sleep(0.2)
        survivors = [(c, _cmdline(c)) for c in children if _alive(c)]
        assert survivors == [], survivors


@pytest.mark.skipif(not PG_URL, reason="needs AUTHSERVER_TEST_DATABASE_URL (CI sets it)")
def test_one_purger_per_deployment_and_another_takes_over(tmp_path, pg_template_ready):
    """Two hosts' purgers on one PostgreSQL database: one holds the purge lock; kill it, the other takes it."""
    env = server_env(pg_template_ready, "http://localhost", AUTHSERVER_DATABASE_URL=PG_URL)
    dsn = PG_URL.replace("postgresql+psycopg://", "postgresql://")

    def holders() -> list[str]:
        """The application_name (PGAPPNAME, set per purger) of each session holding an advisory lock."""
        with psycopg.connect(dsn, autocommit=True) as conn:
            rows = conn.execute("SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
                                "WHERE l.locktype = 'advisory' AND l.granted AND a.datname = current_database()"
                                ).fetchall()
        return [r[0] for r in rows]

    def wait_for(condition, seconds: float = 20) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not condition():
            time.sleep(0.2)

    purgers = {f"purger-{i}": subprocess.Popen(
        [AUTHSERVER, "purge", "--every", "1", "--parent", str(os.getpid())], env={**env, "PGAPPNAME": f"purger-{i}"},
        stdout=subprocess.DEVNULL, stderr=open(tmp_path / f"purger-{i}.log", "wb"), start_new_session=True)
        for i in range(2)}
    try:
        wait_for(lambda: len(holders()) == 1)
        leader = holders()
        assert len(leader) == 1 and leader[0] in purgers, leader
        time.sleep(2.5)  # both ran further rounds: still one holder, the same one
        assert holders() == leader
        purgers[leader[0]].send_signal(signal.SIGKILL)  # the leader dies the hard way
        purgers[leader[0]].wait(timeout=10)
        other = next(name for name in purgers if name != leader[0])
        wait_for(lambda: holders() == [other])
        assert holders() == [other]
    finally:
        for proc in purgers.values():
            if proc.poll() is None:
                proc.terminate()
                proc.wait(timeout=10)
