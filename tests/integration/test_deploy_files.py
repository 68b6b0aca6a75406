"""The files of deploy/, as an operator installs them.

deploy/authserver.service: systemd's own checker accepts it (`systemd-analyze verify`, which also
checks that ExecStart names an executable, and `systemd-analyze security`); its ExecStart, run with
the unit's environment, serves; SIGTERM to the main process alone (KillMode=mixed) drains and stops
every process well within TimeoutStopSec.

deploy/nginx.conf: `nginx -t` accepts it, and a live nginx built from it (only addresses, ports and
file paths changed) proxies to a live `authserver serve` configured with deploy/authserver.env's
AUTHSERVER_TRUSTED_PROXIES: TLS ends at nginx, tokens name the https issuer, the client's address is
the one nginx saw, bodies are limited as the server limits them, and slow clients never reach the
sync worker."""
from __future__ import annotations

import ast
import contextlib
import datetime
import ipaddress
import json
import os
import re
import shlex
import shutil
import signal
import socket
import ssl
import subprocess
import time
import tomllib
import uuid
from pathlib import Path

import jwt
import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from requests.adapters import HTTPAdapter

from authserver import create_app
from authserver.cli import initialise
from authserver.config import DEFAULTS_FILE, ENV_PREFIX, PACKAGE_ROOT, load_settings
from authserver.extensions import db

from ..conftest import JWT_BEARER, make_tenant
from ..servers import BIN, ROOT, free_port, peers_of_port, running_server, server_env

pytestmark = pytest.mark.slow

DEPLOY = ROOT / "deploy"
UNIT = DEPLOY / "authserver.service"
NGINX_CONF = DEPLOY / "nginx.conf"
ENV_FILE = DEPLOY / "authserver.env"
UNIT_VENV = "/opt/authserver/venv"  # where the unit expects the virtual environment
STATE_DIR = "/var/lib/authserver"
PUBLIC_HOST = "auth.example.com"  # the server_name of deploy/nginx.conf and the issuer of deploy/authserver.env
PURGER_STOP_SECONDS = 5  # authserver/gunicorn_conf.py on_exit: how long the master waits for the purger
CLIENT_ADDRESS = "127.0.0.5"  # the test's client connects to nginx from this loopback address
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


# --- the systemd unit -------------------------------------------------------------------------

def unit_sections() -> dict[str, dict[str, list[str]]]:
    """{section: {key: [values in order]}}: systemd keys may repeat (SystemCallFilter, Environment)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current = None
    for line in UNIT.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        key, _, value = line.partition("=")
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def service() -> dict[str, list[str]]:
    return unit_sections()["Service"]


def one(key: str) -> str:
    values = service()[key]
    assert len(values) == 1, f"{key} is set {len(values)} times"
    return values[0]


def installed_unit(tmp_path: Path) -> Path:
    """The unit as installed with this checkout's virtual environment in place of /opt/authserver/venv."""
    assert one("ExecStart").startswith(UNIT_VENV + "/")
    copy = tmp_path / "authserver.service"
    copy.write_text(UNIT.read_text().replace(UNIT_VENV, str(BIN.parent)))
    return copy


def test_systemd_accepts_the_unit_and_rates_its_hardening(tmp_path):
    unit = installed_unit(tmp_path)
    verify = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60)
    # verify exits 0 on unknown keys and unparsable values, but names them on stderr.
    assert verify.returncode == 0 and verify.stderr.strip() == "", verify.stderr
    security = subprocess.run(["systemd-analyze", "security", "--offline=true", "--threshold=20", str(unit)],
                              capture_output=True, text=True, timeout=60)
    exposure = re.search(r"Overall exposure level for authserver\.service: ([\d.]+)", security.stdout)
    assert exposure, security.stdout[-500:] + security.stderr
    assert float(exposure.group(1)) <= 2.0 and security.returncode == 0, security.stdout[-3000:]


def test_the_unit_checker_refuses_a_missing_executable(tmp_path):
    """What the check above relies on: an ExecStart that names no executable fails verification."""
    unit = tmp_path / "authserver.service"
    unit.write_text(UNIT.read_text().replace(UNIT_VENV, str(tmp_path / "no-venv")))
    verify = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert verify.returncode != 0 and "no-venv/bin/authserver" in verify.stderr


def test_the_unit_runs_a_dedicated_user_with_only_its_instance_directory_writable():
    s = service()
    assert one("User") == one("Group") == "authserver"
    assert one("EnvironmentFile") == "/etc/authserver/env"
    assert one("ExecStart").split()[:2] == [f"{UNIT_VENV}/bin/authserver", "serve"]
    for key, value in {"NoNewPrivileges": "yes", "ProtectSystem": "strict", "PrivateTmp": "yes", "ProtectHome": "yes",
                       "CapabilityBoundingSet": "", "RestrictSUIDSGID": "yes"}.items():
        assert one(key) == value, key
    assert set(one("RestrictAddressFamilies").split()) == {"AF_UNIX", "AF_INET", "AF_INET6"}
    environment = dict(entry.split("=", 1) for entry in s["Environment"])
    instance = environment["AUTHSERVER_INSTANCE_PATH"]
    writable = [*one("ReadWritePaths").split(), *(f"/var/lib/{name}" for name in one("StateDirectory").split())]
    assert any(instance == path or instance.startswith(path + "/") for path in writable), (instance, writable)
    assert one("WorkingDirectory") == STATE_DIR and f"/var/lib/{one('StateDirectory')}" == STATE_DIR


def seconds(value: str) -> float:
    match = re.fullmatch(r"(\d+)(s|min)?", value)
    assert match, f"unexpected time span {value!r}"
    return int(match.group(1)) * (60 if match.group(2) == "min" else 1)


def env_file() -> dict[str, str]:
    entries = {}
    for line in ENV_FILE.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            entries[key] = value
    return entries


def test_the_stop_timeout_outlasts_the_drain_and_the_workers_grace():
    assert one("KillSignal") == "SIGTERM"
    # Only the master gets SIGTERM: with the default control-group mode every worker would get it too
    # and stop at once, without serving the drain time.
    assert one("KillMode") == "mixed"
    module = ast.parse((PACKAGE_ROOT / "gunicorn_conf.py").read_text())
    graceful = next(node.value.value for node in module.body if isinstance(node, ast.Assign)
                    and any(getattr(t, "id", None) == "graceful_timeout" for t in node.targets))
    with DEFAULTS_FILE.open("rb") as fh:
        drains = [int(tomllib.load(fh)["drain_seconds"]), int(env_file()["AUTHSERVER_DRAIN_SECONDS"])]
    assert seconds(one("TimeoutStopSec")) > max(drains) + graceful + PURGER_STOP_SECONDS


def test_the_environment_file_names_only_real_settings_with_valid_values(tmp_path):
    with DEFAULTS_FILE.open("rb") as fh:
        known = {ENV_PREFIX + key.upper(): key for key in tomllib.load(fh)}
    entries = env_file()
    assert set(entries) <= set(known), set(entries) - set(known)
    commented = set(re.findall(r"^# (AUTHSERVER_\w+)=", ENV_FILE.read_text(), re.M))
    assert (
        {"AUTHSERVER_SECRET_PEPPER", "AUTHSERVER_KEY_ENCRYPTION_KEY", "AUTHSERVER_SESSION_KEY"}
        <= commented
        <= set(known)
    )
    settings = load_settings({"instance_path": str(tmp_path), **{known[k]: v for k, v in entries.items()}})
    assert settings.issuer == f"https://{PUBLIC_HOST}" and settings.trusted_proxies == 1


def test_execstart_serves_and_sigterm_to_the_main_process_drains_then_stops_everything(tmp_path):
    drain = 3
    port = free_port()
    root = tmp_path / "root"  # stands for /, where the unit's paths point
    argv = shlex.split(one("ExecStart").replace(UNIT_VENV, str(BIN.parent)))
    argv[argv.index("--port") + 1] = str(port)
    env = {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX)}
    for entry in service()["Environment"]:
        key, _, value = entry.partition("=")
        env[key] = value.replace(STATE_DIR, str(root) + STATE_DIR)
    env.update({"AUTHSERVER_ISSUER": f"http://127.0.0.1:{port}", "AUTHSERVER_DRAIN_SECONDS": str(drain),
                "AUTHSERVER_WORKERS": "2", "AUTHSERVER_LOG_LEVEL": "WARNING"})  # the environment file's part
    workdir = root / one("WorkingDirectory").lstrip("/")
    workdir.mkdir(parents=True, mode=0o700)  # StateDirectory= makes it
    base = f"http://127.0.0.1:{port}"
    with open(tmp_path / "server.log", "wb") as log:
        proc = subprocess.Popen(
            argv, env=env, cwd=workdir, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, (tmp_path / "server.log").read_text()[-2000:]
            with contextlib.suppress(requests.RequestException):
                if requests.get(base + "/readyz", timeout=1).status_code == 200:
                    break
            assert time.monotonic() < deadline, "the server did not become ready"
            time.sleep(0.2)
        assert (Path(env["AUTHSERVER_INSTANCE_PATH"]) / "authserver.db").is_file()
        # The master, two workers and the purger: the first worker may answer before the second is forked.
        while len(processes := session_processes(proc.pid)) < 4 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(processes) >= 4, processes

        stopping = time.monotonic()
        os.kill(proc.pid, signal.SIGTERM)  # KillMode=mixed: the main process alone
        while requests.get(base + "/readyz", timeout=2).status_code != 503:  # balancers stop sending
            assert time.monotonic() - stopping < drain, "/readyz did not turn 503"
            time.sleep(0.1)
        assert requests.get(base + "/healthz", timeout=2).status_code == 200  # still serving
        budget = seconds(one("TimeoutStopSec"))
        returncode = proc.wait(timeout=budget)
        took = time.monotonic() - stopping
        assert returncode == 0, (tmp_path / "server.log").read_text()[-2000:]
        assert drain <= took < budget, took
        time.sleep(0.2)
        assert session_processes(proc.pid) == [], "left for systemd to kill"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def session_processes(sid: int) -> list[int]:
    """Live processes of a session (zombies waiting to be reaped do not count)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            if int(fields[3]) == sid and fields[0] != "Z":
                found.append(int(entry.name))
    return found


# --- nginx in front of a live server ------------------------------------------------------------

def self_signed(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, PUBLIC_HOST)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(PUBLIC_HOST),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / "fullchain.pem", directory / "privkey.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def nginx_for_test(directory: Path, app_port: int, http_port: int, https_port: int, cert: Path, key: Path) -> Path:
    """deploy/nginx.conf with this machine's addresses, ports and file paths; everything else as shipped."""
    temp = directory / "temp"
    temp.mkdir()
    temp_paths = "".join(
        f"    {kind}_temp_path {temp / kind};\n" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    replacements = [
        # Workers of a root master run as the user named here; the test's files are the test user's.
        ("user www-data;\n", "user root;\n" if os.geteuid() == 0 else ""),
        ("pid /run/nginx.pid;", f"pid {directory / 'nginx.pid'};"),
        ("error_log /var/log/nginx/error.log warn;", f"error_log {directory / 'error.log'} warn;"),
        (
            "access_log /var/log/nginx/authserver.access.log authserver;",
            f"access_log {directory / 'access.log'} authserver;",
        ),
        ("http {\n", "http {\n" + temp_paths),
        ("listen 80;", f"listen 127.0.0.1:{http_port};"),
        ("listen [::]:80;", ""),
        ("listen 443 ssl;", f"listen 127.0.0.1:{https_port} ssl;"),
        ("listen [::]:443 ssl;", ""),
        ("/etc/ssl/authserver/fullchain.pem", str(cert)),
        ("/etc/ssl/authserver/privkey.pem", str(key)),
        ("server 127.0.0.1:8000 ", f"server 127.0.0.1:{app_port} "),
    ]
    text = NGINX_CONF.read_text()
    for old, new in replacements:
        assert text.count(old) == 1, f"deploy/nginx.conf changed shape: {old!r}"
        text = text.replace(old, new)
    path = directory / "nginx.conf"
    path.write_text(text)
    return path


def nginx_command(conf: Path, *args: str) -> list[str]:
    return [NGINX, "-c", str(conf), "-p", str(conf.parent) + "/", "-e", str(conf.parent / "startup.log"), *args]


class SourceAddressAdapter(HTTPAdapter):
    def __init__(self, address: str):
        self.address = address
        super().__init__()

    def init_poolmanager(self, *args, **kwargs):
        kwargs["source_address"] = (self.address, 0)
        super().init_poolmanager(*args, **kwargs)


class Stack:
    """nginx (TLS on https_port, plain http on http_port) in front of `authserver serve` with one sync worker."""

    def __init__(self, directory, conf, app_base, http_port, https_port, cert, server_log, tenant, issuer):
        self.directory, self.conf, self.app_base, self.cert = directory, conf, app_base, cert
        self.http_port, self.https_port = http_port, https_port
        self.server_log, self.tenant, self.issuer = server_log, tenant, issuer
        self.base = f"https://127.0.0.1:{https_port}"
        self.client = self.session(CLIENT_ADDRESS)

    def session(self, source: str) -> requests.Session:
        session = requests.Session()
        session.trust_env = False  # this certificate, not a CA bundle named in the environment
        session.mount("https://", SourceAddressAdapter(source))
        session.mount("http://", SourceAddressAdapter(source))
        session.verify = str(self.cert)
        session.headers["Host"] = PUBLIC_HOST
        return session

    def assertion(self) -> str:
        t, now = self.tenant, int(time.time())
        return jwt.encode({"iss": t.client_id, "sub": t.account_id, "aud": self.issuer + "/oauth/token", "iat": now,
                           "exp": now + 120, "jti": uuid.uuid4().hex}, t.private_key, algorithm="ES256",
                          headers={"kid": t.kid})

    def token_request(self, **kwargs) -> requests.Response:
        t = self.tenant
        return self.client.post(
            self.base + "/oauth/token",
            data={"grant_type": JWT_BEARER, "assertion": self.assertion()},
            auth=(t.client_id, t.client_secret),
            timeout=10,
            **kwargs,
        )

    def access_log_line(self, request_id: str) -> dict:
        """authserver's own access-log line (JSON) for a request id."""
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            for line in self.server_log.read_text(errors="replace").splitlines():
                if line.startswith("{") and f'"request_id": "{request_id}"' in line:
                    entry = json.loads(line)
                    if entry.get("logger") == "authserver.access":
                        return entry
            time.sleep(0.1)
        raise AssertionError(f"no access-log line for {request_id}")


@contextlib.contextmanager
def proxied_stack(directory: Path, trusted_proxies: str):
    directory.mkdir()
    issuer = f"https://{PUBLIC_HOST}"
    instance = directory / "instance"
    app = create_app({"instance_path": str(instance), "issuer": issuer})
    with app.app_context():
        initialise()
        tenant = make_tenant()
        db.session.remove()
        db.engine.dispose()
    cert, key = self_signed(directory)
    app_port, http_port, https_port = free_port(), free_port(), free_port()
    conf = nginx_for_test(directory, app_port, http_port, https_port, cert, key)
    env = server_env(instance, issuer, AUTHSERVER_TRUSTED_PROXIES=trusted_proxies, AUTHSERVER_LOG_LEVEL="INFO",
                     AUTHSERVER_WORKER_CLASS="sync")
    server_log = directory / "server.log"
    with running_server(env, app_port, workers=1, log_path=server_log) as app_base:
        with open(directory / "nginx.out", "wb") as out:
            nginx = subprocess.Popen(nginx_command(conf, "-g", "daemon off;"), stdout=subprocess.DEVNULL, stderr=out)
        try:
            deadline = time.monotonic() + 10
            while True:
                assert nginx.poll() is None, (directory / "nginx.out").read_text() + (
                    directory / "error.log"
                ).read_text()
                with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", https_port), timeout=1):
                    break
                assert time.monotonic() < deadline, "nginx did not start listening"
                time.sleep(0.1)
            yield Stack(directory, conf, app_base, http_port, https_port, cert, server_log, tenant, issuer)
        finally:
            nginx.send_signal(signal.SIGQUIT)  # graceful stop
            try:
                nginx.wait(timeout=10)
            except subprocess.TimeoutExpired:
                nginx.kill()
                nginx.wait(timeout=5)


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """Configured as deploy/authserver.env says for this nginx."""
    with proxied_stack(tmp_path_factory.mktemp("nginx") / "trusted", env_file()["AUTHSERVER_TRUSTED_PROXIES"]) as s:
        yield s


def test_nginx_accepts_the_configuration(stack):
    checked = subprocess.run(nginx_command(stack.conf, "-t"), capture_output=True, text=True, timeout=30)
    assert checked.returncode == 0 and "test is successful" in checked.stderr, checked.stderr
    assert "[warn]" not in checked.stderr and "[emerg]" not in checked.stderr, checked.stderr


def test_a_token_through_nginx_names_the_https_issuer_and_the_clients_own_address(stack):
    metadata = stack.client.get(stack.base + "/.well-known/oauth-authorization-server", timeout=10).json()
    assert metadata["issuer"] == f"https://{PUBLIC_HOST}"
    assert metadata["token_endpoint"] == f"https://{PUBLIC_HOST}/oauth/token"

    # A client's own X-Forwarded-For and X-Request-Id are not believed.
    response = stack.token_request(headers={"X-Forwarded-For": "198.51.100.7", "X-Request-Id": "chosen-by-client"})
    assert response.status_code == 200, response.text
    assert response.headers["Strict-Transport-Security"].startswith("max-age=")
    claims = jwt.decode(response.json()["access_token"], options={"verify_signature": False})
    assert claims["iss"] == f"https://{PUBLIC_HOST}"
    request_id = response.headers["X-Request-Id"]
    assert re.fullmatch(r"[0-9a-f]{32}", request_id), request_id  # nginx's $request_id
    logged = stack.access_log_line(request_id)
    assert logged["path"] == "/oauth/token" and logged["status"] == 200
    assert logged["remote_addr"] == CLIENT_ADDRESS

    introspection = stack.client.post(stack.base + "/oauth/introspect", data={"token": response.json()["access_token"]},
                                      auth=(stack.tenant.client_id, stack.tenant.client_secret), timeout=10)
    assert introspection.json()["active"] is True


def test_nginx_keeps_its_connections_to_the_server_alive_and_reuses_them(stack):
    port = int(stack.app_base.rsplit(":", 1)[1])
    assert stack.token_request().status_code == 200
    after_one = peers_of_port(port)
    for _ in range(5):
        assert stack.token_request().status_code == 200
    after_six = peers_of_port(port)
    # Still open after its answers, and no new connection for the five requests after the first (one that
    # an earlier test left open may have been closed meanwhile, idle for 4 s).
    assert after_six and after_six <= after_one, (after_one, after_six)


def test_without_trusted_proxies_the_server_sees_nginx_instead_of_the_client(tmp_path):
    with proxied_stack(tmp_path / "untrusted", "0") as untrusted:
        # gunicorn believes X-Forwarded-Proto from a proxy on its own host (its forwarded_allow_ips), so
        # the scheme is still https; the client's address is lost: every request seems to come from nginx.
        response = untrusted.token_request()
        assert response.status_code == 200, response.text
        logged = untrusted.access_log_line(response.headers["X-Request-Id"])
        assert logged["remote_addr"] == "127.0.0.1"
        # Plain http to the public name, with nothing saying the client used https: refused.
        t = untrusted.tenant
        direct = requests.post(untrusted.app_base + "/oauth/token", headers={"Host": PUBLIC_HOST}, timeout=10,
                               data={"grant_type": JWT_BEARER, "assertion": untrusted.assertion()},
                               auth=(t.client_id, t.client_secret))
        assert direct.status_code == 400 and direct.json()["error"] == "insecure_transport"


def test_body_limits_match_the_servers(stack):
    match = re.search(r"^\s*client_max_body_size (\d+)([km]?);", NGINX_CONF.read_text(), re.M)
    limit = int(match.group(1)) * {"": 1, "k": 1024, "m": 1024 * 1024}[match.group(2)]
    app = create_app({"instance_path": str(stack.directory / "instance"), "issuer": stack.issuer})
    assert limit == app.config["MAX_CONTENT_LENGTH"]
    assert limit > app.extensions["authserver.settings"].oauth_max_body_bytes
    # Above the OAuth endpoints' own limit: authserver's RFC 6749 answer, not nginx's page.
    t = stack.tenant
    form = {"grant_type": JWT_BEARER, "assertion": stack.assertion(), "scope": "read " * 4000}
    too_large = stack.client.post(
        stack.base + "/oauth/token", data=form, auth=(t.client_id, t.client_secret), timeout=10
    )
    assert too_large.status_code == 413 and too_large.json()["error"] == "invalid_request"
    # Above every limit of the server: nginx refuses it without passing it on.
    huge = stack.client.post(stack.base + "/oauth/token", data={"assertion": "x" * (limit + 1)}, timeout=10)
    assert huge.status_code == 413 and huge.headers["Content-Type"].startswith("text/html")
    assert "X-Request-Id" not in huge.headers


def test_plain_http_is_redirected_and_metrics_are_for_the_monitoring_network(stack):
    plain = stack.client.get(f"http://127.0.0.1:{stack.http_port}/console/sign-in", allow_redirects=False, timeout=10)
    assert plain.status_code == 301 and plain.headers["Location"] == f"https://{PUBLIC_HOST}/console/sign-in"
    assert stack.client.get(stack.base + "/metrics", timeout=10).status_code == 403
    local = stack.session("127.0.0.1").get(stack.base + "/metrics", timeout=10)
    assert local.status_code == 200 and "authserver_http_requests_total" in local.text


@contextlib.contextmanager
def slow_clients(connect, count: int = 3, host: str = PUBLIC_HOST, path: str = "/oauth/token"):
    """Connections that send a request head announcing a body, then a few bytes of it, then nothing."""
    head = (f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/x-www-form-urlencoded\r\n"
            "Content-Length: 1000\r\n\r\ngrant_type=").encode()
    sockets = []
    try:
        for _ in range(count):
            sock = connect()
            sock.sendall(head)
            sockets.append(sock)
        time.sleep(0.5)
        yield
    finally:
        for sock in sockets:
            sock.close()


def test_slow_clients_wait_in_nginx_not_in_the_sync_worker(stack):
    context = ssl.create_default_context(cafile=str(stack.cert))

    def through_nginx():
        raw = socket.create_connection(("127.0.0.1", stack.https_port), timeout=5, source_address=(CLIENT_ADDRESS, 0))
        return context.wrap_socket(raw, server_hostname=PUBLIC_HOST)

    with slow_clients(through_nginx):
        started = time.monotonic()
        response = stack.token_request()
        assert response.status_code == 200 and time.monotonic() - started < 2

    # What nginx spares the server: the same clients straight at the port hold its one worker.
    port = int(stack.app_base.rsplit(":", 1)[1])
    # The console's sign-in form reads its body first (its CSRF token is in it); the OAuth endpoints refuse
    # plain http under an https issuer before reading a byte of the body.
    with slow_clients(lambda: socket.create_connection(("127.0.0.1", port), timeout=5), count=1,
                      host=f"127.0.0.1:{port}", path="/console/sign-in"):
        with pytest.raises(requests.Timeout):
            requests.get(stack.app_base + "/healthz", timeout=2)
    assert requests.get(stack.app_base + "/healthz", timeout=10).status_code == 200
