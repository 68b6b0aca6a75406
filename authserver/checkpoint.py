"""SQLite's WAL checkpoints, off the request path of a serving worker.

In WAL mode a commit appends pages to the log; a checkpoint copies them back into the database file.
By default SQLite checkpoints inside the commit that finds the log over 1,000 pages: with about nine
pages per token, one token request in a hundred then copies the whole log (and syncs the file) while
holding the workers' write lock, 10–20 ms in which that request, every request queued behind it on its
worker's kept-alive connections and every other worker's writer wait (bench/README.md, "SQLite's
checkpoints off the request path").

A sync worker of `authserver serve` therefore checkpoints from a thread of its own, on a connection of
its own, every POLL_SECONDS while the log is being written (its modification time moved):

- a PASSIVE checkpoint copies what the log holds, without the write lock: writers go on meanwhile and
  never wait for it;
- once the log is past RESTART_PAGES, the thread takes the write lock and checkpoints once more, which
  copies only what was committed during the first copy. The log is then wholly in the database file,
  and the next commit starts it over from its beginning. Without that step, under steady writes a
  checkpoint never catches up with the writers, and the log would only grow.

The request connections of such a worker checkpoint only past COMMIT_CHECKPOINT_PAGES — a bound only a
stopped thread lets the log reach. Commands, tests and other processes keep SQLite's default."""
from __future__ import annotations

import logging
import os
import sqlite3
import threading

from sqlalchemy.engine import make_url

from .store import sqlite_write_lock

POLL_SECONDS = 0.1  # at a thousand tokens a second, about 900 pages (3.6 MB) to copy each time
RESTART_PAGES = 4_096  # about 16 MB of log: past it, the log starts over (a few milliseconds under the write lock)
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


def checkpoint(conn: sqlite3.Connection, path: str) -> tuple[int, int]:
    """One round: copy the log into the file, and past RESTART_PAGES let it start over.
    (pages in the log, pages copied) as the round's last checkpoint left them."""
    _, log, copied = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    if log >= RESTART_PAGES:
        # No writer that takes the lock commits during this copy, so it copies the log to its end
        # (unless a reader still needs its older pages: then the next round tries again).
        with sqlite_write_lock(path):
            _, log, copied = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    return log, copied


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
            checkpoint(conn, path)
            failing = False
        except (sqlite3.Error, OSError) as exc:  # the file is gone or unreadable: the commits' checkpoints remain
            if not failing:
                _log.warning("WAL checkpoint failed; commits will checkpoint past %s pages: %s",
                             COMMIT_CHECKPOINT_PAGES, exc)
                failing = True
            if conn is not None:
                conn.close()
                conn = None
    if conn is not None:
        conn.close()
