"""The browser's way back from the gateway: ``/pay/<gateway>/return/<attempt token>``.

Nothing the browser brings decides anything: the return only makes us ask the gateway. The URL
carries the attempt's own unguessable token, so no session cookie is needed (a cross-site POST
arrives without one), and the gateway's id in the query must match the attempt's.
"""

from __future__ import annotations

from flask import Blueprint, abort, current_app, redirect, request, url_for
from sqlalchemy import select

from storefront.extensions import csrf, db
from storefront.gateways.base import BadNotice
from storefront.orders.service import is_token
from storefront.payments import service as payments
from storefront.payments.models import PaymentAttempt, PaymentEvent

bp = Blueprint("returns", __name__, url_prefix="/pay")


@bp.route("/<gateway>/return/<token>", methods=("GET", "POST"))
@csrf.exempt  # the gateway sends the browser here, by GET or a cross-site POST
def browser_return(gateway: str, token: str):
    """Ask the gateway about the attempt, then show the order's page.

    :raise 404: no attempt of this gateway has this token.
    :raise 400: the return's parameters are malformed or name another payment.
    """
    if not is_token(token):
        abort(404)
    attempt = db.session.execute(
        select(PaymentAttempt).where(PaymentAttempt.token == token)
    ).scalar_one_or_none()
    if attempt is None or attempt.gateway != gateway:
        abort(404)
    if gateway not in current_app.config["GATEWAYS"]:
        # The shop no longer speaks this gateway: the order as it stands; the operator settles it.
        payments.mark_returned(attempt)
        return redirect(url_for("orders.show", token=attempt.order.receipt_token), code=303)
    adapter = payments.get_gateway(gateway)
    try:
        notice = adapter.parse_return(request.values)
    except BadNotice as bad:
        _refused(attempt, str(bad))
        abort(400, str(bad))
    if notice.gateway_id and attempt.gateway_id and notice.gateway_id != attempt.gateway_id:
        _refused(attempt, f"return names payment {notice.gateway_id!r}, not this one")
        abort(400, "This link does not belong to this payment.")
    payments.mark_returned(attempt)
    payments.settle(attempt, notice, source="browser return")
    return redirect(url_for("orders.show", token=attempt.order.receipt_token), code=303)


def _refused(attempt: PaymentAttempt, why: str) -> None:
    db.session.add(
        PaymentEvent(
            attempt_id=attempt.id,
            kind="return",
            summary=f"browser return refused: {why}"[:300],
            detail=request.query_string.decode(errors="replace")[:2000],
        )
    )
    db.session.commit()
