"""The built wheel, installed into a fresh virtualenv outside the checkout, initialises, serves, makes
a demo client and issues a token: everything it needs (defaults, migrations, templates) is inside."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import requests

from ..servers import ROOT, free_port, running_server


def test_wheel_installs_and_runs_outside_the_checkout(tmp_path):
    wheels = tmp_path / "wheels"
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels), str(ROOT)],
                           capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stderr[-2000:]
    wheel = next(wheels.glob("authserver-*.whl"))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    install = subprocess.run([str(venv / "bin" / "pip"), "install", "-q", str(wheel)], capture_output=True, text=True,
                             timeout=900, cwd=tmp_path)
    assert install.returncode == 0, install.stderr[-2000:]
    authserver = str(venv / "bin" / "authserver")
    workdir = tmp_path / "elsewhere"
    workdir.mkdir()
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AUTHSERVER_", "PYTHONPATH", "VIRTUAL_ENV"))}
    env.update(
        {"AUTHSERVER_PURGE_INTERVAL": "0", "AUTHSERVER_DRAIN_SECONDS": "0", "PATH": f"{venv / 'bin'}:{env['PATH']}"}
    )
    init = subprocess.run(
        [authserver, "init", "--json"], cwd=workdir, env=env, capture_output=True, text=True, timeout=120
    )
    assert init.returncode == 0, init.stderr[-2000:]
    assert (workdir / "instance" / "authserver.db").exists()

    with running_server(env, port, cwd=workdir, log_path=tmp_path / "server.log", executable=authserver) as base:
        meta = requests.get(base + "/.well-known/oauth-authorization-server", timeout=10).json()
        assert meta["issuer"] == f"http://127.0.0.1:{port}"
        assert requests.get(base + "/console/sign-in", timeout=10).status_code == 200  # templates are there
        demo = subprocess.run([authserver, "demo", "--json"], cwd=workdir, env=env, capture_output=True, text=True,
                              timeout=120)
        assert demo.returncode == 0, demo.stderr[-2000:]
        curl = subprocess.run(json.loads(demo.stdout)["curl"], shell=True, capture_output=True, text=True, timeout=60)
        body = json.loads(curl.stdout)
        assert body["token_type"] == "Bearer" and body["access_token"].count(".") == 2
    assert str(ROOT) not in (venv / "bin" / "authserver").read_text()  # a real install, not a link to the checkout
