"""Real server processes for tests that cross process and host boundaries."""
from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

from .log_leaks import CHECKER as LOG_LEAKS

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
AUTHSERVER = str(BIN / "authserver")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def cli(env: dict, *args: str, stdin: str | None = None) -> dict | list:
    """Run `authserver ARGS --json` and return its JSON; fail the test with stderr otherwise."""
    proc = subprocess.run(
        [AUTHSERVER, *args, "--json"], env=env, capture_output=True, text=True, input=stdin, timeout=60
    )
    LOG_LEAKS.check_output(proc.stderr, f"authserver {args[0]}")
    assert proc.returncode == 0, f"authserver {args[0]} failed: {proc.stderr[-2000:]}"
    return json.loads(proc.stdout)


def setup_cli(env: dict, *args: str, stdin: str | None = None) -> dict | list:
    """`authserver ARGS --json` for setting up a live server's instance, run in this process by Click's
    test runner: the same command, settings (from `env`) and database writes as `cli()`, without a
    Python start-up and app import per call (1.5-3 s each on two busy cores). Tests of the commands
    themselves run them as processes with `cli()` (test_cli*.py, the runbooks and docs walk-throughs)."""
    from click.testing import CliRunner

    from authserver.cli import main

    # The command sees exactly env's AUTHSERVER_* settings, as the process `cli()` starts would.
    overlay: dict[str, str | None] = {k: None for k in os.environ if k.startswith("AUTHSERVER_") and k not in env}
    overlay.update(env)
    result = CliRunner().invoke(main, [*args, "--json"], env=overlay, input=stdin, catch_exceptions=False)
    LOG_LEAKS.check_output(result.stderr, f"authserver {args[0]}")
    assert result.exit_code == 0, f"authserver {args[0]} failed: {result.stderr[-2000:]}"
    return json.loads(result.stdout)


def server_env(instance: Path, issuer: str, **extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTHSERVER_")}
    env.update(
        {
            "AUTHSERVER_INSTANCE_PATH": str(instance),
            "AUTHSERVER_ISSUER": issuer,
            "AUTHSERVER_LOG_LEVEL": "WARNING",
            "AUTHSERVER_PURGE_INTERVAL": "0",
            "AUTHSERVER_DRAIN_SECONDS": "0",
        }
    )
    env.update(extra)
    return env


def provision_client(env: dict, key_dir: Path) -> dict:
    """Through the CLI (in this process, setup_cli): an organization with a service account, a client
    granted the Orders API (scope read), a secret and an ES256 key. Returns their ids, the secret
    and the private key."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    org = setup_cli(env, "org", "create", "Acme")["org_id"]
    account = setup_cli(env, "account", "create", org, "worker", "--kind", "service")["account_id"]
    client = setup_cli(env, "client", "create", org, "Backend")["client_id"]
    api = setup_cli(env, "api", "create", "--org", org, "Orders", "https://orders.acme.test",
                    "--scope", "read")["api_id"]
    setup_cli(env, "client", "grant", client, "https://orders.acme.test", "--scope", "read")
    secret = setup_cli(env, "secret", "add", client)["client_secret"]
    key = ec.generate_private_key(ec.SECP256R1())
    public = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    (key_dir / "key.pub.pem").write_bytes(public)
    kid = setup_cli(env, "key", "add", client, str(key_dir / "key.pub.pem"))["kid"]
    return {"org": org, "account": account, "client": client, "api": api, "secret": secret, "key": key, "kid": kid}


def master_pid(port: int) -> int:
    """The pid of the gunicorn master serving 127.0.0.1:port: `authserver serve --port PORT` (its workers are
    forks of it, with its command line), or `python -m gunicorn -b 127.0.0.1:PORT` under gevent workers."""
    found = subprocess.run(["pgrep", "-f", f"(--port {port}|127\\.0\\.0\\.1:{port})( |$)"], capture_output=True,
                           text=True).stdout.split()
    pids = set(map(int, found))
    masters = [pid for pid in pids if _parent(pid) not in pids]
    assert len(masters) == 1, f"no single master for port {port}: {sorted(pids)}"
    return masters[0]


def _fd_targets(pid: int) -> list[str]:
    """What each file descriptor of process `pid` refers to: a path, or `socket:[INODE]`, `pipe:[...]`."""
    targets = []
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            targets.append(os.readlink(fd))
    return targets


def connected_ports(pid: int) -> list[int]:
    """The remote ports of the established TCP connections process `pid` holds (from /proc)."""
    inodes = {t[len("socket:["):-1] for t in _fd_targets(pid) if t.startswith("socket:[")}
    ports = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "01" and fields[9] in inodes:  # 01: ESTABLISHED
                ports.append(int(fields[2].rsplit(":", 1)[1], 16))
    return ports


def peers_of_port(port: int) -> set[int]:
    """The remote ports of the established TCP connections to local port `port` (from /proc)."""
    peers = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "01" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                peers.add(int(fields[2].rsplit(":", 1)[1], 16))
    return peers


def open_files(pid: int) -> list[str]:
    """The paths of the files process `pid` holds open."""
    return [target for target in _fd_targets(pid) if target.startswith("/")]


def _parent(pid: int) -> int:
    with contextlib.suppress(OSError):
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    return 0


@contextlib.contextmanager
def running_server(env: dict, port: int, workers: int = 2, log_path: Path | None = None, cwd: Path | None = None,
                   executable: str = AUTHSERVER):
    """`authserver serve` on 127.0.0.1:port until the block ends; waits (bounded) for /readyz."""
    if log_path is None:  # kept for the log-leak check even when the test reads none of it
        log_path = Path(tempfile.mkdtemp(prefix="authserver-serve-")) / "server.log"
    log = open(log_path, "wb")
    proc = subprocess.Popen(
        [executable, "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)],
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=cwd,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"server on port {port} exited with {proc.returncode}")
            try:
                if requests.get(base + "/readyz", timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"server on port {port} did not become ready")
            time.sleep(0.2)
        yield base
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)
        log.close()
        LOG_LEAKS.check_file(log_path, f"server on port {port}")
