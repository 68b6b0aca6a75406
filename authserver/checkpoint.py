"""SQLite's WAL checkpoints, off the request path of a serving worker.

In WAL mode a commit appends pages to the log; a checkpoint copies them back into the database file.
By default SQLite checkpoints inside the commit that finds the log over 1,000 pages: with about nine
pages per token, one token request in a hundred then copies the whole log while holding the write
lock, 10–20 ms in which that request and every other worker's writer wait (bench/README.md, "SQLite's
checkpoints off the request path").

A sync worker of `authserver serve` therefore checkpoints from a thread of its own, on a connection of
its own, every POLL_SECONDS while the log is being written (its modification time moved), and its
request connections checkpoint only past COMMIT_CHECKPOINT_PAGES — a bound only a stopped thread lets
the log reach. The thread's checkpoints are PASSIVE: they never wait for readers or writers, and the
writers never wait for them. Commands, tests and other processes keep SQLite's default."""
from __future__ import annotations

import logging
import os
import sqlite3
import threading

from sqlalchemy.engine import make_url

POLL_SECONDS = 0.1  # at a thousand tokens a second, about 900 pages (3.6 MB) to copy each time
COMMIT_CHECKPOINT_PAGES = 20_000  # about 80 MB: the log's bound should the thread stop

_log = logging.getLogger(__name__)

# The pages past which a commit of this process checkpoints (SQLite's own default until a worker starts its thread).
commit_checkpoint_pages = 1000


def database_file(database_url: str) -> str | None:
    """The SQLite file of `database_url`, or None for other databases and in-memory SQLite."""
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    return url.database


def start(path: str, stop: threading.Event | None = None) -> threading.Thread:
    """In a serving worker, before its application opens a connection: checkpoint `path` from a thread
    until `stop` is set (a daemon thread: it ends with the worker)."""
    global commit_checkpoint_pages
    commit_checkpoint_pages = COMMIT_CHECKPOINT_PAGES
    thread = threading.Thread(target=_run, args=(path, stop or threading.Event()), name="wal-checkpoint", daemon=True)
    thread.start()
    return thread


def _run(path: str, stop: threading.Event) -> None:
    wal = path + "-wal"
    conn: sqlite3.Connection | None = None
    failing = False
    copied_up_to: int | None = None  # the log's modification time when last checkpointed
    while not stop.wait(POLL_SECONDS):
        try:
            written = os.stat(wal).st_mtime_ns
        except FileNotFoundError:  # no log yet (or the last connection closed and removed it)
            continue
        if written == copied_up_to:  # nothing committed since: idle
            continue
        copied_up_to = written  # taken before the copy: a commit during it is copied next time
        try:
            if conn is None:
                conn = sqlite3.connect(path, timeout=0, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            failing = False
        except sqlite3.Error as exc:  # the file is gone or unreadable: the commits' own checkpoints remain
            if not failing:
                _log.warning("WAL checkpoint failed; commits will checkpoint past %s pages: %s",
                             COMMIT_CHECKPOINT_PAGES, exc)
                failing = True
            if conn is not None:
                conn.close()
                conn = None
    if conn is not None:
        conn.close()
