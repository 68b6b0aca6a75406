"""docs/federation.md's walkthrough, run exactly as written against a live `authserver serve`, with a
local HTTPS issuer (tests/jwks_server.py: OIDC discovery and a JWK Set) standing in for the cluster
and a service-account token it signed in the token file. Only the settings block is filled in."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from tests.jwks_server import JwksServer

from ..servers import ROOT, free_port, running_server, server_env, setup_cli
from .federation_support import WORKLOAD, LocalIssuer

DOC = ROOT / "docs" / "federation.md"
SETTINGS = re.compile(r"<!-- federation:settings -->\s*```sh\n(.*?)```", re.S)
WALKTHROUGH = re.compile(r"<!-- federation:start -->\s*```sh\n(.*?)```\s*<!-- federation:end -->", re.S)


def setting(block: str, name: str) -> str:
    return re.search(rf"^{name}=(\S+)", block, re.M).group(1)


def test_the_federation_walkthrough_runs_as_written(tmp_path):
    text = DOC.read_text()
    settings, walkthrough = SETTINGS.search(text).group(1), WALKTHROUGH.search(text).group(1)
    audience = setting(settings, "AUDIENCE")
    with JwksServer(tmp_path) as server:
        issuer = LocalIssuer(server)
        token_file = tmp_path / "token"
        token_file.write_text(issuer.assertion(sub=WORKLOAD, aud=[audience], lifetime=600))
        port = free_port()
        env = server_env(tmp_path / "instance", f"http://127.0.0.1:{port}",
                         AUTHSERVER_KEY_FETCH_ALLOW_INSECURE="1", AUTHSERVER_KEY_FETCH_CA_FILE=server.ca_file)
        env["PATH"] = f"{Path(sys.executable).parent}:{env['PATH']}"
        setup_cli(env, "init")
        filled = "\n".join([f"AUTHSERVER=http://127.0.0.1:{port}", f"ISSUER_URL={issuer.url}",
                            f"AUDIENCE={audience}", f"SA_TOKEN_FILE={token_file}"])
        script = filled + "\n" + walkthrough.replace("A=.venv/bin/authserver",
                                                     f"A={Path(sys.executable).parent / 'authserver'}", 1)
        with running_server(env, port):
            result = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=tmp_path, env=env,
                                    capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.strip().splitlines()
    assert any(issuer.url in line for line in lines) and any(WORKLOAD in line for line in lines)
    claims = json.loads(lines[-1])
    assert claims["aud"] == "https://payments.acme.example/api" and claims["scope"] == "payments:write"
    assert claims["sub"].startswith("acc_") and claims["sub"] != WORKLOAD
    assert token_file.read_text() not in result.stdout + result.stderr
