"""What the operator's pages read: orders by filter, one order whole, payments left open.

Each page loads what it shows in a fixed, small number of queries (eager loading), whatever
the number of rows: a busy day must not make the list slower one order at a time.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import exists, func, or_, select
from sqlalchemy.orm import selectinload

from storefront.admin.models import OrderNote
from storefront.extensions import db
from storefront.orders.models import Order, OrderEvent, OrderState
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


@dataclass(frozen=True)
class Takings:
    """Money captured in one currency on the orders paid in a period."""

    currency: str
    amount: int  # minor units, before any refund
    orders: int


OTHER_ORDERS_SHOWN = 20


def _start_of(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def orders_page(filters: OrderFilters, page: int, per_page: int):
    """One page of orders, newest first, with their attempts loaded (a Pagination)."""
    return db.paginate(
        orders_matching(filters), page=page, per_page=per_page, error_out=False, count=True
    )


def orders_matching(filters: OrderFilters):
    """The query of the orders the filters select, newest first, with their attempts loaded."""
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
    return query.order_by(Order.created_at.desc(), Order.id.desc())


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


def takings(since: datetime, until: datetime) -> list[Takings]:
    """What was captured, by currency, on the orders that moved to paid in [since, until).

    One aggregate query. An order moves to paid once (``ORDER_PIPELINE``); a note written to
    the history of a paid order repeats the state, so the move is the event that changes it.
    """
    paid = select(OrderEvent.order_id).where(
        OrderEvent.to_state == OrderState.PAID,
        or_(OrderEvent.from_state.is_(None), OrderEvent.from_state != OrderState.PAID),
        OrderEvent.at >= since,
        OrderEvent.at < until,
    )
    rows = db.session.execute(
        select(
            PaymentAttempt.currency,
            func.sum(PaymentAttempt.captured),
            func.count(func.distinct(PaymentAttempt.order_id)),
        )
        .where(PaymentAttempt.order_id.in_(paid), PaymentAttempt.captured > 0)
        .group_by(PaymentAttempt.currency)
        .order_by(PaymentAttempt.currency)
    ).all()
    return [Takings(currency, int(amount), int(orders)) for currency, amount, orders in rows]


def attention_counts(unknown_before: datetime) -> dict[str, int]:
    """How many payments and orders wait for someone, each counted by the database."""
    count = func.count()
    queries = {
        "open_payments": select(count)
        .select_from(PaymentAttempt)
        .where(or_(PaymentAttempt.state.in_(OPEN_STATES), PaymentAttempt.action.is_not(None))),
        "held_orders": select(count).select_from(Order).where(Order.state == OrderState.AUTHORIZED),
        "orders_on_hold": select(count).select_from(Order).where(Order.state == OrderState.ON_HOLD),
        "unknown_payments_old": select(count)
        .select_from(PaymentAttempt)
        .where(
            PaymentAttempt.state == AttemptState.UNKNOWN,
            PaymentAttempt.created_at < unknown_before,
        ),
    }
    return {name: int(db.session.execute(query).scalar() or 0) for name, query in queries.items()}


def other_orders(order: Order, limit: int = OTHER_ORDERS_SHOWN) -> list[Order]:
    """The customer's other orders: the same email whatever its case, newest first."""
    return list(
        db.session.execute(
            select(Order)
            .where(func.lower(Order.email) == order.email.lower(), Order.id != order.id)
            .order_by(Order.created_at.desc(), Order.id.desc())
            .limit(limit)
        ).scalars()
    )


def notes_of(order: Order) -> list[OrderNote]:
    return list(
        db.session.execute(
            select(OrderNote).where(OrderNote.order_id == order.id).order_by(OrderNote.id)
        ).scalars()
    )
