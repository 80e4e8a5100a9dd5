"""The pages gateways and returning browsers reach: ``/pay/<gateway>/return/<token>``,
``/pay/<gateway>/callback/<kind>``, and AltaPay's verify-order and payment page.

Exempt from CSRF (a gateway has no token, and the browser comes back by a cross-site POST as
often as by a GET); authenticated instead by the attempt's unguessable token (returns) or the
gateway's checksum (callbacks), verified in the adapter. Each view parses the request, calls
one function of :mod:`storefront.payments.receive`, and renders: the answer goes out only after
our state is committed, and a duplicate gets the same answer as the first.

AltaPay relays our answer to its ``ok``/``fail``/``open`` callbacks to the customer with
JavaScript stripped, so those answers are the shop's own complete, script-free order pages.
"""

from __future__ import annotations

import re

from flask import Blueprint, abort, current_app, redirect, render_template, request, url_for

from storefront.extensions import csrf
from storefront.gateways import configured
from storefront.i18n import force_locale, shop_locale
from storefront.orders.views import render_order
from storefront.payments import receive
from storefront.ratelimit import limited

bp = Blueprint("payments", __name__, url_prefix="/pay")
TEXT = {"Content-Type": "text/plain; charset=utf-8"}
# What a gateway really sends here: a few fields, and at most AltaPay's callback xml, which
# lists a payment's transactions (a few KiB each). Anything larger is refused (413) unread.
GATEWAY_BODY_LIMIT = 256 * 1024


@bp.before_request
def _limit_body() -> None:
    request.max_content_length = GATEWAY_BODY_LIMIT
    request.max_form_memory_size = GATEWAY_BODY_LIMIT


@bp.route("/<gateway>/return/<token>", methods=("GET", "POST"))
@csrf.exempt
def browser_return(gateway: str, token: str):
    """Ask the gateway about the attempt, then show the order's page.

    :raise 404: no attempt of this gateway has this token.
    :raise 400: the return's parameters are malformed or name another payment.
    """
    order = receive.receive_return(gateway, token, request.values)
    return redirect(url_for("orders.show", token=order.receipt_token), code=303)


@bp.route("/<gateway>/callback/<kind>", methods=("GET", "POST"))
@csrf.exempt
@limited("callback", limit=600, per=60)
def callback(gateway: str, kind: str):
    """A gateway's server-to-server call. Pages the gateway shows the customer (AltaPay's
    ok/fail/open) are answered with the order's page; the others with a short "OK", once
    settled, so that the gateway retries anything else.

    :raise 404: an unknown gateway or kind, or no payment of ours has these ids.
    :raise 400: malformed, or the checksum is missing or wrong.
    """
    adapter = configured(gateway)
    relayed = adapter is not None and kind in adapter.relayed_kinds
    try:
        attempt, settled = receive.receive_callback(gateway, kind, request.values)
    except receive.CallbackRefused as refused:
        if relayed and refused.attempt is not None:
            # The customer reads this answer: the shop's own page for the order as it stands
            # (the payment is then checked again); the refusal is in the evidence.
            html, status = render_order(refused.attempt.order, relayed=True)
            return absolute_urls(html), status
        abort(400, str(refused))
    if relayed:
        html, status = render_order(attempt.order, relayed=True)
        return absolute_urls(html), status
    if not settled:
        # The gateway's word could not be had: a notification answered with an error is sent
        # again, so the payment is settled by the next one rather than only by the reconciler.
        return "Not settled yet; please send this notification again.\n", 503, TEXT
    return "OK\n", 200, TEXT


@bp.post("/altapay/verify-order")
@csrf.exempt
@limited("callback", limit=600, per=60)
def altapay_verify_order():
    """AltaPay's last check before it takes the money (``callback_verify_order``): ``OKAY``, or
    the reason the gateway shows the customer instead.

    :raise 404: AltaPay is not configured for this shop.
    """
    if configured("altapay") is None:
        abort(404)
    return receive.verify_order(request.form), 200, TEXT


@bp.route("/altapay/payment-page", methods=("GET", "POST"))
@csrf.exempt
def altapay_payment_page():
    """The page AltaPay's server fetches (``config[callback_form]``) and shows the customer
    with its own card fields put into ``form#PensioPaymentForm`` (gateways.md §3.3).

    The gateway caches it per terminal, so it names no order and no customer: the amount and
    the order number come with the fields the gateway puts in.

    :raise 404: AltaPay is not configured for this shop.
    """
    if configured("altapay") is None:
        abort(404)
    # The gateway posts the payment's language with the order's fields; its card fields are
    # in that language, and so is the page around them.
    with force_locale(shop_locale(request.form.get("language"))):
        return absolute_urls(render_template("payments/altapay_payment_page.html"))


_LOCAL_URL = re.compile(r'(\s(?:href|src|action)=")/(?!/)')


def absolute_urls(html: str) -> str:
    """Make every local link, image, stylesheet and form target absolute.

    The gateway serves this page from its own origin, so a relative URL would point at the
    gateway; and the CSP forbids a ``<base>`` element that could fix them all at once.
    """
    return _LOCAL_URL.sub(lambda m: m.group(1) + current_app.config["PUBLIC_URL"] + "/", html)
