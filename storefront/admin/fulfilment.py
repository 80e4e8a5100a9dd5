"""Fulfilment on the order page: mark an order dispatched with its carrier and tracking number.

The dispatch is recorded once (one shipment per order), written to the audit record and the
order's history, and queues the customer's ``dispatched`` mail through the outbox. With
``STOREFRONT_CAPTURE_ON_DISPATCH`` a held payment is captured then, by staff who may move money.
"""

from __future__ import annotations

import re

from flask import current_app, flash, redirect, request, url_for

from storefront.admin import audit, auth
from storefront.admin.views import _order_or_404, bp
from storefront.extensions import db
from storefront.orders import service
from storefront.orders.mail import drain_after_response
from storefront.orders.models import OrderState
from storefront.orders.shipping import Shipment, shipment_of
from storefront.payments import backoffice
from storefront.payments.models import AttemptState

DISPATCHABLE = (OrderState.PAID, OrderState.AUTHORIZED)
FIELD = re.compile(r"[A-Za-z0-9 ._/-]{2,60}")


def _field(name: str, label: str) -> tuple[str, str | None]:
    value = " ".join(request.form.get(name, "").split())
    if not FIELD.fullmatch(value):
        return value, f"{label}: 2 to 60 letters, digits, spaces or . _ / -."
    return value, None


@bp.post("/orders/<number>/dispatch")
def dispatch(number: str):
    """Record the order's dispatch. :raise 404: unknown order."""
    order = _order_or_404(number)
    back = redirect(url_for("admin.order", number=order.number, _anchor="fulfilment"), code=303)
    carrier, carrier_error = _field("carrier", "Carrier")
    tracking, tracking_error = _field("tracking", "Tracking number")
    if carrier_error or tracking_error:
        flash(" ".join(e for e in (carrier_error, tracking_error) if e), "error")
        return back
    staff = auth.signed_in_staff()
    held = [a for a in order.attempts if a.state == AttemptState.AUTHORIZED]
    capture = bool(current_app.config.get("CAPTURE_ON_DISPATCH")) and bool(held)
    if capture and not staff.may_move_money:
        flash(auth.MONEY_REFUSED, "error")
        return back
    order = service.lock(order.id)
    if shipment_of(order) is not None:
        flash(f"Order {order.number} is already marked dispatched.", "error")
        return back
    if order.state not in DISPATCHABLE:
        flash(f"An order that is {order.state.replace('_', ' ')} cannot be dispatched.", "error")
        return back
    db.session.add(
        Shipment(order_id=order.id, carrier=carrier, tracking=tracking, dispatched_by=staff.email)
    )
    service.note(order, f"dispatched by {staff.email}: {carrier} {tracking}")
    audit.record(staff.email, "order.dispatch", order.number, f"{carrier} {tracking}")
    service.queue_message(order, "dispatched")
    db.session.commit()
    drain_after_response(order.id)
    flash(f"Order {order.number} marked dispatched ({carrier} {tracking}).")
    if capture:
        attempt = held[-1]
        try:
            backoffice.capture(attempt, backoffice.capturable(attempt), staff.email)
        except backoffice.ActionRefused as refused:
            flash(f"The capture on dispatch was refused: {refused}", "error")
        except backoffice.ActionUnknown:
            flash("The gateway did not answer the capture; it will be checked.", "error")
        else:
            flash("The held payment was captured.")
    return back


@bp.app_template_filter("shipment")
def _shipment_filter(order):
    return shipment_of(order)
