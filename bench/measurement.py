"""Measuring a run: CPU time of process trees from /proc, waiting for a quiet machine, and wrk."""
from __future__ import annotations

import json
import os
import re
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from common import CLK_TCK, BenchError, log

if TYPE_CHECKING:
    from servers import Database, Server
QUIET_WAIT = 0.0  # set from --quiet-wait


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
    db: Database | None = None,
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
