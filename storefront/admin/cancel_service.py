"""Cancelling an order by hand: one the customer never paid, or one whose payment is only held.

A held payment is voided at its gateway through the back office (the payments permission is
needed); the void's own settlement moves the order to cancelled. A payment the customer may
still be making cannot be ended at any of our gateways (BPC/RBS ``reverse.do`` refuses an order
that was registered but not paid; AltaPay and InterPay have no call for it), so it is ended on
our side only. If its money arrives after all, ``payments.settle`` puts the order on hold for a
person: a cancelled order's late payment is never lost nor kept in silence.
"""

from __future__ import annotations

from storefront.admin import audit
from storefront.admin.models import StaffUser
from storefront.extensions import db
from storefront.orders import service
from storefront.orders.models import Order, OrderState
from storefront.payments import backoffice, ending
from storefront.payments.models import (
    OPEN_STATES,
    Actor,
    AttemptState,
    Cause,
    PaymentAttempt,
)

CANCELLABLE = (OrderState.PENDING_PAYMENT, OrderState.AUTHORIZED)
HOLD_NEEDS_PERMISSION = (
    "Cancelling this order voids its held payment, and your account may not void payments: "
    "ask an owner for the payments permission. Nothing was changed and nothing was sent to "
    "the gateway."
)


class NotCancelled(Exception):
    """The order was not cancelled; the message, for the operator, says why."""


def cancellable(order: Order) -> bool:
    return order.state in CANCELLABLE


def held(order: Order) -> list[PaymentAttempt]:
    """The order's payments whose money is held on the customer's card."""
    return [a for a in order.attempts if a.state == AttemptState.AUTHORIZED]


def needs_permission(order: Order) -> bool:
    return bool(held(order))


def cancel_order(order: Order, staff: StaffUser, reason: str) -> Order:
    """Cancel ``order`` for ``reason``: void its held payments, end its open ones on our
    side, give its stock back, and record who did it. Returns the order as it is now.

    :raise NotCancelled: the order is in no state to cancel (a second click finds it
        cancelled already), a held payment needs a permission ``staff`` lacks, an action is
        under way on one of its payments, or the gateway refused or did not answer the void.
    """
    _check_cancellable(order)
    if needs_permission(order) and not staff.may_move_money:
        raise NotCancelled(HOLD_NEEDS_PERMISSION)
    if any(a.action for a in order.attempts):
        raise NotCancelled(
            "An action on one of this order's payments is under way: wait for it to finish, "
            "then try again. Nothing was changed."
        )
    cause = Cause(Actor.STAFF, f"order cancelled by {staff.email}", staff.email)
    holds = {a.id for a in held(order)}
    ending.ask_open_payments(order, cause)
    if {a.id for a in held(order)} - holds:
        # The customer authorised a payment just now: the operator looks again before voiding
        # money they did not see held (and may lack the permission to).
        raise NotCancelled(
            "The customer has just paid: the payment is held now. Look at the order again "
            "before cancelling it. Nothing was changed."
        )
    for attempt in held(order):
        try:
            backoffice.void(attempt, staff.email)
        except backoffice.ActionRefused as refused:
            raise NotCancelled(
                f"The hold could not be voided, so the order was not cancelled. {refused}"
            ) from refused
        except backoffice.ActionUnknown as lost:
            raise NotCancelled(
                "The gateway did not answer the void; its outcome will be checked "
                "automatically. The order was not cancelled."
            ) from lost
    return _finish(order, staff, reason, cause, voided=bool(holds))


def _check_cancellable(order: Order) -> None:
    if not cancellable(order):
        raise NotCancelled(
            f"Order {order.number} is {order.state.replace('_', ' ')}: only an order that is "
            "waiting for payment or whose payment is held can be cancelled. Nothing was changed."
        )


def _finish(order: Order, staff: StaffUser, reason: str, cause: Cause, voided: bool) -> Order:
    order = service.lock(order.id)
    # A void's settlement moves the order to cancelled itself (stock included).
    if not (voided and order.state == OrderState.CANCELLED):
        problem = None
        try:
            _check_cancellable(order)
        except NotCancelled as refused:
            problem = str(refused)
        if problem is None and held(order):
            problem = (
                "A payment of this order is held (the customer has just paid, or the void did "
                "not release it): look again at the order. Nothing was changed."
            )
        if problem is not None:
            db.session.rollback()
            raise NotCancelled(problem)
    for attempt in order.attempts:
        if attempt.state in OPEN_STATES:
            ending.end_here(attempt, cause)
    if order.state == OrderState.CANCELLED:
        service.note(order, f"cancelled by {staff.email}: {reason}")
    else:
        service.transition(
            order, OrderState.CANCELLED, f"cancelled by {staff.email}: {reason}; stock released"
        )
    audit.record(staff.email, "order.cancel", order.number, reason)
    db.session.commit()
    return order
