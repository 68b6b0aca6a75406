"""Verify authserver's access tokens in a resource server.

    from authserver_verifier import Verifier, InvalidToken
    verifier = Verifier("https://auth.example.com", "https://api.example.com/orders", org_id="...")
    token = verifier.verify(bearer_token, required_scopes=["orders:read"])

Needs only PyJWT and cryptography; the Flask helpers import Flask when they are used.
"""
from .errors import InsufficientScope, InvalidToken, VerificationError, VerifierUnavailable
from .flask_integration import bearer_challenge, register_protected_resource_metadata, require_token
from .verifier import AccessToken, Verifier

__all__ = [
    "AccessToken",
    "InsufficientScope",
    "InvalidToken",
    "VerificationError",
    "Verifier",
    "VerifierUnavailable",
    "bearer_challenge",
    "register_protected_resource_metadata",
    "require_token",
]
__version__ = "0.1.0"
