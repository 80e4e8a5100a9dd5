"""What the operator's pages read: orders by filter, one order whole, payments left open.

Each page loads what it shows in a fixed, small number of queries (eager loading), whatever
the number of rows: a busy day must not make the list slower one order at a time.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import exists, func, or_, select
from sqlalchemy.orm import selectinload

from storefront.extensions import db
from storefront.orders.models import Order
from storefront.payments.models import OPEN_STATES, AttemptState, PaymentAttempt

# Payments that still need someone's attention: undecided, held, or an action under way.
RECONCILE_STATES = (*OPEN_STATES, AttemptState.AUTHORIZED)


@dataclass(frozen=True)
class OrderFilters:
    q: str = ""
    state: str = ""
    gateway: str = ""
    date_from: date | None = None
    date_to: date | None = None


def _start_of(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def orders_page(filters: OrderFilters, page: int, per_page: int):
    """One page of orders, newest first, with their attempts loaded (a Pagination)."""
    query = select(Order).options(selectinload(Order.attempts))
    if filters.q:
        text = filters.q.strip()
        query = query.where(
            or_(
                Order.number.contains(text, autoescape=True),
                func.lower(Order.email).contains(text.lower(), autoescape=True),
            )
        )
    if filters.state:
        query = query.where(Order.state == filters.state)
    if filters.gateway:
        query = query.where(
            exists().where(
                PaymentAttempt.order_id == Order.id, PaymentAttempt.gateway == filters.gateway
            )
        )
    # Dates are days in UTC, the "to" day included.
    if filters.date_from:
        query = query.where(Order.created_at >= _start_of(filters.date_from))
    if filters.date_to:
        query = query.where(Order.created_at < _start_of(filters.date_to + timedelta(days=1)))
    query = query.order_by(Order.created_at.desc(), Order.id.desc())
    return db.paginate(query, page=page, per_page=per_page, error_out=False, count=True)


def order_whole(number: str) -> Order | None:
    """The order with its lines, history, attempts and their evidence, or None."""
    return db.session.execute(
        select(Order)
        .where(Order.number == number)
        .options(
            selectinload(Order.lines),
            selectinload(Order.events),
            selectinload(Order.attempts).selectinload(PaymentAttempt.events),
        )
    ).scalar_one_or_none()


def attempt_of(order: Order, attempt_id: int) -> PaymentAttempt | None:
    return next((a for a in order.attempts if a.id == attempt_id), None)


def open_payments(limit: int = 200) -> list[PaymentAttempt]:
    """Payments not settled yet, oldest first, with their orders."""
    return list(
        db.session.execute(
            select(PaymentAttempt)
            .where(
                or_(
                    PaymentAttempt.state.in_(RECONCILE_STATES),
                    PaymentAttempt.action.is_not(None),
                )
            )
            .options(selectinload(PaymentAttempt.order))
            .order_by(PaymentAttempt.created_at, PaymentAttempt.id)
            .limit(limit)
        ).scalars()
    )


def gateway_names() -> list[str]:
    """Every gateway that appears on a payment (a gateway no longer offered still has orders)."""
    return list(
        db.session.execute(
            select(PaymentAttempt.gateway).distinct().order_by(PaymentAttempt.gateway)
        ).scalars()
    )
