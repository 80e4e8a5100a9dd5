"""Staff accounts, their roles and permissions, the password policy, the record of who
changed what in the catalogue, the stock and the staff, and the staff's notes on orders."""

from __future__ import annotations

import enum
import hashlib
from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column
from werkzeug.security import check_password_hash, generate_password_hash

from storefront.extensions import Model
from storefront.timeutil import now_utc

MIN_PASSWORD_LENGTH = 12
# Hashing cost grows with the input; nobody types more than this.
MAX_PASSWORD_LENGTH = 1024
# An internal note on an order is a few lines, not a document.
MAX_NOTE_LENGTH = 2000
MAX_REASON = 500  # characters of why an order was cancelled or refunded


# The most common passwords of 12 characters or more (shorter ones are refused anyway).
_COMMON = """
123456789012 1234567890123 12345678901234 123456789123 111111111111 000000000000
123123123123 123412341234 112233445566 121212121212 987654321098 147258369147
password1234 password1234! password12345 passwordpassword password123456 123456password
qwertyuiopas qwertyuiop12 qwerty123456 1q2w3e4r5t6y 1qaz2wsx3edc qazwsxedcrfv
asdfghjkl123 zxcvbnm12345 iloveyou1234 letmein12345 welcome12345 welcome123456
administrator admin1234567 adminadmin12 changeme1234 trustno12345 football1234
baseball1234 sunshine1234 princess1234 dragon123456 monkey123456 starwars1234
abcdefghijkl abc123456789 aaaaaaaaaaaa correcthorse correcthorsebatterystaple
"""
COMMON_PASSWORDS = frozenset(_COMMON.split())


def normalise_email(email: str) -> str:
    return email.strip().lower()


def password_problem(password: str, email: str) -> str | None:
    """Why ``password`` may not be used for the account ``email``, or None if it may."""
    if len(password) < MIN_PASSWORD_LENGTH:
        return f"The password must be at least {MIN_PASSWORD_LENGTH} characters long."
    if len(password) > MAX_PASSWORD_LENGTH:
        return f"The password must be at most {MAX_PASSWORD_LENGTH} characters long."
    folded = password.strip().lower()
    if folded == normalise_email(email) or folded == normalise_email(email).partition("@")[0]:
        return "The password must not be the email address."
    if folded in COMMON_PASSWORDS or len(set(folded)) <= 2:
        return "This password is one of the most common ones: choose another."
    return None


class Role(enum.StrEnum):
    OWNER = "owner"  # everything, including the staff accounts
    STAFF = "staff"  # orders, fulfilment, catalogue and stock


class StaffUser(Model):
    id: Mapped[int] = mapped_column(primary_key=True)
    # Stored lower-cased (see normalise_email), so one address is one account.
    email: Mapped[str] = mapped_column(String(254), unique=True)
    password_hash: Mapped[str] = mapped_column(String(256))
    name: Mapped[str] = mapped_column(String(200), default="")
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=now_utc)
    last_login_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    role: Mapped[Role] = mapped_column(String(20), default=Role.STAFF)
    # Capture, void and refund move money: a permission of its own, given by an owner.
    can_refund: Mapped[bool] = mapped_column(default=False)
    # The optional second factor: a base32 secret, on once a first code confirmed it.
    totp_secret: Mapped[str | None] = mapped_column(String(64))
    totp_enabled: Mapped[bool] = mapped_column(default=False)
    # The last time step a code was accepted for: a code works once.
    totp_last_step: Mapped[int | None]
    # Raised on deactivation: the sessions opened before stay ended after a reactivation.
    session_epoch: Mapped[int] = mapped_column(default=0)

    def set_password(self, password: str) -> None:
        self.password_hash = generate_password_hash(password)

    def check_password(self, password: str) -> bool:
        return check_password_hash(self.password_hash, password)

    @property
    def session_stamp(self) -> str:
        """A fingerprint of the password hash kept in the session: setting a new password
        signs out every session that was opened with the old one; so does a new epoch."""
        seed = self.password_hash + (f":{self.session_epoch}" if self.session_epoch else "")
        return hashlib.sha256(seed.encode()).hexdigest()[:20]

    @property
    def display_name(self) -> str:
        return self.name or self.email

    @property
    def is_owner(self) -> bool:
        return self.role == Role.OWNER

    @property
    def may_move_money(self) -> bool:
        """Whether this account may capture, void and refund payments."""
        return self.is_owner or self.can_refund


class AuditEntry(Model):
    """Who changed what in the catalogue, the stock or the staff accounts, and when."""

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=now_utc, index=True)
    actor: Mapped[str] = mapped_column(String(254))  # the staff member's email
    action: Mapped[str] = mapped_column(String(40))  # "product created", "staff deactivated"…
    subject: Mapped[str] = mapped_column(String(254))  # what it was done to, by name
    detail: Mapped[str] = mapped_column(Text, default="")


class OrderNote(Model):
    """A staff member's internal note on an order: shown in the order's history in the admin,
    never to the customer."""

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("order.id"), index=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=now_utc)
    author: Mapped[str] = mapped_column(String(254))  # the staff member's email
    author_name: Mapped[str] = mapped_column(String(200), default="")
    text: Mapped[str] = mapped_column(Text)
