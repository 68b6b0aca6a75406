"""Reading back this server's own access tokens (RFC 9068)."""
from __future__ import annotations

import jwt

from .. import clock
from .constants import ACCESS_TOKEN_JWT_TYP


def decode_access_token(token: str, keyring, issuer: str) -> dict | None:
    """Claims of a token this server signed and that has not expired, or None."""
    if not isinstance(token, str) or len(token) > 8192:
        return None
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        return None
    kid = header.get("kid")
    if header.get("typ") != ACCESS_TOKEN_JWT_TYP or not isinstance(kid, str):
        return None
    entry = keyring.verification_key(kid)
    if entry is None:
        return None
    key, alg, _ = entry
    if header.get("alg") != alg:
        return None
    try:
        claims = jwt.decode(
            token, key, algorithms=[alg], issuer=issuer,
            # exp is checked below against the server clock; iat is not checked at all: another host whose
            # clock runs a little behind the issuer's must not see a fresh token as "not yet valid".
            options={"verify_aud": False, "verify_exp": False, "verify_iat": False,
                     "require": ["jti", "exp", "sub", "client_id"]},
        )
    except jwt.PyJWTError:
        return None
    if not isinstance(claims.get("exp"), int) or claims["exp"] <= clock.now() or not isinstance(claims.get("jti"), str):
        return None
    return claims
