"""Which delivery methods a customer may choose, and what the chosen one costs."""

from __future__ import annotations

from sqlalchemy import select

from storefront.checkout.models import DeliveryMethod
from storefront.extensions import db


def available(country: str) -> list[DeliveryMethod]:
    """The active methods serving ``country``, in the admin's order; empty: not served."""
    methods = db.session.execute(
        select(DeliveryMethod)
        .where(DeliveryMethod.active.is_(True))
        .order_by(DeliveryMethod.position, DeliveryMethod.id)
    ).scalars()
    return [m for m in methods if m.serves(country)]


def find(method_id: int, country: str) -> DeliveryMethod | None:
    """The method ``method_id`` if it is active and serves ``country`` (else None)."""
    return next((m for m in available(country) if m.id == method_id), None)
