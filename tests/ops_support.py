"""Rows for the operations tests: orders and payment attempts in a given state, directly."""

from __future__ import annotations

import itertools
import secrets
from datetime import timedelta

from storefront.extensions import db
from storefront.orders.models import Order, OrderState
from storefront.payments.models import PaymentAttempt
from storefront.timeutil import now_utc

_numbers = itertools.count(1)


def make_order(state: str = OrderState.PENDING_PAYMENT, total: int = 1250) -> Order:
    order = Order(
        number=f"T{next(_numbers):06d}{secrets.token_hex(2).upper()}",
        receipt_token=secrets.token_urlsafe(32),
        state=state,
        email="ops@example.test",
        name="Ops Test",
        address="1 Test Street",
        city="Testville",
        postcode="T1",
        country="IE",
        currency="EUR",
        total=total,
        payment_due_by=now_utc() + timedelta(hours=1),
    )
    db.session.add(order)
    db.session.commit()
    return order


def make_attempt(order: Order, state: str, gateway: str = "rbs", age: float = 0, **values):
    attempt = PaymentAttempt(
        order_id=order.id,
        seq=1 + len(order.attempts),
        gateway=gateway,
        reference=f"{order.number}-{1 + len(order.attempts)}",
        token=secrets.token_urlsafe(32),
        state=state,
        amount=order.total,
        currency=order.currency,
        created_at=now_utc() - timedelta(seconds=age),
        **values,
    )
    db.session.add(attempt)
    db.session.commit()
    return attempt
