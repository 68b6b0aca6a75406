"""The command line: client-side help: signing an assertion."""
from __future__ import annotations

import json
import time
from pathlib import Path

import click

from .output import EXIT_INVALID, fail

# --- client-side helpers --------------------------------------------------------------------

def sign_assertion(private_key_pem: bytes, client_id: str, subject: str, audience: str, kid: str | None,
                   lifetime: int = 300) -> str:
    """Sign an RFC 7523 assertion the way a client does (the private key stays on the client)."""
    import secrets as _secrets

    import jwt
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

    private_key = serialization.load_pem_private_key(private_key_pem, password=None)
    if isinstance(private_key, rsa.RSAPrivateKey):
        alg = "RS256"
    elif isinstance(private_key, ec.EllipticCurvePrivateKey):
        alg = {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}[private_key.curve.name]
    elif isinstance(private_key, ed25519.Ed25519PrivateKey):
        alg = "EdDSA"
    else:
        raise click.UsageError("unsupported private key type")
    now = int(time.time())
    claims = {"iss": client_id, "sub": subject, "aud": audience, "iat": now, "exp": now + lifetime,
              "jti": _secrets.token_urlsafe(16)}
    return jwt.encode(claims, private_key, algorithm=alg, headers={"kid": kid} if kid else None)


@click.command()
@click.option(
    "--key",
    "key_file",
    type=click.Path(dir_okay=False, exists=True),
    required=True,
    help="The client's private key (PEM).",
)
@click.option("--client-id", required=True)
@click.option("--subject", required=True, help="The account the token is for (sub).")
@click.option("--kid", default=None)
@click.option("--audience", default=None, help="Default: the issuer's token endpoint.")
@click.option("--lifetime", default=300, show_default=True, type=int)
@click.option("--json", "as_json", is_flag=True, help='Print {"assertion": ...} instead of the bare JWT.')
def assertion(key_file, client_id, subject, kid, audience, lifetime, as_json):
    """Sign a fresh JWT bearer assertion with a client's private key (runs on the client side)."""
    from ..config import load_settings

    audience = audience or load_settings().token_endpoint
    try:
        signed = sign_assertion(Path(key_file).read_bytes(), client_id, subject, audience, kid, lifetime)
    except (ValueError, TypeError):
        fail(f"{key_file} is not an unencrypted PEM private key (RSA, EC P-256/384/521 or Ed25519); "
              "the assertion is signed with the client's private key, whose public half the server holds", EXIT_INVALID)
    click.echo(json.dumps({"assertion": signed}) if as_json else signed)
