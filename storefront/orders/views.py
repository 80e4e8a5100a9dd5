"""The customer's order page: receipt, pending or failure, reached by its receipt token.

The token in the URL (192 random bits) is the key, not the session cookie: the page must work
for a browser coming back from the gateway, in another browser, or relayed by the gateway.
Any wrong token gets the same 404.
"""

from __future__ import annotations

import re

from flask import (
    Blueprint,
    abort,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import gettext as _
from sqlalchemy import func, select

from storefront.cart import service as cart_service
from storefront.extensions import db
from storefront.gateways import offered
from storefront.i18n import force_locale, order_page_locale
from storefront.orders import paylink
from storefront.orders.forms import LookupForm, PayForm, PayNowForm
from storefront.orders.models import Order, OrderState
from storefront.orders.service import is_token

# The one import from a floor above: the order's page is where a customer pays again or looks
# again at a payment under way, and both are the payments package's to do.
from storefront.payments import handoff, receive
from storefront.ratelimit import limited

bp = Blueprint("orders", __name__, url_prefix="/order")

RECEIPT_STATES = (
    OrderState.PAID,
    OrderState.AUTHORIZED,
    OrderState.PARTIALLY_REFUNDED,
    OrderState.REFUNDED,
)


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


# What the gateways' pages show as the order: ours, or ours with the attempt ("N-1", "N_1").
REFERENCE = re.compile(r"(?:order)?(\d{1,16})(?:[-_]\d{1,4})?", re.IGNORECASE)


def order_number_of(text: str) -> str:
    """The order number in a reference as typed: any case and spacing, with or without the
    attempt's suffix; "" when it is no reference of ours."""
    match = REFERENCE.fullmatch("".join(text.split()))
    return match.group(1) if match else ""


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
                Order.number == order_number_of(form.number.data),
                func.lower(Order.email) == form.email.data.strip().lower(),
            )
        ).scalar_one_or_none()
        if order is not None:
            return redirect(url_for("orders.show", token=order.receipt_token), code=303)
        flash(_("We could not find an order with these details."), "error")
    return render_template("orders/lookup.html", form=form)


@bp.get("/<token>")
def show(token: str):
    """Receipt, pending or failure page, whichever the order's state calls for.

    :raise 404: unknown token.
    """
    order = order_by_token(token)
    receive.check_if_due(order)
    return render_order(order)


def render_order(order: Order, status: int = 200, relayed: bool = False):
    """The page for the order's state, in the order's language unless the customer chose
    another (:func:`storefront.i18n.order_page_locale`). ``relayed``: the page is an answer to
    the gateway, which shows it to the customer from its own origin, so it holds no
    session-bound forms."""
    with force_locale(order_page_locale(order.locale)):
        return _render_order(order, status, relayed)


def _render_order(order: Order, status: int, relayed: bool):
    attempt = order.latest_attempt
    context = {"order": order, "attempt": attempt, "relayed": relayed}
    if order.state in RECEIPT_STATES:
        return render_template("orders/receipt.html", **context), status
    if order.state in (OrderState.EXPIRED, OrderState.CANCELLED):
        return render_template("orders/closed.html", **context), status
    if order.state == OrderState.ON_HOLD:
        return render_template("orders/pending.html", on_hold=True, **context), status
    if handoff.under_way(order):
        return render_template("orders/pending.html", on_hold=False, **context), status
    if relayed:
        return render_template("orders/failure.html", form=None, **context), status
    _restore_cart_once(order)
    if handoff.past_due(order):
        return render_template("orders/failure.html", form=None, **context), status
    form = PayForm()
    form.gateway.choices = [(g.name, g.title) for g in offered()]
    form.gateway.data = attempt.gateway if attempt else form.gateway.choices[0][0]
    return render_template("orders/failure.html", form=form, **context), status


@bp.before_app_request
def _paid_lines_leave_the_cart() -> None:
    """Once an order whose lines went back in this browser's cart (a failed payment) is paid
    after all — by "Try again", a pay-now link, a late callback, in any tab — its lines leave
    the cart, so that nothing offers to buy them a second time. Costs a query only while a
    cart holds restored lines."""
    token, marker = session.get("open_order"), session.get("restored")
    if not token or not marker:
        return
    order = db.session.execute(
        select(Order).where(Order.receipt_token == token)
    ).scalar_one_or_none()
    if order is not None and order.state == OrderState.PENDING_PAYMENT:
        return  # still to pay: the lines stay, so that the customer may change the cart
    if order is not None and order.state in (*RECEIPT_STATES, OrderState.ON_HOLD):
        cart_service.take_back(
            [(line.product_id, line.quantity) for line in order.lines if line.product_id]
        )
    session.pop("restored")  # paid, or closed unpaid (its lines stay, to buy again)


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
        abort(400, _("Please choose how to pay."))
    try:
        attempt = handoff.pay_again(order, form.gateway.data)
    except handoff.PaymentNotStarted:
        attempt = None
    if attempt is None or not attempt.redirect_url:
        return redirect(url_for("orders.show", token=token), code=303)
    return redirect(attempt.redirect_url, code=303)


@bp.app_template_global()
def waiting_order() -> Order | None:
    """The order this browser placed last, while it still waits for payment: the cart page
    says so, so that coming back from the gateway without paying is never a dead end."""
    token = session.get("open_order")
    if not token or not is_token(token):
        return None
    order = db.session.execute(
        select(Order).where(Order.receipt_token == token)
    ).scalar_one_or_none()
    if order is None or order.state != OrderState.PENDING_PAYMENT or handoff.past_due(order):
        return None
    return order


@bp.post("/<token>/change")
def change(token: str):
    """ "Change the order": the unpaid order is cancelled and its items come back to the cart,
    to be changed and checked out anew. Only from the browser that placed it.

    :raise 404: unknown token.
    :raise 400: the form is not ours (CSRF), or the order was placed in another browser.
    """
    order = order_by_token(token)
    if session.get("open_order") != token:
        abort(400, _("This order was placed in another browser: change it from there."))
    lines = [(line.product_id, line.quantity) for line in order.lines if line.product_id]
    if not handoff.withdraw(order):
        # Paid or held after all, or closed: the order's own page says which.
        return redirect(url_for("orders.show", token=token), code=303)
    cart_service.restore(lines)
    session.pop("open_order", None)
    session.pop("restored", None)
    flash(
        _(
            "Order %(number)s is cancelled and its items are back in your cart: change it and "
            "check out again.",
            number=order.number,
        )
    )
    return redirect(url_for("cart.show"), code=303)


@bp.get("/<token>/pay")
def resume(token: str):
    """Back to the gateway's page of the payment under way, if there is one.

    :raise 404: unknown token.
    """
    return handoff.continue_payment(order_by_token(token))


# "Pay now" from a payment-failed mail ---------------------------------------------------------
def _linked_order(number: str, token: str) -> Order | tuple[str, int]:
    """The order a "pay now" link opens, or the page that says why it opens none."""
    try:
        paylink.check(token, number)
    except paylink.LinkExpired:
        return render_template("orders/pay_link_invalid.html", expired=True), 410
    except paylink.LinkInvalid:
        return render_template("orders/pay_link_invalid.html", expired=False), 400
    order = db.session.execute(select(Order).where(Order.number == number)).scalar_one_or_none()
    if order is None:  # signed by us for an order that is gone: not a link to anything
        return render_template("orders/pay_link_invalid.html", expired=False), 400
    return order


def _pay_now_form(order: Order, token: str) -> PayNowForm:
    form = PayNowForm(token=token)
    form.gateway.choices = [(g.name, g.title) for g in offered()]
    names = [g.name for g in offered()]
    attempt = order.latest_attempt
    if names:  # the way the customer tried last, while it is still offered
        tried = attempt.gateway if attempt else ""
        form.gateway.data = tried if tried in names else names[0]
    return form


@bp.get("/<number>/pay-now")
def pay_now(number: str):
    """The order a payment-failed mail links to, with "Pay now" while it can still be paid;
    a paid order shows the way to its receipt instead.

    :raise 400: the link is not ours, or is for another order (a page, not an error).
    :raise 410: the link is ours but has expired (a page saying how to find the order).
    """
    token = request.args.get("token", "")
    order = _linked_order(number, token)
    if not isinstance(order, Order):
        return order
    payable = order.is_payable and not handoff.under_way(order) and not handoff.past_due(order)
    return render_template(
        "orders/pay_now.html",
        order=order,
        paid=order.state in RECEIPT_STATES,
        under_way=order.is_payable and handoff.under_way(order),
        form=_pay_now_form(order, token) if payable else None,
    )


@bp.post("/<number>/pay-now")
def pay_now_start(number: str):
    """A new payment attempt for the same order, from the "pay now" page.

    :raise 400: the form is not ours (CSRF), or the link is not ours or for another order.
    :raise 410: the link expired while the page was open.
    """
    form = PayNowForm()
    form.gateway.choices = [(g.name, g.title) for g in offered()]
    if not form.validate_on_submit():
        abort(400, _("Please choose how to pay."))
    order = _linked_order(number, form.token.data or "")
    if not isinstance(order, Order):
        return order
    try:
        attempt = handoff.pay_again(order, form.gateway.data)
    except handoff.PaymentNotStarted:
        attempt = None
    if attempt is None or not attempt.redirect_url:
        # Paid, closed, or a payment under way meanwhile: the order's page says which.
        return redirect(url_for("orders.show", token=order.receipt_token), code=303)
    return redirect(attempt.redirect_url, code=303)
