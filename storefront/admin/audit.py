"""The record of who changed what in the catalogue, the stock and the staff accounts."""

from __future__ import annotations

from sqlalchemy import select

from storefront.admin.models import AuditEntry
from storefront.extensions import db


def record(actor: str, action: str, subject: str, detail: str = "") -> None:
    """Write down one change, in the caller's transaction (committed with the change)."""
    db.session.add(AuditEntry(actor=actor, action=action, subject=subject[:254], detail=detail))


def latest(limit: int = 100) -> list[AuditEntry]:
    return list(
        db.session.execute(select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)).scalars()
    )
