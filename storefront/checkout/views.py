"""Checkout for guests: details, delivery, review, then "Continue to secure payment".

The delivery is chosen once the address (and so the country) is known, among the methods
serving that country; the choice is checked again at the review and at placing, and the order
is placed only at the delivery price the review showed.

Placing the order freezes the cart into an order, reserves the stock, creates a payment attempt,
registers it with the gateway and answers 303 to the gateway's page. The review form carries a
checkout key, so a double click or a second tab finds the order already placed and is sent to
the same payment instead of making a second order or a second registration.
"""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, session, url_for
from flask_babel import gettext as _

from storefront.cart import service as cart_service
from storefront.checkout import delivery
from storefront.checkout.forms import (
    BILLING_FIELDS,
    DeliveryForm,
    DetailsForm,
    PlaceOrderForm,
    country_choices,
    shop_country,
)
from storefront.gateways import method_name, offered
from storefront.orders import mail, totals
from storefront.orders import service as orders
from storefront.payments.handoff import (
    PaymentNotStarted,
    abandon,
    continue_payment,
    start_payment,
)
from storefront.ratelimit import limited

bp = Blueprint("checkout", __name__, url_prefix="/checkout")

DETAILS = "checkout"  # session key of the customer's details between the two steps
KEY = "checkout_key"
TYPED = ("email", "name", "address", "city", "postcode", "country", "phone", "gateway", "note")
DELIVERY = "checkout_delivery"  # the method chosen and the price shown: {"id": 1, "price": 495}


def _details_form() -> DetailsForm:
    form = DetailsForm(data=session.get(DETAILS))
    form.country.choices = form.billing_country.choices = country_choices()
    if not form.country.data:
        form.country.data = shop_country()
    if not form.billing_country.data:
        form.billing_country.data = shop_country()
    form.gateway.choices = [(g.name, method_name(g)) for g in offered()]
    if not form.gateway.data and form.gateway.choices:
        form.gateway.data = form.gateway.choices[0][0]
    return form


@bp.route("/", methods=("GET", "POST"))
def start():
    """The customer's details and the choice of payment method."""
    cart = cart_service.read_cart()
    if cart.is_empty:
        flash(_("Your cart is empty."), "error")
        return redirect(url_for("cart.show"))
    form = _details_form()
    if form.validate_on_submit():
        same = not form.billing_differs()
        previous = session.get(DETAILS) or {}
        session[DETAILS] = {
            **{name: (getattr(form, name).data or "").strip() for name in TYPED},
            "billing_same": same,
            # Ticked, the billing fields are ignored: the order has no billing address of its own.
            **{name: "" if same else getattr(form, name).data.strip() for name in BILLING_FIELDS},
        }
        if previous.get("country") != session[DETAILS]["country"]:
            session.pop(DELIVERY, None)  # another country: its own methods and prices
        step = "checkout.delivery_choice" if delivery.needed() else "checkout.review"
        return redirect(url_for(step), code=303)
    processors = {g.name: g.processor for g in offered()}
    return render_template(
        "checkout/details.html",
        form=form,
        cart=cart,
        processors=processors,
        delivery_step=delivery.needed(),
    )


@bp.route("/delivery", methods=("GET", "POST"))
def delivery_choice():
    """The delivery methods serving the customer's country, with their price for this cart."""
    cart = cart_service.read_cart()
    if cart.is_empty:
        return redirect(url_for("cart.show"))
    details = session.get(DETAILS)
    if not details:
        return redirect(url_for("checkout.start"))
    if not delivery.needed():
        session.pop(DELIVERY, None)
        return redirect(url_for("checkout.review"))
    offered_here = delivery.quotes(details["country"], cart.total)
    form = DeliveryForm()
    form.method.choices = [(q.method_id, q.name) for q in offered_here]
    if form.validate_on_submit():
        chosen = next(q for q in offered_here if q.method_id == form.method.data)
        session[DELIVERY] = {"id": chosen.method_id, "price": chosen.price}
        return redirect(url_for("checkout.review"), code=303)
    if not form.is_submitted():
        stored = session.get(DELIVERY) or {}
        ids = {q.method_id for q in offered_here}
        best = delivery.cheapest(offered_here)
        form.method.data = stored.get("id") if stored.get("id") in ids else best and best.method_id
    prices = {q.method_id: q.price for q in offered_here}
    return render_template(
        "checkout/delivery.html",
        form=form,
        cart=cart,
        prices=prices,
        country=dict(country_choices()).get(details["country"], details["country"]),
        delivery_step=True,
    ), (422 if form.errors else 200)


@bp.get("/review")
def review():
    """The frozen-to-be order: lines, total, details, and the button that places it."""
    details = session.get(DETAILS)
    cart = cart_service.read_cart()
    if cart.is_empty:
        return redirect(url_for("cart.show"))
    if not details:
        return redirect(url_for("checkout.start"))
    try:
        chosen = delivery.confirm(session.get(DELIVERY), details["country"], cart.total)
    except delivery.DeliveryChanged as changed:
        if str(changed):
            flash(str(changed), "error")
        return redirect(url_for("checkout.delivery_choice"))
    session.setdefault(KEY, orders.new_token())
    form = PlaceOrderForm(
        checkout_key=session[KEY],
        delivery_price=str(chosen.price) if chosen.method_id else "",
    )
    gateway = next((g for g in offered() if g.name == details["gateway"]), None)
    return render_template(
        "checkout/review.html",
        cart=cart,
        totals=totals.of_cart(cart, chosen.name, chosen.price),
        delivery_step=chosen.method_id is not None,
        details=details,
        form=form,
        gateway=gateway,
        method_name=method_name,
        country=dict(country_choices()).get(details["country"], details["country"]),
    )


@bp.post("/place")
@limited("place-order", limit=20, per=60)
def place():
    """Place the order and hand the customer to the gateway.

    :raise 400: the form is not ours (CSRF), or its key is malformed or not this session's.
    :raise 429: too many orders from this address in a minute.
    """
    form = PlaceOrderForm()
    if not form.validate_on_submit():
        abort(400, _("The order form was incomplete. Please review your order and try again."))
    key = form.checkout_key.data
    existing = orders.find_by_checkout_key(key)
    # The key is this browser's own: the review page put it in this session, or the order it
    # made is this session's open order. Anyone else's copy of a key is not a way into the
    # order it made (and its receipt, with a name and an address on it).
    if key != session.get(KEY) and (
        existing is None or existing.receipt_token != session.get("open_order")
    ):
        abort(400, _("This order form has expired. Please review your order and try again."))
    if existing is not None:  # a second click or tab: the same order, the same payment
        return continue_payment(existing)
    details = session.get(DETAILS)
    cart = cart_service.read_cart(current=True)  # the prices and stock the order is placed at
    if cart.notices:  # sold out, or prices changed since the review: say so, show it again
        for text in cart.notices:
            flash(text, "error")
        return redirect(url_for("cart.show" if cart.is_empty else "checkout.review"))
    if cart.is_empty:
        flash(_("Your cart is empty."), "error")
        return redirect(url_for("cart.show"))
    if not details:
        return redirect(url_for("checkout.start"))
    if details.get("gateway") not in {g.name for g in offered()}:
        return redirect(url_for("checkout.start"))
    # Never a delivery price the customer did not see: the review's, checked against now.
    try:
        chosen = delivery.confirm(session.get(DELIVERY), details["country"], cart.total)
    except delivery.DeliveryChanged as changed:
        if str(changed):
            flash(str(changed), "error")
        return redirect(url_for("checkout.delivery_choice"))
    shown = form.delivery_price.data or ""
    if shown != (str(chosen.price) if chosen.method_id else ""):
        flash(_("The delivery price has changed. Please check your order again."), "error")
        return redirect(url_for("checkout.delivery_choice"))
    # Details kept from before the phone, billing and note fields existed have none of them.
    customer = orders.CustomerDetails(
        **{k: details.get(k, "") for k in (*TYPED, *BILLING_FIELDS) if k != "gateway"}
    )
    try:
        order, created = orders.place_order(
            [(line.product, line.quantity) for line in cart.lines],
            customer,
            key,
            chosen.as_order_delivery,
        )
    except orders.OutOfStock as short:
        flash(
            _("Sorry, not enough stock left for: %(products)s.", products=", ".join(short.names)),
            "error",
        )
        return redirect(url_for("cart.show"))
    except orders.OverLimit as over:
        flash(str(over), "error")
        return redirect(url_for("cart.show"))
    if not created:
        return continue_payment(order)
    mail.drain_after_response(order.id)  # the "order received" mail placing it queued
    previous = session.get("open_order")
    cart_service.clear()
    session.pop(KEY, None)
    session.pop(DELIVERY, None)
    session["open_order"] = order.receipt_token
    if previous:
        abandon(previous, f"replaced by order {order.number}")
    try:
        attempt = start_payment(order, details["gateway"])
    except PaymentNotStarted:
        return redirect(url_for("orders.show", token=order.receipt_token), code=303)
    return redirect(attempt.redirect_url, code=303)
