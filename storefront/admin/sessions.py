"""Staff sign-ins that ended: a signed cookie cannot be taken back from a browser, so signing
out records the sign-in's id here, and a cookie naming a recorded id signs no one in again
(a copy saved before signing out is worth nothing). Ids older than the longest sign-in are
forgotten."""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import DateTime, String, delete
from sqlalchemy.orm import Mapped, mapped_column

from storefront.extensions import Model, db
from storefront.timeutil import now_utc


class EndedSignIn(Model):
    sid: Mapped[str] = mapped_column(String(64), primary_key=True)
    ended_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=now_utc)


def new_sid() -> str:
    """The id of a new sign-in (128 random bits)."""
    return secrets.token_urlsafe(16)


def has_ended(sid: str) -> bool:
    return db.session.get(EndedSignIn, sid) is not None


def end(sid: str) -> None:
    """Record that the sign-in ``sid`` ended, and forget those too old to matter."""
    hours = float(current_app.config["ADMIN_SESSION_HOURS"])
    db.session.execute(
        delete(EndedSignIn).where(EndedSignIn.ended_at < now_utc() - timedelta(hours=hours))
    )
    if db.session.get(EndedSignIn, sid) is None:
        db.session.add(EndedSignIn(sid=sid))
    db.session.commit()
