"""Public keys of clients: parsing PEM or JWK, algorithm pinning by key type (RFC 8725 §3.1)."""
from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

from ..errors import InvalidInput

RSA_ALGS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512")
EC_ALG_BY_CURVE = {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}
EC_CRV_BY_CURVE = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}
ASSERTION_ALGS = RSA_ALGS + tuple(EC_ALG_BY_CURVE.values()) + ("EdDSA",)
MIN_RSA_BITS = 2048
MAX_KEY_TEXT = 16384
PRIVATE_JWK_MEMBERS = ("d", "p", "q", "dp", "dq", "qi", "oth", "k")


@dataclass(frozen=True)
class ParsedPublicKey:
    key: Any
    kty: str
    key_type: str  # human label: RSA-2048, EC-P-256, Ed25519
    algs: tuple[str, ...]
    jwk: dict[str, Any]  # public members, with kid (and alg when the JWK pinned one)

    @property
    def kid(self) -> str:
        return str(self.jwk["kid"])


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jwk_thumbprint(jwk: dict[str, Any]) -> str:
    """RFC 7638 thumbprint (SHA-256) of a public JWK."""
    required = {"RSA": ("e", "kty", "n"), "EC": ("crv", "kty", "x", "y"), "OKP": ("crv", "kty", "x")}[jwk["kty"]]
    canonical = json.dumps({k: jwk[k] for k in required}, separators=(",", ":"), sort_keys=True)
    return _b64url(hashlib.sha256(canonical.encode()).digest())


def describe_public_key(key: Any) -> tuple[str, str, tuple[str, ...], dict[str, Any]]:
    """(kty, label, allowed algs, public JWK) of a supported key; InvalidInput otherwise."""
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < MIN_RSA_BITS:
            raise InvalidInput(f"RSA keys must have at least {MIN_RSA_BITS} bits; this one has {key.key_size}.")
        return "RSA", f"RSA-{key.key_size}", RSA_ALGS, json.loads(RSAAlgorithm.to_jwk(key))
    if isinstance(key, ec.EllipticCurvePublicKey):
        curve = key.curve.name
        if curve not in EC_ALG_BY_CURVE:
            raise InvalidInput(f"EC keys must use P-256, P-384 or P-521; this one uses {curve}.")
        return "EC", f"EC-{EC_CRV_BY_CURVE[curve]}", (EC_ALG_BY_CURVE[curve],), json.loads(ECAlgorithm.to_jwk(key))
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "OKP", "Ed25519", ("EdDSA",), json.loads(OKPAlgorithm.to_jwk(key))
    raise InvalidInput("Unsupported key type: use RSA (2048 bits or more), EC P-256/P-384/P-521 or Ed25519.")


def holds_private_material(text: object) -> bool:
    """Text carrying a private key (PEM, or a JWK or JWK Set with private members): never shown again."""
    if not isinstance(text, str):
        return False
    if "PRIVATE KEY" in text:
        return True
    try:
        value = json.loads(text)
    except ValueError:
        return False
    members: list[Any] = value["keys"] if isinstance(value, dict) and isinstance(value.get("keys"), list) else [value]
    return any(isinstance(jwk, dict) and any(m in jwk for m in PRIVATE_JWK_MEMBERS) for jwk in members)


def unsafe_to_echo(text: object) -> bool:
    """Submitted text that must never be sent back in a page: private key material or a client secret."""
    from .client_secrets import SECRET_PATTERN

    return holds_private_material(text) or (isinstance(text, str) and SECRET_PATTERN.search(text) is not None)


def _parse_jwk(text: str) -> tuple[Any, str | None, str | None]:
    try:
        jwk = json.loads(text)
    except ValueError:
        raise InvalidInput("The key is neither a PEM public key nor valid JWK JSON.") from None
    if isinstance(jwk, dict) and "keys" in jwk:
        raise InvalidInput("Send one JWK, not a JWK Set.")
    if not isinstance(jwk, dict) or not isinstance(jwk.get("kty"), str):
        raise InvalidInput("A JWK must be a JSON object with a \"kty\" member.")
    if any(member in jwk for member in PRIVATE_JWK_MEMBERS):
        raise InvalidInput("This JWK holds private key material; register only the public key.")
    if jwk.get("use") not in (None, "sig"):
        raise InvalidInput("A client key must be a signing key (\"use\": \"sig\").")
    kid = jwk.get("kid")
    alg = jwk.get("alg")
    if kid is not None and not isinstance(kid, str):
        raise InvalidInput("The JWK \"kid\" must be a string.")
    if alg is not None and alg not in ASSERTION_ALGS:
        raise InvalidInput(f"The JWK \"alg\" must be one of {', '.join(ASSERTION_ALGS)}.")
    loaders: dict[str, type[RSAAlgorithm | ECAlgorithm | OKPAlgorithm]] = {
        "RSA": RSAAlgorithm,
        "EC": ECAlgorithm,
        "OKP": OKPAlgorithm,
    }
    loader = loaders.get(jwk["kty"])
    if loader is None:
        raise InvalidInput("Unsupported JWK \"kty\": use RSA, EC or OKP (Ed25519).")
    try:
        key = loader.from_jwk(jwk)
    except Exception:  # PyJWT raises several types for malformed members
        raise InvalidInput("The JWK is malformed: its key members do not form a valid public key.") from None
    return key, kid, alg


def _parse_pem(text: str) -> Any:
    if "PRIVATE KEY" in text:
        raise InvalidInput("This is a private key; register only the public key (BEGIN PUBLIC KEY).")
    try:
        return serialization.load_pem_public_key(text.encode())
    except (ValueError, TypeError):
        raise InvalidInput("The PEM block is not a valid public key.") from None
    except Exception:
        raise InvalidInput("The PEM block is not a valid public key.") from None


def parse_public_key(text: str | bytes, kid: str | None = None) -> ParsedPublicKey:
    """Parse a PEM (SubjectPublicKeyInfo) or JWK public key; kid defaults to the RFC 7638 thumbprint."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidInput("The key must be text: a PEM block or JWK JSON.") from None
    text = text.strip()
    if not text:
        raise InvalidInput("The key is empty.")
    if len(text) > MAX_KEY_TEXT:
        raise InvalidInput(f"The key is larger than {MAX_KEY_TEXT} bytes.")
    pinned_alg = None
    if text.startswith("-----BEGIN"):
        key = _parse_pem(text)
    else:
        key, jwk_kid, pinned_alg = _parse_jwk(text)
        kid = kid or jwk_kid
    kty, label, algs, jwk = describe_public_key(key)
    if pinned_alg is not None:
        if pinned_alg not in algs:
            raise InvalidInput(f"The JWK \"alg\" {pinned_alg} does not fit a {label} key.")
        algs = (pinned_alg,)
        jwk["alg"] = pinned_alg
    if kid is not None:
        kid = kid.strip()
        if not kid or len(kid) > 128 or not kid.isprintable():
            raise InvalidInput("A kid must be 1 to 128 printable characters.")
    jwk["kid"] = kid or jwk_thumbprint(jwk)
    jwk["use"] = "sig"
    return ParsedPublicKey(key=key, kty=kty, key_type=label, algs=algs, jwk=jwk)


def load_public_jwk(jwk_json: str) -> ParsedPublicKey:
    """Load a JWK this server stored itself (already validated)."""
    jwk = json.loads(jwk_json)
    loaders: dict[str, type[RSAAlgorithm | ECAlgorithm | OKPAlgorithm]] = {
        "RSA": RSAAlgorithm,
        "EC": ECAlgorithm,
        "OKP": OKPAlgorithm,
    }
    loader = loaders[jwk["kty"]]
    key = loader.from_jwk(jwk)
    kty, label, algs, _ = describe_public_key(key)
    if "alg" in jwk:
        algs = (jwk["alg"],)
    return ParsedPublicKey(key=key, kty=kty, key_type=label, algs=algs, jwk=jwk)
