"""Rate limits shared by every process: a fixed-window counter per key, kept in the database.

One atomic ``INSERT … ON CONFLICT DO UPDATE … RETURNING`` per request, on SQLite and PostgreSQL
alike, so N web processes on M machines count together without another service to run.
"""

from __future__ import annotations

import functools
import time
from datetime import datetime

from flask import abort, current_app, request
from sqlalchemy import DateTime, String, delete
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Mapped, mapped_column

from storefront.extensions import Model, db
from storefront.timeutil import now_utc


class RateCounter(Model):
    key: Mapped[str] = mapped_column(String(120), primary_key=True)
    window: Mapped[int] = mapped_column(primary_key=True)  # start of the window, epoch seconds
    count: Mapped[int] = mapped_column(default=0)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=now_utc)


def hit(key: str, limit: int, per: int) -> bool:
    """Count one request for ``key``; False once more than ``limit`` came in this window."""
    window = int(time.time()) // per * per
    insert = pg_insert if db.engine.dialect.name == "postgresql" else sqlite_insert
    statement = (
        insert(RateCounter)
        .values(key=key, window=window, count=1, updated_at=now_utc())
        .on_conflict_do_update(
            index_elements=["key", "window"],
            set_={"count": RateCounter.count + 1, "updated_at": now_utc()},
        )
        .returning(RateCounter.count)
    )
    count = db.session.execute(statement).scalar_one()
    db.session.commit()
    return count <= limit


def count(key: str, per: int) -> int:
    """How many requests ``key`` made in the current window (nothing is counted by asking)."""
    window = int(time.time()) // per * per
    found = db.session.get(RateCounter, (key, window))
    return found.count if found else 0


def limited(name: str, limit: int, per: int = 60):
    """Answer 429 to a client that sends more than ``limit`` requests per ``per`` seconds."""

    def decorate(view):
        @functools.wraps(view)
        def wrapper(*args, **kwargs):
            if current_app.config["RATELIMIT_ENABLED"]:
                key = f"{name}:{request.remote_addr or '-'}"
                if not hit(key, limit, per):
                    abort(429)
            return view(*args, **kwargs)

        return wrapper

    return decorate


def forget_old(older_than: int = 3600) -> None:
    db.session.execute(delete(RateCounter).where(RateCounter.window < time.time() - older_than))
    db.session.commit()
