"""The management API's docs page tells how to get a token; its commands, run as printed (with the
organization and admin filled in), get one that the API accepts."""
from __future__ import annotations

import html
import os
import re
import subprocess
import sys
from pathlib import Path

import requests

from ..servers import free_port, running_server, server_env, setup_cli


def test_the_docs_page_commands_get_a_working_management_token(tmp_path):
    port = free_port()
    env = server_env(tmp_path / "instance", f"http://127.0.0.1:{port}")
    env["PATH"] = f"{Path(sys.executable).parent}:{env['PATH']}"
    setup_cli(env, "init")
    org = setup_cli(env, "org", "create", "Acme")["org_id"]
    admin = setup_cli(env, "account", "create", org, "Ada", "--kind", "user", "--email", "ada@acme.test", "--admin")[
        "account_id"
    ]
    with running_server(env, port) as base:
        page = requests.get(base + "/api/v1/docs", timeout=10).text
        section = page.split('id="getting-a-token"', 1)[1]
        script = html.unescape(re.search(r"<pre><code>(.*?)</code></pre>", section, re.S).group(1))
        assert f"resource={base}/api/v1" in script
        script = re.sub(r"^ORG=org_\.\.\..*$", f"ORG={org}", script, flags=re.M)
        script = re.sub(r"^ADMIN=acc_\.\.\..*$", f"ADMIN={admin}", script, flags=re.M)
        result = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=tmp_path, env=env,
                                capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr[-2000:]
    listing = result.stdout.strip().splitlines()[-1]
    assert '"items"' in listing and "Ops automation" in listing
    assert os.path.exists(tmp_path / "ops.key")
