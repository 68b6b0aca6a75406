"""The built wheel, installed into a fresh virtualenv outside the checkout, initialises, serves, makes
a demo client and issues a token: everything it needs (defaults, migrations, templates) is inside."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import requests

from ..servers import ROOT, free_port, running_server

PURELIB = "import sysconfig; print(sysconfig.get_paths()['purelib'])"


def test_wheel_installs_and_runs_outside_the_checkout(tmp_path):
    wheels = tmp_path / "wheels"
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels), str(ROOT)],
                           capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stderr[-2000:]
    wheel = next(wheels.glob("authserver-*.whl"))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    # The dependencies come from this test environment's site-packages (a path in a .pth file: its own .pth
    # files, the checkout's editable install among them, are not read), so the install needs no index and
    # no download (18 s of the test's 36 s). pip check then proves the wheel's declared requirements are
    # all met there, and the import below that authserver itself comes from the wheel.
    site_packages = subprocess.run([str(venv / "bin" / "python"), "-c", PURELIB], capture_output=True, text=True,
                                   check=True, timeout=60).stdout.strip()
    (Path(site_packages) / "_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    pip = [sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python")]
    install = subprocess.run([*pip, "install", "-q", "--no-deps", "--no-index", str(wheel)], capture_output=True,
                             text=True, timeout=900, cwd=tmp_path)
    assert install.returncode == 0, install.stderr[-2000:]
    check = subprocess.run([*pip, "check"], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert check.returncode == 0, check.stdout[-2000:] + check.stderr[-2000:]
    where = subprocess.run([str(venv / "bin" / "python"), "-c", "import authserver; print(authserver.__file__)"],
                           capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert where.stdout.strip().startswith(site_packages + "/authserver/"), (where.stdout, where.stderr[-2000:])
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
