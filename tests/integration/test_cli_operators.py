"""Operator commands: organizations listed, accounts enabled again (without reviving old tokens), the
last admin kept, passwords reset, clients updated, and the issuer that follows `serve --port`."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import requests
from cryptography.hazmat.primitives.asymmetric import ec

from authserver.models import AuditEvent

from ..conftest import private_pem, public_pem
from ..servers import AUTHSERVER, free_port, running_server
from .test_cli import _rows


def test_org_list(cli):
    first = cli.json("org", "create", "Acme")["org_id"]
    second = cli.json("org", "create", "Globex")["org_id"]
    listed = cli.json("org", "list")
    names = {o["org_id"]: o["name"] for o in listed}
    assert names[first] == "Acme" and names[second] == "Globex"


def test_last_admin_is_kept_and_accounts_come_back_without_their_old_tokens(cli):
    org_id = cli.json("org", "create", "Acme")["org_id"]
    admin = cli.json("account", "create", org_id, "Ann", "--kind", "user", "--email", "ann@acme.test", "--admin",
                     "--password-stdin", input="correct horse battery staple\n")["account_id"]
    cli.fails("account", "disable", admin, needle="last active administrator")
    other = cli.json("account", "create", org_id, "Bob", "--kind", "user", "--email", "bob@acme.test", "--admin",
                     "--password-stdin", input="correct horse battery staple\n")["account_id"]
    assert cli.json("account", "disable", admin)["disabled"] is True
    cli.fails("account", "disable", other, needle="last active administrator")
    listed = {a["account_id"]: a["disabled"] for a in cli.json("account", "list", org_id)}
    assert listed == {admin: True, other: False}
    assert cli.json("account", "enable", admin)["disabled"] is False
    actions = [e.action for e in _rows(cli.app(), AuditEvent, AuditEvent.object_id == admin)]
    assert actions[-2:] == ["account.disabled", "account.enabled"]


def test_enabled_account_gets_tokens_but_its_old_ones_stay_dead(app, http, tenant):
    from authserver.services.accounts import disable_account, enable_account

    from ..conftest import get_token

    old = get_token(http, tenant)["access_token"]
    disable_account(tenant.account_id)
    enable_account(tenant.account_id)
    assert http.post("/oauth/introspect", data={"token": old}, headers=tenant.auth()).get_json() == {"active": False}
    fresh = get_token(http, tenant)["access_token"]
    assert http.post("/oauth/introspect", data={"token": fresh}, headers=tenant.auth()).get_json()["active"] is True


def test_password_reset(cli):
    from authserver.extensions import db
    from authserver.services.accounts import authenticate_user

    org_id = cli.json("org", "create", "Acme")["org_id"]
    user = cli.json("account", "create", org_id, "Ann", "--kind", "user", "--email", "ann@acme.test", "--admin",
                    "--password-stdin", input="correct horse battery staple\n")["account_id"]
    cli.fails("account", "set-password", user, "--password-stdin", input="short\n", needle="12")
    assert cli.json("account", "set-password", user, "--password-stdin", input="a new long passphrase\n") == {
        "account_id": user, "password_set": True}
    service = cli.json("account", "create", org_id, "worker", "--kind", "service")["account_id"]
    cli.fails("account", "set-password", service, "--password-stdin", input="a new long passphrase\n",
              needle="service account")
    app = cli.app()
    with app.app_context():
        assert authenticate_user("ann@acme.test", "a new long passphrase").account_id == user
        assert authenticate_user("ann@acme.test", "correct horse battery staple") is None
        db.session.remove()
        db.engine.dispose()


def test_client_update(cli, tmp_path):
    from PIL import Image

    org_id = cli.json("org", "create", "Acme")["org_id"]
    client_id = cli.json("client", "create", org_id, "Old")["client_id"]
    icon = tmp_path / "icon.png"
    Image.new("RGB", (16, 16), (1, 2, 3)).save(icon)
    updated = cli.json("client", "update", client_id, "--name", "New", "--description", "Nightly", "--icon", icon)
    assert (updated["name"], updated["description"], updated["has_icon"]) == ("New", "Nightly", True)
    assert cli.json("client", "update", client_id, "--no-icon")["has_icon"] is False
    cli.fails("client", "update", client_id, "--name", "x" * 101, needle="100")
    assert cli.json("client", "show", client_id)["name"] == "New"


def test_assertion_with_a_public_key_is_a_clear_error(tmp_path):
    key = ec.generate_private_key(ec.SECP256R1())
    (tmp_path / "pub.pem").write_bytes(public_pem(key))
    (tmp_path / "key.pem").write_bytes(private_pem(key))
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTHSERVER_")}
    env["AUTHSERVER_INSTANCE_PATH"] = str(tmp_path / "instance")
    refused = subprocess.run([AUTHSERVER, "assertion", "--key", str(tmp_path / "pub.pem"), "--client-id", "c",
                              "--subject", "s"], env=env, capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2 and refused.stdout == ""
    assert (
        refused.stderr.startswith("error: ") and "private key" in refused.stderr and "Traceback" not in refused.stderr
    )
    signed = subprocess.run([AUTHSERVER, "assertion", "--key", str(tmp_path / "key.pem"), "--client-id", "c",
                             "--subject", "s"], env=env, capture_output=True, text=True, timeout=60)
    assert signed.returncode == 0 and signed.stdout.count(".") == 2


def test_a_plain_http_issuer_off_loopback_is_announced_at_start_and_refused_at_the_token_endpoint(tmp_path):
    """`serve --host 0.0.0.0` without AUTHSERVER_ISSUER: the derived issuer is plain http on a non-loopback
    address, where RFC 6749 §3.2 forbids secrets and tokens. The server says so when it starts, and the
    token endpoint answers insecure_transport rather than issuing over plain http."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTHSERVER_")}
    env.update({"AUTHSERVER_INSTANCE_PATH": str(tmp_path / "instance"), "AUTHSERVER_PURGE_INTERVAL": "0",
                "AUTHSERVER_DRAIN_SECONDS": "0"})
    log_path = tmp_path / "server.log"
    proc = subprocess.Popen([AUTHSERVER, "serve", "--host", "0.0.0.0", "--port", str(port), "--workers", "1"],
                            env=env, stdout=open(log_path, "wb"), stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, log_path.read_text()[-2000:]
            try:
                if requests.get(base + "/readyz", timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                pass
            assert time.monotonic() < deadline, "the server did not become ready"
            time.sleep(0.2)
        meta = requests.get(base + "/.well-known/oauth-authorization-server", timeout=10).json()
        assert meta["issuer"] == f"http://0.0.0.0:{port}"
        answer = requests.post(base + "/oauth/token", data={"grant_type": "client_credentials"}, timeout=10)
        assert answer.status_code == 400 and answer.json()["error"] == "insecure_transport"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=15)
    warning = [line for line in log_path.read_text().splitlines() if line.startswith("warning:")]
    assert len(warning) == 1 and f"http://0.0.0.0:{port}" in warning[0] and "insecure_transport" in warning[0]
    assert "AUTHSERVER_ISSUER" in warning[0]


def test_the_issuer_follows_serve_host_and_port(tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTHSERVER_")}
    env.update({"AUTHSERVER_INSTANCE_PATH": str(tmp_path / "instance"), "AUTHSERVER_PURGE_INTERVAL": "0",
                "AUTHSERVER_DRAIN_SECONDS": "0"})
    with running_server(env, port, log_path=tmp_path / "server.log") as base:
        meta = requests.get(base + "/.well-known/oauth-authorization-server", timeout=10).json()
        assert meta["issuer"] == f"http://127.0.0.1:{port}"
        assert meta["token_endpoint"] == f"http://127.0.0.1:{port}/oauth/token"
        demo = subprocess.run([AUTHSERVER, "demo", "--json"], env=env, capture_output=True, text=True, timeout=60)
        assert demo.returncode == 0, demo.stderr[-500:]
        payload = json.loads(demo.stdout)
        assert payload["token_endpoint"] == f"http://127.0.0.1:{port}/oauth/token"
        assert payload["management_api"] == f"http://127.0.0.1:{port}/api/v1"
        # The demo's curl line works against this server.
        curl = subprocess.run(payload["curl"], shell=True, capture_output=True, text=True, timeout=30)
        assert json.loads(curl.stdout)["token_type"] == "Bearer"
    assert "warning:" not in (tmp_path / "server.log").read_text()  # loopback: plain http is allowed
