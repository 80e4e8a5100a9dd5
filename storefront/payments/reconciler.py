"""The reconciler: what no browser or callback will tell us, we ask the gateways.

``flask payments reconcile`` (cron, or the Procfile's ``worker`` loop) resolves open payments
whose customer never came back and whose callback never came, acknowledges held payments of
gateways that finish on our acknowledgement, learns the outcome of back-office calls whose answer
was lost, and expires unpaid orders past their payment window, releasing their stock once.

Safe in any number of processes at once: each attempt is claimed (a conditional update of its
``checked_at``) before its gateway is asked, and every change is a guarded transition.
"""

from __future__ import annotations

from datetime import timedelta

from flask import current_app
from sqlalchemy import select

from storefront.extensions import db
from storefront.gateways import get_gateway
from storefront.gateways.base import Gateway
from storefront.orders import service as orders
from storefront.orders.mail import drain
from storefront.orders.models import Order, OrderState
from storefront.payments.backoffice import RECONCILER, resolve_unknown_action
from storefront.payments.models import OPEN_STATES, AttemptState, PaymentAttempt
from storefront.payments.settle import claim_check, may_ask, settle
from storefront.timeutil import as_utc, now_utc


def reconcile(older_than: float = 60, limit: int = 200) -> dict[str, int]:
    """One pass. ``older_than``: leave younger attempts to their customers, in seconds."""
    cutoff = now_utc() - timedelta(seconds=older_than)
    counts = {
        "checked": 0,
        "changed": 0,
        "actions_resolved": 0,
        "expired_orders": 0,
        "mails_sent": 0,
    }
    configured = current_app.config["GATEWAYS"]
    candidates = (
        db.session.execute(
            select(PaymentAttempt)
            .where(
                PaymentAttempt.state.in_((*OPEN_STATES, AttemptState.AUTHORIZED)),
                PaymentAttempt.created_at < cutoff,
                PaymentAttempt.action.is_(None),
                PaymentAttempt.gateway.in_(configured),
            )
            .order_by(PaymentAttempt.id)
            .limit(limit)
        )
        .scalars()
        .all()
    )
    for attempt in candidates:
        gateway = get_gateway(attempt.gateway)
        # A held payment waits for the operator, unless its gateway finishes on our Ack.
        if attempt.state == AttemptState.AUTHORIZED and not gateway.acknowledges:
            continue
        if _too_early(attempt, gateway, older_than):
            continue
        if not claim_check(attempt, older_than / 2):
            continue  # another process has just asked
        before = attempt.state
        settle(attempt, RECONCILER)
        counts["checked"] += 1
        counts["changed"] += attempt.state != before
    stuck = (
        db.session.execute(
            select(PaymentAttempt)
            .where(
                PaymentAttempt.action.is_not(None),
                PaymentAttempt.action_at < cutoff,
                PaymentAttempt.gateway.in_(configured),
            )
            .limit(limit)
        )
        .scalars()
        .all()
    )
    for attempt in stuck:
        if claim_check(attempt, older_than / 2):
            counts["actions_resolved"] += resolve_unknown_action(attempt)
    counts["expired_orders"] = expire_due_orders()
    # Mails whose sender died between the commit and the send go out now.
    counts["mails_sent"] = drain()
    return counts


def _too_early(attempt: PaymentAttempt, gateway: Gateway, default: float) -> bool:
    """Whether asking about a payment whose customer has not come back would do harm now.

    Gateways where an early status query interferes with the customer still on their page say
    so: ``first_check_after`` (seconds after the hand-off) and ``recheck_pending_after``
    (seconds between queries that found it undecided). InterPay cancels a session on the second
    GetResult before its page finished, yet reverses an approval not acknowledged within three
    minutes, so its adapter sets both.
    """
    if attempt.returned_at is not None or attempt.state == AttemptState.AUTHORIZED:
        return False
    now = now_utc()
    first = default if gateway.first_check_after is None else gateway.first_check_after
    if as_utc(attempt.created_at) > now - timedelta(seconds=first):
        return True
    return not may_ask(attempt, gateway)


def expire_due_orders(limit: int = 100) -> int:
    """Expire unpaid orders past their payment window that no payment is still open for.

    An attempt whose outcome we do not know keeps its order: nothing is cancelled without the
    gateway's word (the pass above asks it first).
    """
    open_attempt = (
        select(PaymentAttempt.id)
        .where(PaymentAttempt.order_id == Order.id, PaymentAttempt.state.in_(OPEN_STATES))
        .exists()
    )
    due = (
        db.session.execute(
            select(Order.id)
            .where(
                Order.state == OrderState.PENDING_PAYMENT,
                Order.payment_due_by < now_utc(),
                ~open_attempt,
            )
            .limit(limit)
        )
        .scalars()
        .all()
    )
    expired = 0
    for order_id in due:
        order = orders.lock(order_id)
        if orders.transition(
            order,
            OrderState.EXPIRED,
            "payment window closed without a payment; stock released",
        ):
            expired += 1
        db.session.commit()
    return expired
