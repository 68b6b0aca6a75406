"""SQLite's WAL is checkpointed by a thread of each sync worker, not inside token requests' commits
(authserver/checkpoint.py). The database file alone — what a checkpoint writes, the log left aside —
shows which of the two did it."""
from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
import uuid

import jwt
import requests

from authserver import checkpoint, store

from ..conftest import JWT_BEARER
from ..servers import free_port, provision_client, running_server, server_env, setup_cli


def rows_in_the_file_alone(path, table: str) -> int:
    """Rows of `table` in the database file without its log: what checkpoints have copied into it
    (`immutable`: SQLite reads the file as it is, ignoring the log and the locks)."""
    try:
        with contextlib.closing(sqlite3.connect(f"file:{path}?immutable=1", uri=True)) as conn:
            if not conn.execute("SELECT 1 FROM sqlite_master WHERE name = ?", (table,)).fetchall():
                return 0  # not even the table's creation has been copied yet
            return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
    except sqlite3.DatabaseError:  # read in the middle of a checkpoint's writes: look again
        return -1


def wait_for(condition, seconds: float = 20) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def test_the_thread_copies_the_log_into_the_file_that_commits_leave_alone(tmp_path):
    path = tmp_path / "db.sqlite"
    writer = sqlite3.connect(path, isolation_level=None)
    writer.execute("PRAGMA journal_mode=WAL")
    writer.execute(f"PRAGMA wal_autocheckpoint={checkpoint.COMMIT_CHECKPOINT_PAGES}")
    writer.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, payload BLOB)")
    for _ in range(600):  # about 1,200 pages of log, past SQLite's default of 1,000 at which commits checkpoint
        writer.execute("INSERT INTO t (payload) VALUES (?)", (bytes(4000),))
    assert rows_in_the_file_alone(path, "t") == 0  # no commit checkpointed
    stop = threading.Event()
    thread = checkpoint.start(str(path), stop)
    try:
        assert wait_for(lambda: rows_in_the_file_alone(path, "t") == 600)
        writer.execute("INSERT INTO t (payload) VALUES (?)", (b"small",))  # a writer is never kept waiting
    finally:
        stop.set()
        thread.join(timeout=5)
        writer.close()
    assert not thread.is_alive()


def test_under_steady_writes_the_log_starts_over_instead_of_growing(tmp_path, monkeypatch):
    """Writers that commit without pause under the workers' write lock, as token requests do: a copy
    made without the lock never catches up with them, so the log must be finished under it and start
    over. The log file then stays near RESTART_PAGES instead of growing by every commit."""
    monkeypatch.setattr(checkpoint, "RESTART_PAGES", 300)
    path = tmp_path / "db.sqlite"
    writer = sqlite3.connect(path, isolation_level=None)
    writer.execute("PRAGMA journal_mode=WAL")
    writer.execute("PRAGMA synchronous=NORMAL")
    writer.execute(f"PRAGMA wal_autocheckpoint={checkpoint.COMMIT_CHECKPOINT_PAGES}")
    writer.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, payload BLOB)")
    stop = threading.Event()
    thread = checkpoint.start(str(path), stop)
    wal = tmp_path / "db.sqlite-wal"
    written = 0
    try:
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            with store.sqlite_write_lock(str(path)):
                writer.execute("INSERT INTO t (payload) VALUES (?)", (bytes(3000),))
            written += 1
            time.sleep(0.0001)  # a request's work outside the lock
    finally:
        stop.set()
        thread.join(timeout=5)
    pages = wal.stat().st_size // 4096
    writer.close()
    assert written > 3000  # steady writes: several thousand pages went through the log
    assert pages < 2000, f"{written} commits left a log of {pages} pages"
    assert not thread.is_alive()


def test_a_serving_worker_copies_tokens_into_the_database_file_within_moments(tmp_path):
    port = free_port()
    issuer = f"http://127.0.0.1:{port}"
    env = server_env(tmp_path / "instance", issuer)
    setup_cli(env, "init")
    made = provision_client(env, tmp_path)
    db_file = tmp_path / "instance" / "authserver.db"
    delivered = []
    with running_server(env, port, workers=1) as base, requests.Session() as http:
        # Fewer tokens than SQLite's own commit-time checkpoint (1,000 pages, about a hundred tokens) needs.
        for _ in range(60):
            now = int(time.time())
            assertion = jwt.encode({"iss": made["client"], "sub": made["account"], "aud": issuer + "/oauth/token",
                                    "iat": now, "exp": now + 120, "jti": uuid.uuid4().hex},
                                   made["key"], algorithm="ES256", headers={"kid": made["kid"]})
            answer = http.post(base + "/oauth/token", data={"grant_type": JWT_BEARER, "assertion": assertion},
                               auth=(made["client"], made["secret"]), timeout=10)
            assert answer.status_code == 200, answer.text
            delivered.append(answer.json()["access_token"])
        # While the server runs (its connections keep the log open), the file alone holds every token.
        assert wait_for(lambda: rows_in_the_file_alone(db_file, "access_tokens") >= len(delivered))
