"""Alerts as data: what must never happen, or needs a person, counted from the database.

``alerts()`` lists the alerts that are firing (the admin's reconciliation page shows them);
``counts()`` gives every alert's count, firing or not (``/metrics`` exports each as
``storefront_alert{alert=…}``, so that the alerting rules stay in Prometheus).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from flask import current_app
from sqlalchemy import func, select

from storefront.extensions import db
from storefront.gateways.base import EventKind
from storefront.orders.models import Order, OrderState, OutboxMessage
from storefront.payments.models import AttemptState, PaymentAttempt, PaymentEvent
from storefront.timeutil import now_utc

S = AttemptState
# States that mean money came in: each must rest on a word from the gateway.
MONEY_IN = (S.PAID, S.AUTHORIZED, S.PARTIALLY_REFUNDED, S.REFUNDED)


@dataclass(frozen=True)
class Alert:
    name: str
    title: str
    advice: str
    count: int


# name → (title, what the person should do)
ALERTS = {
    "paid_without_confirmation": (
        "Payments marked paid without the gateway's word",
        "Must never happen: no gateway answer or callback is on record. Check each at the "
        "gateway's back office at once.",
    ),
    "orders_on_hold": (
        "Orders on hold",
        "The gateway's answer did not fit the order (amount, currency or payment): decide "
        "from the order's page.",
    ),
    "callback_storm": (
        "Orders with too many callbacks",
        "A gateway keeps calling about one order: it may not accept our answers, or someone "
        "is replaying them.",
    ),
    "unknown_payments_old": (
        "Payments unknown for too long",
        "The gateway's answer could not be had for a while: ask it from this page.",
    ),
    "outbox_stuck": (
        "Confirmation mails not sent",
        "Mails have waited too long: check the mail server (STOREFRONT_MAIL_URL).",
    ),
}


def counts() -> dict[str, int]:
    """Every alert's count, 0 when it is not firing."""
    config = current_app.config
    now = now_utc()
    confirmed = (
        select(PaymentEvent.id)
        .where(
            PaymentEvent.attempt_id == PaymentAttempt.id,
            PaymentEvent.kind.in_((EventKind.RESPONSE, EventKind.CALLBACK)),
        )
        .exists()
    )
    callbacks_per_order = (
        select(PaymentAttempt.order_id)
        .join(PaymentEvent, PaymentEvent.attempt_id == PaymentAttempt.id)
        .where(PaymentEvent.kind == EventKind.CALLBACK)
        .group_by(PaymentAttempt.order_id)
        .having(func.count(PaymentEvent.id) > int(config["ALERT_CALLBACKS_PER_ORDER"]))
        .subquery()
    )
    unknown_since = now - timedelta(seconds=float(config["ALERT_UNKNOWN_AFTER"]))
    outbox_since = now - timedelta(seconds=float(config["OUTBOX_STUCK_AFTER"]))
    count = func.count()
    queries = {
        "paid_without_confirmation": select(count)
        .select_from(PaymentAttempt)
        .where(PaymentAttempt.state.in_(MONEY_IN), ~confirmed),
        "orders_on_hold": select(count).select_from(Order).where(Order.state == OrderState.ON_HOLD),
        "callback_storm": select(count).select_from(callbacks_per_order),
        "unknown_payments_old": select(count)
        .select_from(PaymentAttempt)
        .where(PaymentAttempt.state == S.UNKNOWN, PaymentAttempt.created_at < unknown_since),
        "outbox_stuck": select(count)
        .select_from(OutboxMessage)
        .where(OutboxMessage.sent_at.is_(None), OutboxMessage.created_at < outbox_since),
    }
    return {name: int(db.session.execute(query).scalar() or 0) for name, query in queries.items()}


def alerts() -> list[Alert]:
    """The alerts firing now, in the order of :data:`ALERTS`."""
    return [
        Alert(name, *ALERTS[name], count=count) for name, count in counts().items() if count > 0
    ]
