"""An order's dispatch: the carrier and tracking number, who recorded it and when."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, String, select
from sqlalchemy.orm import Mapped, mapped_column

from storefront.extensions import Model, db
from storefront.orders.models import Order
from storefront.timeutil import now_utc


class Shipment(Model):
    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("order.id"), unique=True)
    carrier: Mapped[str] = mapped_column(String(60))
    tracking: Mapped[str] = mapped_column(String(60))
    dispatched_by: Mapped[str] = mapped_column(String(254))
    dispatched_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=now_utc)


def shipment_of(order: Order) -> Shipment | None:
    return db.session.execute(
        select(Shipment).where(Shipment.order_id == order.id)
    ).scalar_one_or_none()
