#!/usr/bin/env python3
"""Idle and slowloris HTTP clients against one server on 127.0.0.1, for a bounded time.

    python bench/slowclients/slowclients.py --port 8000 --idle 300 --slow 50 --seconds 15

- idle:     open a TCP connection, send nothing, keep it open.
- slowloris: send an endless GET request one byte every --interval seconds (request line first,
            then an endless run of header lines), so the request is never complete.

A connection the server closes (EOF or reset) is counted and, unless --no-reconnect, opened again
at once, as a real attacker would: the pressure stays constant for the whole run.
Stops by itself after --seconds; prints one JSON line "SLOWCLIENTS {...}" with the counts.
Only loopback addresses are accepted as targets.
"""
from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import sys
import time


def _payload(host: str) -> bytes:
    head = f"GET /healthz HTTP/1.1\r\nHost: {host}\r\nUser-Agent: slowloris\r\n".encode()
    # Enough bytes for far longer than any run at one byte a second.
    return head + b"".join(b"X-Slow-%d: a\r\n" % i for i in range(2000))


class Stats:
    def __init__(self) -> None:
        self.opened = {"idle": 0, "slow": 0}
        self.open_now = {"idle": 0, "slow": 0}
        self.closed_by_server = {"idle": 0, "slow": 0}
        self.connect_failed = {"idle": 0, "slow": 0}
        self.lifetimes: dict[str, list[float]] = {"idle": [], "slow": []}
        self.first_all_open: float | None = None


async def one_client(kind: str, host: str, port: int, stop_at: float, interval: float,
                     reconnect: bool, stats: Stats) -> None:
    payload = _payload(host)
    while time.monotonic() < stop_at:
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout=5)
        except (TimeoutError, OSError):
            stats.connect_failed[kind] += 1
            await asyncio.sleep(0.2)
            continue
        t_open = time.monotonic()
        stats.opened[kind] += 1
        stats.open_now[kind] += 1
        pos = 0
        closed = False
        try:
            while time.monotonic() < stop_at:
                if kind == "slow" and pos < len(payload):
                    writer.write(payload[pos:pos + 1])
                    pos += 1
                    await writer.drain()
                # Wait one interval for the server to say anything (an answer or EOF ends it).
                wait = min(interval, max(0.0, stop_at - time.monotonic()))
                try:
                    data = await asyncio.wait_for(reader.read(4096), timeout=wait)
                except TimeoutError:
                    continue
                if not data:
                    closed = True
                    break
                # The server answered (e.g. 408/400): it will close; keep reading until it does.
        except (ConnectionError, OSError):
            closed = True
        finally:
            stats.open_now[kind] -= 1
            try:
                writer.close()
            except Exception:
                pass
        if closed:
            stats.closed_by_server[kind] += 1
            stats.lifetimes[kind].append(time.monotonic() - t_open)
            if not reconnect:
                return
        else:
            return


def _pct(values: list[float], p: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    return round(s[min(len(s) - 1, int(p / 100 * len(s)))], 2)


async def main_async(args) -> dict:
    stats = Stats()
    stop_at = time.monotonic() + args.seconds
    tasks = []
    for _ in range(args.idle):
        tasks.append(asyncio.create_task(one_client("idle", args.host, args.port, stop_at, args.interval,
                                                    not args.no_reconnect, stats)))
    for _ in range(args.slow):
        tasks.append(asyncio.create_task(one_client("slow", args.host, args.port, stop_at, args.interval,
                                                    not args.no_reconnect, stats)))
    # Report when every client holds a connection (to stderr, for the runner's log).
    t0 = time.monotonic()
    while time.monotonic() < stop_at:
        if sum(stats.open_now.values()) >= args.idle + args.slow and stats.first_all_open is None:
            stats.first_all_open = time.monotonic() - t0
            print(f"slowclients: all {args.idle + args.slow} connections open after "
                  f"{stats.first_all_open:.2f} s", file=sys.stderr, flush=True)
        await asyncio.sleep(0.1)
    await asyncio.wait(tasks, timeout=10)
    for t in tasks:
        t.cancel()
    return {
        "idle": args.idle, "slow": args.slow, "seconds": args.seconds,
        "opened": stats.opened, "closed_by_server": stats.closed_by_server,
        "connect_failed": stats.connect_failed,
        "lifetime_p50_s": {k: _pct(v, 50) for k, v in stats.lifetimes.items()},
        "all_open_after_s": None if stats.first_all_open is None else round(stats.first_all_open, 2),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--idle", type=int, default=300)
    ap.add_argument("--slow", type=int, default=50)
    ap.add_argument("--seconds", type=float, default=15.0)
    ap.add_argument("--interval", type=float, default=1.0, help="seconds between two bytes of a slowloris client")
    ap.add_argument("--no-reconnect", action="store_true")
    args = ap.parse_args()
    if not ipaddress.ip_address(args.host).is_loopback:
        ap.error("only loopback targets (127.0.0.0/8, ::1) are allowed")
    if not 0 < args.seconds <= 120:
        ap.error("--seconds must be in (0, 120]")
    if args.idle + args.slow > 2000:
        ap.error("at most 2000 connections")
    result = asyncio.run(main_async(args))
    print("SLOWCLIENTS " + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
