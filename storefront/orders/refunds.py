"""What was refunded of an order, line by line: so that no line is refunded beyond its quantity.

A row is written, under the order's lock, before the gateway is asked for the money, which
reserves the quantity against a second click or a colleague; it is confirmed when the gateway
confirmed the refund, and deleted when the gateway refused it. A row whose gateway answer was
lost stays unconfirmed (and keeps its quantity reserved) until a person looks.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, String, Text, func, select
from sqlalchemy.orm import Mapped, mapped_column

from storefront.extensions import Model, db
from storefront.orders.models import Order
from storefront.timeutil import now_utc


class RefundLine(Model):
    """Some of one order line (or, with no line, the order's delivery) refunded."""

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("order.id"), index=True)
    order_line_id: Mapped[int | None] = mapped_column(ForeignKey("order_line.id"), index=True)
    quantity: Mapped[int]
    amount: Mapped[int]  # minor units: the frozen unit price times the quantity
    restock: Mapped[bool] = mapped_column(default=False)
    attempt_id: Mapped[int] = mapped_column(ForeignKey("payment_attempt.id"))
    # One refund's rows share it: the payment's reference, what it had refunded before, the
    # refund's amount (as BPC/RBS's externalRefundId names the same refund).
    refund_ref: Mapped[str] = mapped_column(String(80))
    reason: Mapped[str] = mapped_column(Text, default="")
    actor: Mapped[str] = mapped_column(String(254))  # the staff member's email
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=now_utc)
    confirmed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


def refunded_quantities(order: Order) -> dict[int | None, int]:
    """How much of each line (None: the delivery) is refunded or reserved for a refund."""
    rows = db.session.execute(
        select(RefundLine.order_line_id, func.sum(RefundLine.quantity))
        .where(RefundLine.order_id == order.id)
        .group_by(RefundLine.order_line_id)
    ).all()
    return {line_id: int(total) for line_id, total in rows}


def refunds_of(order: Order) -> list[RefundLine]:
    return list(
        db.session.execute(
            select(RefundLine).where(RefundLine.order_id == order.id).order_by(RefundLine.id)
        ).scalars()
    )
