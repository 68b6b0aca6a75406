"""A local workload identity issuer for the federation tests: an OpenID provider served over real
HTTPS by tests/jwks_server.py (discovery document and JWK Set), whose private keys sign the
assertions the tests exchange for access tokens."""
from __future__ import annotations

import json
import uuid

import jwt
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from authserver import clock
from tests.jwks_server import JwksServer

ISSUER_PATH = "/issuer"
DISCOVERY_PATH = ISSUER_PATH + "/.well-known/openid-configuration"
JWKS_PATH = ISSUER_PATH + "/keys"
AUDIENCE = "https://authserver.example/federation"
WORKLOAD = "system:serviceaccount:payments:worker"


class LocalIssuer:
    """An issuer at `server.url(ISSUER_PATH)` publishing the public halves of `keys` (kid -> private key)."""

    def __init__(self, server: JwksServer, cache_control: str = "max-age=300"):
        self.server = server
        self.cache_control = cache_control
        self.keys: dict = {}
        self.url = server.url(ISSUER_PATH)
        self.jwks_uri = server.url(JWKS_PATH)
        server.serve_json(DISCOVERY_PATH, {"issuer": self.url, "jwks_uri": self.jwks_uri},
                          cache_control=cache_control)
        self.publish("issuer-key-1")

    def publish(self, *kids: str) -> None:
        """Serve exactly these kids (new keys for kids not seen before)."""
        for kid in kids:
            self.keys.setdefault(kid, ec.generate_private_key(ec.SECP256R1()))
        jwks = []
        for kid in kids:
            jwk = json.loads(ECAlgorithm.to_jwk(self.keys[kid].public_key()))
            jwk["kid"] = kid
            jwks.append(jwk)
        self.server.serve_jwks(JWKS_PATH, jwks, cache_control=self.cache_control)

    def jwks(self) -> dict:
        """The published JWK Set, as an operator would paste it."""
        return json.loads(self.server.answers[JWKS_PATH].body)

    def assertion(self, kid: str = "issuer-key-1", key=None, drop: tuple = (), lifetime: int = 120,
                  **claims) -> str:
        now = clock.now()  # the server's clock, which tests move
        body = {"iss": self.url, "sub": WORKLOAD, "aud": AUDIENCE, "iat": now, "nbf": now,
                "exp": now + lifetime, "jti": uuid.uuid4().hex, **claims}
        for name in drop:
            body.pop(name, None)
        return jwt.encode(body, key if key is not None else self.keys[kid], algorithm="ES256", headers={"kid": kid})
