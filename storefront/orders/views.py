"""The customer's order page: receipt, pending or failure, reached by its receipt token.

The token in the URL (192 random bits) is the key, not the session cookie: the page must work
for a browser coming back from the gateway, in another browser, or relayed by the gateway.
Any wrong token gets the same 404.
"""

from __future__ import annotations

from datetime import timedelta

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    session,
    url_for,
)
from sqlalchemy import func, select

from storefront.cart import service as cart_service
from storefront.checkout.forms import LookupForm, PayForm
from storefront.extensions import db
from storefront.gateways import offered
from storefront.orders.models import Order, OrderState
from storefront.orders.service import is_token
from storefront.payments import service as payments
from storefront.payments.models import AttemptState
from storefront.ratelimit import limited
from storefront.timeutil import as_utc, now_utc

bp = Blueprint("orders", __name__, url_prefix="/order")

RECEIPT_STATES = (
    OrderState.PAID,
    OrderState.AUTHORIZED,
    OrderState.PARTIALLY_REFUNDED,
    OrderState.REFUNDED,
)
# An attempt stuck in "created" this long was left by a process that died mid-registration.
STALE_START = timedelta(minutes=2)


def order_by_token(token: str) -> Order:
    """:raise 404: no order has this token (the same answer for anything wrong)."""
    if not is_token(token):
        abort(404)
    order = db.session.execute(
        select(Order).where(Order.receipt_token == token)
    ).scalar_one_or_none()
    if order is None:
        abort(404)
    return order


@bp.route("/lookup", methods=("GET", "POST"))
@limited("order-lookup", limit=30, per=60)
def lookup():
    """Find an order by number and email. Any mismatch gets the same answer, so the form
    cannot be used to learn which order numbers or emails exist.

    :raise 429: too many lookups from this address in a minute.
    """
    form = LookupForm()
    if form.validate_on_submit():
        order = db.session.execute(
            select(Order).where(
                Order.number == form.number.data.strip(),
                func.lower(Order.email) == form.email.data.strip().lower(),
            )
        ).scalar_one_or_none()
        if order is not None:
            return redirect(url_for("orders.show", token=order.receipt_token), code=303)
        flash("We could not find an order with these details.", "error")
    return render_template("orders/lookup.html", form=form)


@bp.get("/<token>")
def show(token: str):
    """Receipt, pending or failure page, whichever the order's state calls for.

    :raise 404: unknown token.
    """
    order = order_by_token(token)
    _check_if_due(order)
    return render_order(order)


def render_order(order: Order, status: int = 200, relayed: bool = False):
    """The page for the order's state. ``relayed``: the page is an answer to the gateway, which
    shows it to the customer from its own origin, so it holds no session-bound forms."""
    attempt = order.latest_attempt
    context = {"order": order, "attempt": attempt, "relayed": relayed}
    if order.state in RECEIPT_STATES:
        return render_template("orders/receipt.html", **context), status
    if order.state in (OrderState.EXPIRED, OrderState.CANCELLED):
        return render_template("orders/closed.html", **context), status
    if order.state == OrderState.ON_HOLD:
        return render_template("orders/pending.html", on_hold=True, **context), status
    if attempt is not None and attempt.is_open and not _abandoned(attempt):
        return render_template("orders/pending.html", on_hold=False, **context), status
    if relayed:
        return render_template("orders/failure.html", form=None, **context), status
    _restore_cart_once(order)
    form = PayForm()
    form.gateway.choices = [(g.name, g.title) for g in offered()]
    form.gateway.data = attempt.gateway if attempt else form.gateway.choices[0][0]
    return render_template("orders/failure.html", form=form, **context), status


def _check_if_due(order: Order) -> None:
    """Ask the gateway again about a pending payment, at most every few seconds."""
    attempt = order.latest_attempt
    if order.state != OrderState.PENDING_PAYMENT or attempt is None:
        return
    if attempt.state not in (AttemptState.PENDING, AttemptState.UNKNOWN, AttemptState.REDIRECTED):
        return
    if attempt.gateway_id is None or attempt.returned_at is None:
        return  # the customer has not come back from the gateway: nothing to ask yet
    if attempt.gateway not in current_app.config["GATEWAYS"]:
        return  # no longer configured: the operator settles it from the gateway's back office
    spacing = float(current_app.config["STATUS_RECHECK_SECONDS"])
    if payments.due_for_check(attempt, spacing) and payments.claim_check(attempt, spacing):
        payments.settle(attempt, source="pending page")
        db.session.refresh(order)


def _abandoned(attempt) -> bool:
    """Open, but nobody can pay it: registration lost, or a start that never finished."""
    if attempt.state == AttemptState.UNKNOWN and attempt.gateway_id is None:
        return True
    return attempt.state == AttemptState.CREATED and as_utc(attempt.created_at) < (
        now_utc() - STALE_START
    )


def _restore_cart_once(order: Order) -> None:
    # Put the lines back in the cart of the browser that placed the order, once per attempt, so
    # that the customer can also change the cart and check out anew.
    attempt = order.latest_attempt
    marker = f"{order.id}:{attempt.id if attempt else 0}"
    if session.get("open_order") != order.receipt_token or session.get("restored") == marker:
        return
    cart_service.restore(
        [(line.product_id, line.quantity) for line in order.lines if line.product_id is not None]
    )
    session["restored"] = marker


@bp.post("/<token>/pay")
def pay(token: str):
    """Try again: a new payment attempt for the same order.

    :raise 404: unknown token.
    :raise 400: the form is not ours.
    """
    order = order_by_token(token)
    form = PayForm()
    form.gateway.choices = [(g.name, g.title) for g in offered()]
    if not form.validate_on_submit():
        abort(400, "Please choose how to pay.")
    attempt = order.latest_attempt
    if not order.is_payable or (
        attempt is not None and attempt.is_open and not _abandoned(attempt)
    ):
        # Paid, closed, or a payment is still under way: never start a second one over it.
        return redirect(url_for("orders.show", token=token), code=303)
    try:
        attempt = payments.start_payment(order, form.gateway.data)
    except payments.PaymentNotStarted:
        return redirect(url_for("orders.show", token=token), code=303)
    return redirect(attempt.redirect_url, code=303)


@bp.get("/<token>/pay")
def resume(token: str):
    """Back to the gateway's page of the payment under way, if there is one.

    :raise 404: unknown token.
    """
    return continue_payment(order_by_token(token))


def continue_payment(order: Order):
    attempt = order.latest_attempt
    if (
        order.is_payable
        and attempt is not None
        and attempt.state == AttemptState.REDIRECTED
        and attempt.redirect_url
    ):
        return redirect(attempt.redirect_url, code=303)
    if order.is_payable and attempt is not None and attempt.state == AttemptState.CREATED:
        # The first click is still registering the payment with the gateway.
        return render_template("orders/preparing.html", order=order), 202
    return redirect(url_for("orders.show", token=order.receipt_token), code=303)
