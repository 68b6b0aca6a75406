from __future__ import annotations

from sqlalchemy import BigInteger, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from ..extensions import db


class SigningKey(db.Model):
    """A key pair that signs access tokens. The private half is stored encrypted."""

    __tablename__ = "signing_keys"
    __table_args__ = (Index("ix_signing_keys_created_at", "created_at"),)

    kid: Mapped[str] = mapped_column(String(64), primary_key=True)
    alg: Mapped[str] = mapped_column(String(16))
    public_jwk: Mapped[str] = mapped_column(Text)
    private_key_encrypted: Mapped[str] = mapped_column(Text)
    created_at: Mapped[int] = mapped_column(BigInteger)
    # Set when a newer key takes over; the key stays published until its last token expires.
    retired_at: Mapped[int | None] = mapped_column(BigInteger)
