"""Ending an order's payments that no gateway call can end: asked about first, then cancelled
on our side. Used when staff cancel an unpaid order and when a customer changes an order
they have not paid. The gateway's later word still applies: if the money arrives after all,
``payments.settle`` puts the order on hold for a person, never losing it nor keeping it in
silence.
"""

from __future__ import annotations

from sqlalchemy import update

from storefront.database import rows_changed
from storefront.extensions import db
from storefront.gateways import configured
from storefront.gateways.base import EventKind
from storefront.orders.models import Order
from storefront.payments import evidence
from storefront.payments.models import (
    ALLOWED_FROM,
    OPEN_STATES,
    AttemptState,
    Cause,
    PaymentAttempt,
)
from storefront.payments.settle import may_ask, settle
from storefront.timeutil import now_utc

ENDED_HERE = "The order was cancelled by the shop before the payment was completed."


def ask_open_payments(order: Order, cause: Cause) -> None:
    """Ask the gateway about each payment still open before ending it on our side: a customer
    who has just paid makes the order paid, and the cancel then refuses (the state check
    under the lock, in ``_finish``)."""
    for attempt in [a for a in order.attempts if a.state in OPEN_STATES]:
        gateway = configured(attempt.gateway)
        if gateway is not None and may_ask(attempt, gateway):
            settle(attempt, cause)
    db.session.refresh(order)


def end_here(attempt: PaymentAttempt, cause: Cause) -> None:
    """End a payment the gateway cannot end for us: cancelled on our side, in the caller's
    transaction. The gateway's later word still applies (``ALLOWED_FROM``: a cancelled
    payment may still become paid), so late money is seen."""
    ended = rows_changed(
        update(PaymentAttempt)
        .where(
            PaymentAttempt.id == attempt.id,
            PaymentAttempt.state.in_(ALLOWED_FROM[AttemptState.CANCELLED]),
            PaymentAttempt.action.is_(None),
        )
        .values(state=AttemptState.CANCELLED, message=ENDED_HERE, updated_at=now_utc())
        .execution_options(synchronize_session=False)
    )
    if ended == 1:
        evidence.add(
            attempt.id,
            EventKind.DECISION,
            f"{cause}: {attempt.state} → cancelled on our side (the gateway has no call to end "
            "an unpaid payment); a late payment puts the order on hold",
            cause,
        )
