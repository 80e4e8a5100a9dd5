"""Staff accounts: the people who may use the operator's pages."""

from __future__ import annotations

import hashlib
from datetime import datetime

from sqlalchemy import DateTime, String
from sqlalchemy.orm import Mapped, mapped_column
from werkzeug.security import check_password_hash, generate_password_hash

from storefront.extensions import db
from storefront.timeutil import now_utc

MIN_PASSWORD_LENGTH = 12
# Hashing cost grows with the input; nobody types more than this.
MAX_PASSWORD_LENGTH = 1024


def normalise_email(email: str) -> str:
    return email.strip().lower()


class StaffUser(db.Model):
    id: Mapped[int] = mapped_column(primary_key=True)
    # Stored lower-cased (see normalise_email), so one address is one account.
    email: Mapped[str] = mapped_column(String(254), unique=True)
    password_hash: Mapped[str] = mapped_column(String(256))
    name: Mapped[str] = mapped_column(String(200), default="")
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=now_utc)
    last_login_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    def set_password(self, password: str) -> None:
        self.password_hash = generate_password_hash(password)

    def check_password(self, password: str) -> bool:
        return check_password_hash(self.password_hash, password)

    @property
    def session_stamp(self) -> str:
        """A fingerprint of the password hash kept in the session: setting a new password
        signs out every session that was opened with the old one."""
        return hashlib.sha256(self.password_hash.encode()).hexdigest()[:20]

    @property
    def display_name(self) -> str:
        return self.name or self.email
