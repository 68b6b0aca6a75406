from __future__ import annotations

from sqlalchemy import BigInteger, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from ..extensions import Model


class SigningKey(Model):
    """A key pair that signs access tokens. The private half is stored encrypted."""

    __tablename__ = "signing_keys"
    __table_args__ = (Index("ix_signing_keys_created_at", "created_at"),)

    kid: Mapped[str] = mapped_column(String(64), primary_key=True)
    alg: Mapped[str] = mapped_column(String(16))
    public_jwk: Mapped[str] = mapped_column(Text)
    private_key_encrypted: Mapped[str] = mapped_column(Text)
    created_at: Mapped[int] = mapped_column(BigInteger)
    # When it may start signing: published from created_at, signing from here on (a rotation's
    # activation delay, so resource servers caching the JWKS know the key before they meet it).
    activates_at: Mapped[int] = mapped_column(BigInteger)
    # When it stops signing (the next key's activates_at); it stays published until its last token expires.
    retired_at: Mapped[int | None] = mapped_column(BigInteger)
    # Set once, for a compromised key: unpublished at once, its tokens inactive at once. Final.
    withdrawn_at: Mapped[int | None] = mapped_column(BigInteger)
