"""A local HTTPS server for key fetching tests: its own CA and server certificate (made with
`cryptography` at start), on 127.0.0.1, with answers a test changes while it runs (keys,
Cache-Control, status, delay, size, redirects) and a record of every request it got."""
from __future__ import annotations

import datetime
import ipaddress
import json
import socket
import ssl
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


@dataclass
class Answer:
    """What the server sends for one path."""

    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds before the status line
    chunked: bool = False  # Transfer-Encoding: chunked, no Content-Length
    trickle: float = 0.0  # seconds between the body's bytes, sent one at a time


@dataclass(frozen=True)
class Seen:
    path: str
    host: str | None  # the Host header
    server_name: str | None  # the TLS SNI name, None over plain http or for an IP


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def make_certificates(directory: Path, names: tuple[str, ...]) -> tuple[Path, Path, Path]:
    """A CA, and a server certificate it signs for `names` (DNS names and IP addresses): file paths
    (ca.pem, server.pem, server-key.pem)."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = (
        x509.CertificateBuilder().subject_name(_name("keyfetch test CA")).issuer_name(_name("keyfetch test CA"))
        .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                     content_commitment=False, key_encipherment=False, data_encipherment=False,
                                     key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    alt_names: list[x509.GeneralName] = []
    for name in names:
        try:
            alt_names.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            alt_names.append(x509.DNSName(name))
    server_key = ec.generate_private_key(ec.SECP256R1())
    server_cert = (
        x509.CertificateBuilder().subject_name(_name(names[0])).issuer_name(ca_cert.subject)
        .public_key(server_key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    ca_path, cert_path, key_path = directory / "ca.pem", directory / "server.pem", directory / "server-key.pem"
    ca_path.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    cert_path.write_bytes(server_cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(server_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                  serialization.NoEncryption()))
    return ca_path, cert_path, key_path


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - the base class's name
        pass

    def do_GET(self) -> None:  # noqa: N802 - the base class's naming
        owner = self.server.owner
        path = self.path.split("?")[0]
        owner._record(Seen(path=self.path, host=self.headers.get("Host"),
                           server_name=getattr(self.connection, "keyfetch_server_name", None)))
        answer = owner.answers.get(path) or Answer(status=404, body=b"not here")
        if answer.delay and owner._stopping.wait(answer.delay):
            return
        try:
            self.send_response(answer.status)
            for name, value in answer.headers.items():
                self.send_header(name, value)
            if answer.chunked:
                self.send_header("Transfer-Encoding", "chunked")
            else:
                self.send_header("Content-Length", str(len(answer.body)))
            self.send_header("Connection", "close")
            self.end_headers()
            if answer.chunked:
                for start in range(0, len(answer.body), 4096):
                    piece = answer.body[start:start + 4096]
                    self.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
                self.wfile.write(b"0\r\n\r\n")
            elif answer.trickle:
                for byte in answer.body:
                    self.wfile.write(bytes([byte]))
                    self.wfile.flush()
                    if owner._stopping.wait(answer.trickle):
                        return
            else:
                self.wfile.write(answer.body)
        except OSError:
            pass  # the client gave up (a size or time limit): that is what the test is about
        self.close_connection = True


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    owner: JwksServer

    def finish_request(self, request, client_address) -> None:
        # TLS per connection in its own thread, so a client that never finishes the handshake blocks no one.
        if self.owner.tls is not None:
            request.settimeout(5)
            try:
                request = self.owner.tls.wrap_socket(request, server_side=True)
            except (OSError, ssl.SSLError):
                return
        super().finish_request(request, client_address)

    def handle_error(self, request, client_address) -> None:
        pass


class JwksServer:
    """`with JwksServer(tmp_path) as server:` serves on 127.0.0.1 (https unless tls=False) until the block ends.

    `names` go into the certificate besides localhost and 127.0.0.1. `server.ca_file` is the CA to trust."""

    def __init__(self, directory: Path, *, tls: bool = True, names: tuple[str, ...] = ()):
        self.answers: dict[str, Answer] = {}
        self.seen: list[Seen] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self.ca_file: str | None = None
        self.tls: ssl.SSLContext | None = None
        if tls:
            ca_path, cert_path, key_path = make_certificates(Path(directory), ("localhost", "127.0.0.1", *names))
            self.ca_file = str(ca_path)
            self.tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.tls.load_cert_chain(cert_path, key_path)
            self.tls.sni_callback = self._note_server_name
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.owner = self
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)

    @staticmethod
    def _note_server_name(ssl_socket: ssl.SSLObject, server_name: str | None, context: ssl.SSLContext) -> None:
        ssl_socket.keyfetch_server_name = server_name  # type: ignore[attr-defined]

    def __enter__(self) -> JwksServer:
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop serving and close the port: later connections are refused."""
        if not self._stopping.is_set():
            self._stopping.set()
            self._server.shutdown()
            self._server.server_close()

    # -- what the server answers ---------------------------------------------------------------

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        scheme = "https" if self.tls is not None else "http"
        return f"{scheme}://{host}:{self.port}{path}"

    def answer(self, path: str, **fields) -> Answer:
        self.answers[path] = answer = Answer(**fields)
        return answer

    def serve_json(self, path: str, document, *, cache_control: str | None = None, **fields) -> None:
        headers = {"Content-Type": "application/json"}
        if cache_control is not None:
            headers["Cache-Control"] = cache_control
        self.answer(path, body=json.dumps(document).encode(), headers=headers, **fields)

    def serve_jwks(self, path: str, jwks: list[dict], *, cache_control: str | None = None, **fields) -> None:
        self.serve_json(path, {"keys": jwks}, cache_control=cache_control, **fields)

    def redirect(self, path: str, location: str, status: int = 302) -> None:
        self.answer(path, status=status, headers={"Location": location})

    # -- what the server saw -------------------------------------------------------------------

    def _record(self, seen: Seen) -> None:
        with self._lock:
            self.seen.append(seen)

    def count(self, path: str) -> int:
        with self._lock:
            return sum(1 for seen in self.seen if seen.path == path)


def refused_port() -> int:
    """A port on 127.0.0.1 where nothing listens (connections are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
