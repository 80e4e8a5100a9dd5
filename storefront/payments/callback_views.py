"""Server-to-server pages the gateways call: ``/pay/rbs/callback``, ``/pay/altapay/…/<kind>``.

Exempt from CSRF (the gateway has no token) and authenticated instead by the gateway's
checksum, verified in the adapter; unsigned or badly signed calls change nothing and are kept in
the attempt's evidence. The answer goes out only after our state is committed, and a duplicate
gets the same answer as the first.

AltaPay relays our answer to ``ok``/``fail``/``open`` to the customer with JavaScript stripped,
so those answers are the shop's own complete, script-free order pages.
"""

from __future__ import annotations

import re

from flask import Blueprint, abort, current_app, render_template, request

from storefront.extensions import csrf, db
from storefront.gateways.base import BadNotice
from storefront.money import currency_info, from_major
from storefront.orders.views import render_order
from storefront.payments import service as payments
from storefront.payments.models import PaymentEvent
from storefront.ratelimit import limited

bp = Blueprint("callbacks", __name__, url_prefix="/pay")

ALTAPAY_PAGES = ("ok", "fail", "open")
ALTAPAY_KINDS = (*ALTAPAY_PAGES, "notification")


@bp.route("/rbs/callback", methods=("GET", "POST"))
@csrf.exempt
@limited("callback", limit=600, per=60)
def rbs_callback():
    """BPC/RBS notification: answered 200 once settled; the gateway retries anything else.

    :raise 400: malformed, or the checksum is missing or wrong.
    :raise 404: no payment of ours has this mdOrder/orderNumber.
    """
    _settle_callback("rbs", "callback", request.values)
    return "OK\n", 200, {"Content-Type": "text/plain; charset=utf-8"}


@bp.post("/altapay/callback/<kind>")
@csrf.exempt
@limited("callback", limit=600, per=60)
def altapay_callback(kind: str):
    """AltaPay result pages and notification.

    :raise 404: an unknown kind, or no payment of ours has this shop_orderid.
    :raise 400: malformed, or the checksum is missing or wrong.
    """
    if kind not in ALTAPAY_KINDS:
        abort(404)
    attempt = _settle_callback("altapay", kind, request.form)
    if kind == "notification":
        return "OK\n", 200, {"Content-Type": "text/plain; charset=utf-8"}
    html, status = render_order(attempt.order, relayed=True)
    return absolute_urls(html), status


@bp.route("/altapay/payment-page", methods=("GET", "POST"))
@csrf.exempt
def altapay_payment_page():
    """The page AltaPay's server fetches (``config[callback_form]``) and shows the customer
    with its own card fields put into ``form#PensioPaymentForm`` (gateways.md §3.3).

    The gateway caches it per terminal, so it names no order and no customer: the amount and
    the order number come with the fields the gateway puts in.
    """
    if "altapay" not in current_app.config["GATEWAYS"]:
        abort(404)
    return absolute_urls(render_template("payments/altapay_payment_page.html"))


_LOCAL_URL = re.compile(r'(\s(?:href|src|action)=")/(?!/)')


def absolute_urls(html: str) -> str:
    """Make every local link, image, stylesheet and form target absolute.

    The gateway serves this page from its own origin, so a relative URL would point at the
    gateway; and the CSP forbids a ``<base>`` element that could fix them all at once.
    """
    return _LOCAL_URL.sub(lambda m: m.group(1) + current_app.config["PUBLIC_URL"] + "/", html)


@bp.post("/altapay/verify-order")
@csrf.exempt
@limited("callback", limit=600, per=60)
def altapay_verify_order():
    """AltaPay's last check before it takes the money (``callback_verify_order``).

    Answers exactly ``OKAY`` while the attempt is its order's current one and the order is
    still payable for this amount and currency; any other answer makes the gateway stop and
    show it to the customer. Nothing changes here, so nothing needs authenticating.

    :raise 404: AltaPay is not configured for this shop.
    """
    if "altapay" not in current_app.config["GATEWAYS"]:
        abort(404)
    attempt = payments.find_attempt("altapay", request.form.get("shop_orderid"), None)
    reason = "This order is unknown to the shop."
    if attempt is not None:
        order = attempt.order
        try:
            currency = currency_info(request.form.get("currency", "")).code
            amount = from_major(request.form.get("amount", ""), currency)
        except ValueError:
            currency, amount = None, None
        if not order.is_payable or order.latest_attempt.id != attempt.id:
            reason = "This order can no longer be paid. Please return to the shop."
        elif (amount, currency) != (attempt.amount, attempt.currency):
            reason = "The amount does not match the order. Please return to the shop."
        else:
            reason = "OKAY"
    return reason, 200, {"Content-Type": "text/plain; charset=utf-8"}


def _settle_callback(gateway_name: str, kind: str, form):
    if gateway_name not in current_app.config["GATEWAYS"]:
        abort(404)
    adapter = payments.get_gateway(gateway_name)
    log = payments.EvidenceLog()
    try:
        notice = adapter.parse_callback(kind, form, log)
    except BadNotice as bad:
        attempt = payments.find_attempt(gateway_name, bad.reference, bad.gateway_id)
        if attempt is not None:
            log.save(attempt.id)
            db.session.add(
                PaymentEvent(
                    attempt_id=attempt.id,
                    kind="decision",
                    summary=f"callback {kind} refused: {bad}"[:300],
                )
            )
            db.session.commit()
        abort(400, str(bad))
    attempt = payments.find_attempt(gateway_name, notice.reference, notice.gateway_id)
    if attempt is None:
        abort(404)
    payments.settle(attempt, notice, log, source=f"callback {kind}")
    return attempt
