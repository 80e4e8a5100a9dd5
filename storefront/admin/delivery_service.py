"""Saving delivery methods, each change recorded with who made it. A saved method moves the
catalogue pages' cache version by itself (``DeliveryMethod`` is watched)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from storefront.admin import audit
from storefront.checkout.models import DeliveryMethod
from storefront.extensions import db


@dataclass(frozen=True)
class DeliveryMethodData:
    name: str
    price: int
    free_over: int | None
    countries: str
    active: bool
    position: int


def methods() -> list[DeliveryMethod]:
    """Every delivery method, inactive ones included, in checkout order."""
    return list(
        db.session.execute(
            select(DeliveryMethod).order_by(DeliveryMethod.position, DeliveryMethod.id)
        ).scalars()
    )


def save_delivery_method(
    method: DeliveryMethod | None, data: DeliveryMethodData, actor: str
) -> DeliveryMethod:
    """Create (``method`` None) or update a delivery method, and record the change."""
    creating = method is None
    if method is None:
        method = DeliveryMethod()
        db.session.add(method)
    method.name, method.price, method.free_over = data.name, data.price, data.free_over
    method.countries, method.active, method.position = data.countries, data.active, data.position
    detail = (
        f"price {data.price}, free over {data.free_over if data.free_over is not None else '—'}, "
        f"countries {data.countries}, {'active' if data.active else 'inactive'}"
    )
    audit.record(
        actor,
        "delivery method created" if creating else "delivery method edited",
        data.name,
        detail,
    )
    db.session.commit()
    return method
