from __future__ import annotations

from sqlalchemy import BigInteger, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from ..extensions import Model


class ConsoleSession(Model):
    """A signed-in console session. The browser holds a random session id; the server keeps only its
    SHA-256 hash, so a copy of this table opens no session. Deleting the row ends the session."""

    __tablename__ = "console_sessions"
    __table_args__ = (
        Index("ix_console_sessions_account_id", "account_id"),
        Index("ix_console_sessions_expires_at", "expires_at"),
    )

    session_hash: Mapped[str] = mapped_column(String(64), primary_key=True)  # hex SHA-256 of the session id
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.account_id", ondelete="CASCADE"))
    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.org_id", ondelete="CASCADE"))
    created_at: Mapped[int] = mapped_column(BigInteger)
    last_seen_at: Mapped[int] = mapped_column(BigInteger)
    expires_at: Mapped[int] = mapped_column(BigInteger)  # absolute end, whatever the activity
    user_agent: Mapped[str | None] = mapped_column(String(200))
    ip_address: Mapped[str | None] = mapped_column(String(64))
