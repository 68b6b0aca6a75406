from __future__ import annotations

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from ..extensions import Model


class Client(Model):
    """A confidential client application of an organization."""

    __tablename__ = "clients"
    __table_args__ = (Index("ix_clients_org_id", "org_id"),)

    client_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.org_id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    description: Mapped[str] = mapped_column(Text, default="")
    icon: Mapped[bytes | None] = mapped_column(LargeBinary)
    icon_content_type: Mapped[str | None] = mapped_column(String(32))
    # Bumped whenever a key is added or deleted: workers key their parsed-key cache on it.
    keys_version: Mapped[int] = mapped_column(Integer, default=0)
    # Bumped (in SQL) whenever what the client may get changes: its grants, the scopes of an API it
    # holds a grant for, a platform API opened or closed, the APIs it introspects for.
    access_version: Mapped[int] = mapped_column(Integer, default=0)
    # The URL of a JWK Set whose keys verify the client's assertions besides its pasted keys (RFC 7591
    # §2 jwks_uri); at most one per client. Setting, changing or removing it bumps keys_version.
    jwks_uri: Mapped[str | None] = mapped_column(String(2048))
    jwks_uri_added_at: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[int] = mapped_column(BigInteger)


class ClientSecret(Model):
    """A server-generated client secret, stored only as a keyed hash."""

    __tablename__ = "client_secrets"
    __table_args__ = (Index("ix_client_secrets_client_id", "client_id"),)

    secret_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    client_id: Mapped[str] = mapped_column(ForeignKey("clients.client_id", ondelete="CASCADE"))
    # "<scheme>$<digest>": the scheme names the hash so it can change without a flag day.
    secret_hash: Mapped[str] = mapped_column(String(128), unique=True)
    created_at: Mapped[int] = mapped_column(BigInteger)
    last_used_at: Mapped[int | None] = mapped_column(BigInteger)
    # From this time on the secret no longer authenticates (None: it never expires).
    expires_at: Mapped[int | None] = mapped_column(BigInteger)
    # When a leak report named it: it no longer authenticates, and the row stays so its owner sees why.
    leaked_at: Mapped[int | None] = mapped_column(BigInteger)
    # The owner's words to tell secrets apart (e.g. where it is deployed); never the secret itself.
    label: Mapped[str | None] = mapped_column(String(100))
    # The secret's last HINT_LENGTH characters, to tell secrets apart (None: made before hints were kept).
    hint: Mapped[str | None] = mapped_column(String(4))
    # When the secret.expiring audit event was written: once per secret, by whichever purger gets there first.
    expiry_noticed_at: Mapped[int | None] = mapped_column(BigInteger)


class ClientKey(Model):
    """A public key that verifies a client's assertions (RFC 7523 §3 item 9)."""

    __tablename__ = "client_keys"
    __table_args__ = (UniqueConstraint("client_id", "kid", name="uq_client_keys_client_id_kid"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    client_id: Mapped[str] = mapped_column(ForeignKey("clients.client_id", ondelete="CASCADE"))
    kid: Mapped[str] = mapped_column(String(128))
    kty: Mapped[str] = mapped_column(String(8))
    key_type: Mapped[str] = mapped_column(String(32))  # e.g. "RSA-2048", "EC-P-256", "Ed25519"
    public_jwk: Mapped[str] = mapped_column(Text)  # JSON, public members only
    created_at: Mapped[int] = mapped_column(BigInteger)
