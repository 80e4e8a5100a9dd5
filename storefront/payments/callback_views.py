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

from flask import Blueprint, abort, current_app, request

from storefront.extensions import csrf, db
from storefront.gateways.base import BadNotice
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


_LOCAL_URL = re.compile(r'(\s(?:href|src|action)=")/(?!/)')


def absolute_urls(html: str) -> str:
    """Make every local link, image, stylesheet and form target absolute.

    The gateway serves this page from its own origin, so a relative URL would point at the
    gateway; and the CSP forbids a ``<base>`` element that could fix them all at once.
    """
    return _LOCAL_URL.sub(lambda m: m.group(1) + current_app.config["PUBLIC_URL"] + "/", html)


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
