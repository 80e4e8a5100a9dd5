"""Time in one place: timezone-aware UTC, stored as such."""

from datetime import UTC, datetime


def now_utc() -> datetime:
    return datetime.now(UTC)


def as_utc(value: datetime) -> datetime:
    """SQLite hands back naive datetimes for what we stored as UTC; make them aware again."""
    return value if value.tzinfo else value.replace(tzinfo=UTC)
