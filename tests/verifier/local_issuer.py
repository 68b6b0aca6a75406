"""A tiny authorization server for the verifier's unit tests: RFC 8414 metadata, a JWKS and an
introspection endpoint on 127.0.0.1, all under the test's control, and tokens minted with PyJWT."""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

AUDIENCE = "https://api.example.com/orders"
ORG_ID = "org-1"

_ALGORITHMS = {"RS256": jwt.algorithms.RSAAlgorithm, "ES256": jwt.algorithms.ECAlgorithm,
               "EdDSA": jwt.algorithms.OKPAlgorithm}


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


_KEYS: dict[tuple[str, str], object] = {}


def key_for(kid: str, alg: str):
    """One private key per (kid, alg) for the whole run: RSA key generation is slow."""
    if (kid, alg) not in _KEYS:
        _KEYS[(kid, alg)] = new_key(alg)
    return _KEYS[(kid, alg)]


def new_key(alg: str):
    if alg == "RS256":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if alg == "ES256":
        return ec.generate_private_key(ec.SECP256R1())
    return ed25519.Ed25519PrivateKey.generate()


class LocalIssuer:
    def __init__(self):
        self.private_keys: dict[str, tuple[str, object]] = {}  # kid -> (alg, private key)
        self.published: list[str] = []  # kids in the JWKS
        self.jwks_fetches = 0
        self.metadata_fetches = 0
        self.down = False  # answer 503 to everything
        self.cache_control = "public, max-age=60"
        self.metadata_overrides: dict = {}
        self.introspection_answer: dict = {"active": False}
        self.introspection_requests: list[dict] = []
        self._lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    # -- server ---------------------------------------------------------------------------------

    def start(self) -> LocalIssuer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=5)

    def metadata(self) -> dict:
        return {"issuer": self.url, "jwks_uri": self.url + "/jwks", "introspection_endpoint": self.url + "/introspect",
                "token_endpoint": self.url + "/token", **self.metadata_overrides}

    def jwks(self) -> dict:
        keys = []
        for kid in self.published:
            alg, private_key = self.private_keys[kid]
            jwk = _ALGORITHMS[alg].to_jwk(private_key.public_key(), as_dict=True)
            keys.append({**jwk, "kid": kid, "use": "sig", "alg": alg})
        return {"keys": keys}

    def _handler(self):
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _send(self, status: int, body: dict, cache_control: str | None = None):
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                if cache_control:
                    self.send_header("Cache-Control", cache_control)
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                if self.path == "/.well-known/oauth-authorization-server":
                    with issuer._lock:
                        issuer.metadata_fetches += 1
                    if issuer.down:
                        return self._send(503, {"error": "down"})
                    return self._send(200, issuer.metadata())
                if self.path == "/jwks":
                    with issuer._lock:
                        issuer.jwks_fetches += 1
                    if issuer.down:
                        return self._send(503, {"error": "down"})
                    return self._send(200, issuer.jwks(), issuer.cache_control)
                return self._send(404, {"error": "not found"})

            def do_POST(self):
                length = int(self.headers.get("Content-Length", "0"))
                form = self.rfile.read(length).decode()
                if self.path != "/introspect" or issuer.down:
                    return self._send(503, {"error": "down"})
                from urllib.parse import parse_qs

                issuer.introspection_requests.append({"authorization": self.headers.get("Authorization"),
                                                      "content_type": self.headers.get("Content-Type"),
                                                      "form": {k: v[0] for k, v in parse_qs(form).items()}})
                if issuer.introspection_answer.get("_status"):
                    return self._send(issuer.introspection_answer["_status"], {"error": "invalid_client"})
                return self._send(200, issuer.introspection_answer)

        return Handler

    # -- keys and tokens ------------------------------------------------------------------------

    def add_key(self, kid: str, alg: str = "RS256", publish: bool = True):
        self.private_keys[kid] = (alg, key_for(kid, alg))
        if publish:
            self.published.append(kid)
        return self.private_keys[kid][1]

    def claims(self, **overrides) -> dict:
        now = int(time.time())
        claims = {"iss": self.url, "sub": "account-1", "aud": AUDIENCE, "org_id": ORG_ID, "client_id": "client-1",
                  "scope": "orders:read orders:write", "jti": uuid.uuid4().hex, "iat": now, "exp": now + 300}
        claims.update(overrides)
        return {k: v for k, v in claims.items() if v is not None}

    def mint(self, kid: str | None = None, *, alg: str | None = None, typ: str | None = "at+jwt",
             headers: dict | None = None, drop: tuple = (), **claims) -> str:
        kid = kid or self.published[0]
        key_alg, private_key = self.private_keys[kid]
        header = {"kid": kid}
        if typ is not None:
            header["typ"] = typ
        header.update(headers or {})
        payload = self.claims(**claims)
        for name in drop:
            payload.pop(name, None)
        return jwt.encode(payload, private_key, algorithm=alg or key_alg, headers=header)


def unsigned_token(header: dict, claims: dict, signature: bytes = b"") -> str:
    """A JWS built by hand, for what PyJWT refuses to make (alg none, HS256 keyed with a public key)."""
    return ".".join([b64url(json.dumps(header).encode()), b64url(json.dumps(claims).encode()), b64url(signature)])


def hs256_token(header: dict, claims: dict, secret: bytes) -> str:
    signing_input = b64url(json.dumps(header).encode()) + "." + b64url(json.dumps(claims).encode())
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + b64url(signature)


class FakeClock:
    """The verifier's monotonic clock, moved by hand."""

    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
