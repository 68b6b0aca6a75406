"""The server's own signing keys: generation, encryption at rest, loading."""
from __future__ import annotations

import base64
import hashlib
import json
import secrets
from dataclasses import dataclass
from typing import Any

from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from .keys import describe_public_key


@dataclass(frozen=True)
class SigningKeyPair:
    kid: str
    alg: str
    private_key: Any
    public_jwk: dict[str, Any]


def _fernet(key_encryption_key: bytes) -> Fernet:
    return Fernet(base64.urlsafe_b64encode(hashlib.sha256(key_encryption_key).digest()))


def generate_signing_key(alg: str) -> SigningKeyPair:
    private_key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
    if alg == "RS256":
        private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    elif alg == "ES256":
        private_key = ec.generate_private_key(ec.SECP256R1())
    elif alg == "EdDSA":
        private_key = ed25519.Ed25519PrivateKey.generate()
    else:
        raise ValueError(f"unsupported signing algorithm {alg!r}")
    _, _, _, jwk = describe_public_key(private_key.public_key())
    kid = secrets.token_urlsafe(12)
    jwk.update({"kid": kid, "alg": alg, "use": "sig"})
    return SigningKeyPair(kid=kid, alg=alg, private_key=private_key, public_jwk=jwk)


def encrypt_private_key(private_key: Any, key_encryption_key: bytes) -> str:
    pem = private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return _fernet(key_encryption_key).encrypt(pem).decode()


def decrypt_private_key(token: str, key_encryption_key: bytes) -> Any:
    """The private key this server generated and stored encrypted. Fernet authenticates the ciphertext
    (HMAC-SHA256), so the PEM is byte for byte the key generate_signing_key made: the RSA consistency
    check that loading otherwise runs (tens of milliseconds per key, at every start) proves nothing more."""
    pem = _fernet(key_encryption_key).decrypt(token.encode())
    return serialization.load_pem_private_key(pem, password=None, unsafe_skip_rsa_key_validation=True)


def public_jwk_json(pair: SigningKeyPair) -> str:
    return json.dumps(pair.public_jwk, sort_keys=True)
