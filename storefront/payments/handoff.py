"""The hand-off: an order goes to a gateway, and a customer goes back to a payment under way.

``start_payment`` commits the attempt *before* the gateway is called and stores the gateway's
id and redirect URL the moment it answers, so no registration is ever forgotten.
``continue_payment`` sends a second click back to the same payment; ``pay_again`` starts a new
attempt only where no payment can still be under way; ``abandon`` releases an order the
customer replaced, only once every one of its payments has definitely failed.
"""

from __future__ import annotations

import json
from datetime import timedelta

from flask import current_app, redirect, render_template, url_for
from sqlalchemy import func, select, update
from werkzeug.wrappers import Response

from storefront.extensions import db
from storefront.gateways import get_gateway
from storefront.gateways.base import (
    Gateway,
    GatewayError,
    GatewayRefused,
    Journal,
    Line,
    PaymentRequest,
)
from storefront.ops import observe
from storefront.orders import basket
from storefront.orders import service as orders
from storefront.orders.basket import LineKind
from storefront.orders.models import Order, OrderState
from storefront.payments import ending, evidence
from storefront.payments.models import (
    FAILED_STATES,
    OPEN_STATES,
    Actor,
    AttemptState,
    Cause,
    PaymentAttempt,
)
from storefront.timeutil import as_utc, now_utc

S = AttemptState
PLACING = Cause(Actor.CUSTOMER, "hand-off to the gateway")
# An attempt stuck in "created" this long was left by a process that died mid-registration.
STALE_START = timedelta(minutes=2)
# Pages of ours that a gateway may be told about besides its callbacks (PaymentRequest's
# ``callback_urls``): AltaPay's last check before it takes the money, and its payment page.
SHOP_PAGES = {
    "verify_order": "payments.altapay_verify_order",
    "form": "payments.altapay_payment_page",
}


class PaymentNotStarted(Exception):
    """The gateway did not register the payment. ``unknown`` when we could not hear its answer."""

    def __init__(self, message: str, unknown: bool):
        super().__init__(message)
        self.unknown = unknown


def start_payment(order: Order, gateway_name: str) -> PaymentAttempt:
    """Create a new attempt for ``order`` and register it with the gateway.

    :raise PaymentNotStarted: the gateway refused, or its answer was lost (``unknown``).
    """
    gateway = get_gateway(gateway_name)
    attempt = _new_attempt(order, gateway)
    journal = Journal()
    try:
        handed = gateway.start(_payment_request(order, attempt, gateway), journal)
    except GatewayRefused as refused:
        _finish_start(attempt, journal, S.FAILED_TO_START, message=str(refused)[:300])
        raise PaymentNotStarted(str(refused), unknown=False) from refused
    except GatewayError as lost:
        # The gateway may have registered it without our hearing: unknown, not failed.
        _finish_start(attempt, journal, S.UNKNOWN, message="")
        raise PaymentNotStarted(str(lost), unknown=True) from lost
    _finish_start(
        attempt,
        journal,
        S.REDIRECTED,
        gateway_id=handed.gateway_id,
        redirect_url=handed.url,
        gateway_data_json=json.dumps(dict(handed.data)),
    )
    return attempt


def _new_attempt(order: Order, gateway: Gateway) -> PaymentAttempt:
    seq = (
        db.session.execute(
            select(func.max(PaymentAttempt.seq)).where(PaymentAttempt.order_id == order.id)
        ).scalar()
        or 0
    ) + 1
    try:
        reference = gateway.reference_for(order.number, seq)
    except ValueError as exc:  # the gateway's id format has no room for another attempt
        raise PaymentNotStarted(str(exc), unknown=False) from exc
    attempt = PaymentAttempt(
        order_id=order.id,
        seq=seq,
        gateway=gateway.name,
        reference=reference,
        token=orders.new_token(),
        amount=order.total,
        currency=order.currency,
    )
    db.session.add(attempt)
    db.session.commit()
    return attempt


def _finish_start(attempt: PaymentAttempt, journal: Journal, state: S, **values) -> None:
    evidence.keep(journal, attempt.id, PLACING)
    db.session.execute(
        update(PaymentAttempt)
        .where(PaymentAttempt.id == attempt.id, PaymentAttempt.state == S.CREATED)
        .values(state=state, updated_at=now_utc(), **values)
        .execution_options(synchronize_session=False)
    )
    db.session.commit()
    db.session.refresh(attempt)
    observe.started(attempt, state)


def _payment_request(order: Order, attempt: PaymentAttempt, gateway: Gateway) -> PaymentRequest:
    public = current_app.config["PUBLIC_URL"]
    return_url = public + url_for(
        "payments.browser_return", gateway=gateway.name, token=attempt.token
    )
    callbacks = {
        kind: public + url_for("payments.callback", gateway=gateway.name, kind=kind)
        for kind in gateway.callback_kinds
    }
    callbacks.update({page: public + url_for(endpoint) for page, endpoint in SHOP_PAGES.items()})
    return PaymentRequest(
        reference=attempt.reference,
        order_number=order.number,
        amount=attempt.amount,
        currency=attempt.currency,
        description=f"Order {order.number}",
        email=order.email,
        customer_name=order.name,
        country=order.country,
        language=order.locale,
        lines=_lines(order),
        return_url=return_url,
        fail_url=return_url,
        callback_urls=callbacks,
    )


def _lines(order: Order) -> tuple[Line, ...]:
    """The frozen order's basket, delivery included, as the adapters take it."""
    return tuple(
        Line(
            line.name,
            line.quantity,
            line.unit_price,
            vat_rate=line.rate,
            vat=line.vat,
            code=line.code,
            shipping=line.kind is LineKind.DELIVERY,
        )
        for line in basket.of(order, current_app.config["VAT_RATES"]).lines
    )


# Coming back to a payment ------------------------------------------------------------------
def abandoned(attempt: PaymentAttempt) -> bool:
    """Open, but nobody can pay it: registration lost, or a start that never finished."""
    if attempt.state == S.UNKNOWN and attempt.gateway_id is None:
        return True
    return attempt.state == S.CREATED and as_utc(attempt.created_at) < now_utc() - STALE_START


def under_way(order: Order) -> bool:
    """Whether a payment of ``order`` may still be going on at the gateway — including one
    the placing request is about to start (the order is committed before its attempt)."""
    attempt = order.latest_attempt
    if attempt is None:
        return order.is_payable and as_utc(order.created_at) > now_utc() - STALE_START
    return attempt.is_open and not abandoned(attempt)


def continue_payment(order: Order) -> Response | tuple[str, int]:
    """A second click or tab on an order already placed: back to the same payment."""
    attempt = order.latest_attempt
    if order.is_payable and attempt is not None:
        if attempt.state == S.REDIRECTED and attempt.redirect_url:
            return redirect(attempt.redirect_url, code=303)
        if attempt.state == S.CREATED:
            # The first click is still registering the payment with the gateway.
            return render_template("orders/preparing.html", order=order), 202
    return redirect(url_for("orders.show", token=order.receipt_token), code=303)


def pay_again(order: Order, gateway_name: str) -> PaymentAttempt | None:
    """ "Try again": a new attempt for ``order``, or None where none may be started — the order
    is paid or closed, or a payment is still under way (never start a second one over it).

    :raise PaymentNotStarted: the gateway did not register the new attempt.
    """
    if not order.is_payable or under_way(order) or past_due(order):
        return None
    return start_payment(order, gateway_name)


def past_due(order: Order) -> bool:
    """Whether the order's payment window has closed: its stock is about to go back, and no
    new payment of it may start (a "try again" must not stretch the hold)."""
    return as_utc(order.payment_due_by) <= now_utc()


def abandon(receipt_token: str, why: str) -> bool:
    """Release an unpaid order the customer replaced by a new one from the same cart.

    Only an order whose every payment attempt has definitely failed is released: one that a
    gateway might still be paying keeps its stock until the reconciler knows.
    """
    order = db.session.execute(
        select(Order).where(Order.receipt_token == receipt_token)
    ).scalar_one_or_none()
    if order is None or order.state != OrderState.PENDING_PAYMENT:
        return False
    order = orders.lock(order.id)
    still_open = db.session.execute(
        select(PaymentAttempt.id).where(
            PaymentAttempt.order_id == order.id, PaymentAttempt.state.not_in(FAILED_STATES)
        )
    ).first()
    moved = still_open is None and orders.transition(
        order, OrderState.EXPIRED, why + "; stock released"
    )
    db.session.commit()
    return moved


def withdraw(order: Order) -> bool:
    """The customer changes an order they have not paid ("change the order"): each payment
    still open is asked about, then ended on our side, and the order is cancelled, its stock
    back. False, changing nothing, when the order is paid or held after all, or is no longer
    waiting for payment."""
    if order.state != OrderState.PENDING_PAYMENT:
        return False
    cause = Cause(Actor.CUSTOMER, "order changed by the customer")
    ending.ask_open_payments(order, cause)
    order = orders.lock(order.id)
    if order.state != OrderState.PENDING_PAYMENT or any(a.action for a in order.attempts):
        db.session.rollback()
        return False
    for attempt in order.attempts:
        if attempt.state in OPEN_STATES:
            ending.end_here(attempt, cause)
    orders.transition(
        order,
        OrderState.CANCELLED,
        "changed by the customer: cancelled, its items back in their cart; stock released",
    )
    db.session.commit()
    return True
