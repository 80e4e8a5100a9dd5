"""Readiness: the checks behind ``/readyz`` and ``flask ops check``.

Each check answers ``(name, ok, detail)`` and is cheap: one small query each, no gateway call.

- ``database``: a connection answers, and the shop's tables are there (for SQLite, the file
  exists: opening a missing file would silently create an empty one);
- ``migrations``: the database's Alembic revision is the migrations' head. A database made by
  ``db.create_all()`` (the tests', ``flask seed`` on a fresh file) has no ``alembic_version``
  table; it counts as current unless ``STOREFRONT_READY_REQUIRE_MIGRATIONS`` is on, and in
  production it never does;
- ``outbox``: no unsent mail is older than ``STOREFRONT_OUTBOX_STUCK_AFTER`` seconds.
"""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass
from datetime import timedelta
from pathlib import Path

from flask import current_app
from sqlalchemy import func, inspect, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from storefront.extensions import db
from storefront.timeutil import as_utc, now_utc

MIGRATIONS = Path(__file__).resolve().parent.parent.parent / "migrations"


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str

    def as_dict(self) -> dict:
        return asdict(self)


@functools.cache
def migration_heads(directory: str = str(MIGRATIONS)) -> tuple[str, ...]:
    """The head revision(s) of the migrations shipped with this code (read once per process)."""
    from alembic.script import ScriptDirectory

    return tuple(sorted(ScriptDirectory(directory).get_heads()))


def checks() -> list[Check]:
    """Every readiness check, in order; after a failed database check the others are skipped."""
    database = check_database()
    if not database.ok:
        return [
            database,
            Check("migrations", False, "skipped: no database"),
            Check("outbox", False, "skipped: no database"),
        ]
    return [database, check_migrations(), check_outbox()]


def ready(results: list[Check]) -> bool:
    return all(check.ok for check in results)


def check_database() -> Check:
    url = make_url(current_app.config["SQLALCHEMY_DATABASE_URI"])
    path = url.database if url.get_backend_name() == "sqlite" else None
    if path and path != ":memory:" and not Path(path).is_file():  # a file, not in memory
        return Check("database", False, "the SQLite file does not exist")
    try:
        with db.engine.connect() as connection:
            connection.execute(text("SELECT 1 FROM payment_attempt WHERE 1 = 0"))
    except SQLAlchemyError as exc:
        return Check("database", False, _reason(exc))
    return Check("database", True, "reachable")


def check_migrations() -> Check:
    heads = migration_heads()
    try:
        with db.engine.connect() as connection:
            if not inspect(connection).has_table("alembic_version"):
                if _migrations_required():
                    return Check("migrations", False, "no alembic_version: never migrated")
                return Check("migrations", True, "not managed by migrations (create_all)")
            rows = connection.execute(text("SELECT version_num FROM alembic_version"))
            found = tuple(sorted(rows.scalars()))
    except SQLAlchemyError as exc:
        return Check("migrations", False, _reason(exc))
    if found != heads:
        return Check(
            "migrations",
            False,
            f"database at {', '.join(found) or 'nothing'}; code expects {', '.join(heads)}",
        )
    return Check("migrations", True, f"at {', '.join(heads)}")


def check_outbox() -> Check:
    from storefront.orders.models import OutboxMessage

    limit = float(current_app.config["OUTBOX_STUCK_AFTER"])
    try:
        oldest = db.session.execute(
            select(func.min(OutboxMessage.created_at)).where(OutboxMessage.sent_at.is_(None))
        ).scalar()
    except SQLAlchemyError as exc:
        db.session.rollback()
        return Check("outbox", False, _reason(exc))
    finally:
        db.session.remove()
    if oldest is not None and as_utc(oldest) < now_utc() - timedelta(seconds=limit):
        age = int((now_utc() - as_utc(oldest)).total_seconds())
        return Check("outbox", False, f"an unsent mail is {age} s old (limit {int(limit)} s)")
    return Check("outbox", True, f"no unsent mail older than {int(limit)} s")


def _migrations_required() -> bool:
    config = current_app.config
    return bool(config["READY_REQUIRE_MIGRATIONS"]) or config["ENV"] == "production"


def _reason(exc: Exception) -> str:
    # The driver's first line says what failed; never the URL (it may carry a password).
    first = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return (type(exc).__name__ + ": " + (first[0] if first else ""))[:200]
