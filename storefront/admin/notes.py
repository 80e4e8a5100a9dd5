"""The order page's own tools: internal notes, and sending the confirmation again.

Notes are the staff's: they appear in the order's history in the admin, never on the
customer's pages or in a mail.
"""

from __future__ import annotations

from flask import flash, redirect, url_for

from storefront.admin import auth, order_service
from storefront.admin.forms import NoteForm, ResendForm
from storefront.admin.views import _order_or_404, _render_order, bp


@bp.post("/orders/<number>/notes")
def add_note(number: str):
    """Add an internal note. :raise 404: unknown order."""
    order = _order_or_404(number)
    form = NoteForm(prefix="note")
    if not form.validate_on_submit():
        return _render_order(order, note_form=form, status=422)
    order_service.add_note(order, auth.signed_in_staff(), form.text.data or "")
    flash("Note added.")
    return redirect(url_for("admin.order", number=order.number, _anchor="history"), code=303)


@bp.post("/orders/<number>/resend-confirmation")
def resend_confirmation(number: str):
    """Queue the order's confirmation mail again. :raise 404: unknown order."""
    order = _order_or_404(number)
    back = redirect(url_for("admin.order", number=order.number, _anchor="customer-mail"), code=303)
    form = ResendForm(prefix="resend")
    seen = form.sent.data or ""
    if not form.validate_on_submit() or not seen.isdigit():
        flash("The page was out of date: look again, then send.", "error")
        return back
    try:
        sent = order_service.resend_confirmation(order, auth.signed_in_staff(), int(seen))
    except order_service.NotResent as refused:
        flash(str(refused), "error")
    else:
        flash(f"The confirmation was queued again for {order.email} (resend {sent}).")
    return back
