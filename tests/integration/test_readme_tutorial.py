"""The README tutorial, run verbatim against a live server started the way `make run` starts it."""
from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess

from ..servers import ROOT, running_server

TUTORIAL = re.compile(r"<!-- tutorial:start -->\s*```sh\n(.*?)```\s*<!-- tutorial:end -->", re.S)


# Inside a network namespace of its own (root only), port 8000 is free whatever the machine runs there.
IN_NAMESPACE = """
ip link set lo up
.venv/bin/authserver serve --host 127.0.0.1 --port 8000 > server.log 2>&1 &
server=$!
for _ in $(seq 1 600); do curl -sf http://127.0.0.1:8000/readyz > /dev/null && break; sleep 0.1; done
status=0
bash -euo pipefail tutorial.sh || status=$?
kill -TERM "$server"; wait "$server" || true
exit "$status"
"""


def _own_network_namespace() -> bool:
    if os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("ip"):
        return False
    return subprocess.run(["unshare", "--net", "true"], capture_output=True, timeout=30).returncode == 0


def test_readme_tutorial_works_verbatim(tmp_path):
    script = TUTORIAL.search((ROOT / "README.md").read_text()).group(1)
    (tmp_path / ".venv").symlink_to(ROOT / ".venv")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTHSERVER_")}
    env["AUTHSERVER_PURGE_INTERVAL"] = "0"
    env["AUTHSERVER_DRAIN_SECONDS"] = "0"  # the test stops the server at once
    # `make run` is `authserver serve --host 127.0.0.1 --port 8000` in the working directory.
    if _own_network_namespace():
        (tmp_path / "tutorial.sh").write_text(script)
        result = subprocess.run(["unshare", "--net", "bash", "-c", IN_NAMESPACE], cwd=tmp_path, env=env,
                                capture_output=True, text=True, timeout=180)
    else:
        with socket.socket() as probe:
            assert probe.connect_ex(("127.0.0.1", 8000)) != 0, "port 8000 is taken: the tutorial needs it"
        with running_server(env, 8000, cwd=tmp_path, log_path=tmp_path / "server.log"):
            result = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=tmp_path, env=env,
                                    capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    introspection, refusal = json.loads(lines[0]), json.loads(lines[-1])
    assert introspection["active"] is True and introspection["scope"] == "invoices:read"
    assert introspection["aud"] == "https://invoices.acme.example/api" and introspection["org_id"].startswith("org_")
    assert refusal["error"] == "invalid_client"
    # What was stored: the secret is gone, the key is registered, the token record exists.
    listing = subprocess.run([str(tmp_path / ".venv/bin/authserver"), "client", "list", _org(tmp_path, env), "--json"],
                             cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    client = next(c for c in json.loads(listing.stdout) if c["name"] == "Billing backend")
    assert client["grants"] == [{"api_id": client["grants"][0]["api_id"], "identifier": "https://invoices.acme.example/api",
                                 "scope": "invoices:read invoices:write", "default": True}]
    secrets = subprocess.run([str(tmp_path / ".venv/bin/authserver"), "secret", "list", client["client_id"], "--json"],
                             cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert json.loads(secrets.stdout) == []
    assert (tmp_path / "instance" / "authserver.db").exists()


def _org(tmp_path, env) -> str:
    import sqlite3

    with sqlite3.connect(tmp_path / "instance" / "authserver.db") as conn:
        return conn.execute("SELECT org_id FROM organizations").fetchone()[0]
