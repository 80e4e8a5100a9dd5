"""The order page's whole-order actions: cancel an unpaid or held order, refund by line.

Both are POSTs with a CSRF token; the services (``cancel_service``, ``refund_service``) check
again under the order's lock, so a double click changes the order once.
"""

from __future__ import annotations

from flask import flash, redirect, request, url_for

from storefront.admin import auth, cancel_service, refund_service
from storefront.admin.forms import CancelForm, LineRefundForm
from storefront.admin.views import _order_or_404, _render_order, bp
from storefront.templating import money


@bp.post("/orders/<number>/cancel")
def cancel_order(number: str):
    """Cancel an order waiting for payment, or whose payment is held (voided at the gateway).

    :raise 404: unknown order.
    """
    order = _order_or_404(number)
    form = CancelForm(prefix="cancel")
    if not form.validate_on_submit():
        return _render_order(order, cancel_form=form, status=422)
    staff = auth.signed_in_staff()
    try:
        order = cancel_service.cancel_order(order, staff, form.reason.data or "")
    except cancel_service.NotCancelled as refused:
        flash(str(refused), "error")
    else:
        flash(f"Order {order.number} is cancelled; its stock was put back.")
    return redirect(url_for("admin.order", number=number, _anchor="order-actions"), code=303)


@bp.post("/orders/<number>/line-refunds")
def refund_lines(number: str):
    """Refund chosen lines (and the delivery) of a paid order; the amount follows.

    :raise 404: unknown order.
    """
    order = _order_or_404(number)
    back = redirect(url_for("admin.order", number=number, _anchor="refund-lines"), code=303)
    form = LineRefundForm(prefix="lines")
    wanted, problems = _wanted(order)
    if not form.validate_on_submit() or problems:
        return _render_order(order, line_refund_form=form, line_problems=problems, status=422)
    try:
        amount = refund_service.refund_lines(
            order,
            auth.signed_in_staff(),
            wanted,
            delivery=bool(request.form.get("lines-delivery")),
            reason=form.reason.data or "",
            seen=int(form.seen.data or "0"),
        )
    except refund_service.NotRefunded as refused:
        flash(str(refused), "error")
    else:
        flash(f"Refund of {money(amount, order.currency)} done.")
    return back


def _wanted(order) -> tuple[list[refund_service.Wanted], list[str]]:
    """The quantities typed per line (``lines-qty-<id>``), and what is wrong with them."""
    wanted, problems = [], []
    for line in order.lines:
        raw = request.form.get(f"lines-qty-{line.id}", "0").strip() or "0"
        if not raw.isdigit() or len(raw) > 6:
            problems.append(f"{line.name}: type a whole number of items, such as 1.")
            continue
        restock = bool(request.form.get(f"lines-restock-{line.id}"))
        wanted.append(refund_service.Wanted(line.id, int(raw), restock))
    return wanted, problems
