"""The Markdown report: the results table, the machine and the versions measured."""
from __future__ import annotations

import datetime as _dt
import os
import platform
import subprocess
import sys
import time

from common import ROOT, TARGET_CPU_MS, TARGET_INTROSPECT_RATIO, TARGET_P99_MS, TARGET_RATIO
from measurement import RunResult, wrk_threads

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
    peer = {
        r.concurrency: r.rps
        for r in results
        if r.server == "oidc-provider" and not r.failed and r.rps > 0
    }
    lines = [
        "# authserver benchmark results",
        "",
        f"- date: {_dt.datetime.now(_dt.UTC).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- commit: {git_commit()}",
        f"- machine: {machine_description()}",
        f"- software: {versions()}",
        f"- command: `{' '.join(['bench/run.py', *sys.argv[1:]])}`",
        f"- load average (1, 5, 15 min) before the run: {load0}; after: {load_average()}",
        f"- runs: {args.duration} s each after a 1 s warm-up, "
        + ", ".join(f"wrk -t{wrk_threads(c)} -c{c}" for c in args.concurrency)
        + f", gunicorn with {args.workers} workers;"
        f" wall time {time.monotonic() - started:.0f} s"
        + (
            f"; rows marked 'seeded' were measured after adding {args.large_tokens:,} access tokens "
            f"and {args.large_clients:,} clients to the same database"
            if args.large
            else ""
        ),
        "",
        "| server | endpoint | database | access token | conc. | req/s | p50 ms | p99 ms | errors | CPU ms/req "
        "| DB CPU ms/req | × baseline | × oidc-provider |",
        "|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        dbcol = r.database + (", seeded" if r.data else "")
        if r.failed:
            lines.append(
                f"| {r.server} | {r.endpoint} | {dbcol} | {r.alg} | {r.concurrency} "
                f"| failed | | | | | | | |"
            )
            continue
        ratio = f"{r.rps / base[r.concurrency]:.2f}" if r.concurrency in base else "–"
        to_peer = f"{r.rps / peer[r.concurrency]:.2f}" if r.concurrency in peer else "–"
        lines.append(
            f"| {r.server} | {r.endpoint} | {dbcol} | {r.alg} | {r.concurrency} "
            f"| {r.rps:.0f} | {fmt(r.p50_ms)} | {fmt(r.p99_ms)} | {r.errors} "
            f"| {fmt(r.cpu_ms, 3)} | {fmt(r.db_cpu_ms, 3)} | {ratio} | {to_peer} |"
        )
    lines.append("")
    lines.append(
        "req/s counts completed requests; errors = non-200 answers + introspection answers that "
        "were not active + socket errors; CPU ms/req = user+system CPU of the server's master and "
        "workers during the run ÷ completed requests (SQLite runs inside the workers, so it is "
        "included); DB CPU ms/req = the same for the PostgreSQL backends connected to the "
        "benchmark's database; × baseline = req/s ÷ the baseline's req/s at the same concurrency; "
        "× oidc-provider = req/s ÷ node's oidc-provider's tokens/s (RS256 JWT, client credentials, a cluster of as "
        "many processes) at the same concurrency."
    )

    # The targets: JWT bearer, ES256, SQLite, concurrency 16.
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
        if 16 in peer:
            ratio = tok.rps / peer[16]
            checks.append(("≥ oidc-provider's tokens/s (RS256 JWT, same run)", f"{ratio:.2f}×", ratio >= 1.0))
        if 16 in base:
            ratio = tok.rps / base[16]
            checks.append((f"≥ {TARGET_RATIO:g}× the baseline's tokens/s", f"{ratio:.2f}×", ratio >= TARGET_RATIO))
        if tok.cpu_ms is not None:
            checks.append(
                (f"≤ {TARGET_CPU_MS} ms server CPU per token", f"{tok.cpu_ms:.3f} ms", tok.cpu_ms <= TARGET_CPU_MS)
            )
        checks.append((f"p99 < {TARGET_P99_MS:g} ms", f"{tok.p99_ms:.1f} ms", tok.p99_ms < TARGET_P99_MS))
        checks.append(("zero errors", str(tok.errors), tok.errors == 0))
        if intro is not None and tok.rps:
            r = intro.rps / tok.rps
            checks.append(
                (
                    f"introspection ≥ {TARGET_INTROSPECT_RATIO:g}× the token endpoint's rate",
                    f"{r:.2f}×",
                    r >= TARGET_INTROSPECT_RATIO,
                )
            )
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
