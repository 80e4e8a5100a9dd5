"""What the order page's own tools change: an internal note, a second sending of the
confirmation. Each change is audited and committed here, with the order locked."""

from __future__ import annotations

from sqlalchemy import func, select

from storefront.admin import audit
from storefront.admin.models import OrderNote, StaffUser
from storefront.extensions import db
from storefront.orders import service
from storefront.orders.mail import drain_after_response
from storefront.orders.models import Order, OrderState, OutboxMessage

CONFIRMATION = "order_confirmation"
# The outbox sends each (kind, order) once; a resend is a deliberate new kind of its own,
# ``order_confirmation:resend:<n>``, which the mail module reads as the confirmation.
RESEND = f"{CONFIRMATION}:resend"
# The states in which the customer was sent a confirmation (see ``ORDER_MAILS``).
RESENDABLE = (OrderState.PAID, OrderState.AUTHORIZED, OrderState.PARTIALLY_REFUNDED)
AUDIT_EXCERPT = 200  # characters of a note copied into the audit record


def add_note(order: Order, staff: StaffUser, text: str) -> OrderNote:
    """Write ``text`` as ``staff``'s internal note on ``order``."""
    note = OrderNote(order_id=order.id, author=staff.email, author_name=staff.name, text=text)
    db.session.add(note)
    audit.record(staff.email, "order.note", order.number, text[:AUDIT_EXCERPT])
    db.session.commit()
    return note


def resends(order: Order) -> int:
    """How many times the confirmation was queued again from the admin."""
    return db.session.execute(
        select(func.count(OutboxMessage.id)).where(
            OutboxMessage.order_id == order.id,
            OutboxMessage.kind.startswith(f"{RESEND}:", autoescape=True),
        )
    ).scalar_one()


class NotResent(Exception):
    """The confirmation was not queued again; the message says why."""


def resend_confirmation(order: Order, staff: StaffUser, seen: int) -> int:
    """Queue the confirmation again; the resend's number (1 for the first).

    ``seen`` is how many resends the operator's page showed: under the order's lock, a second
    post of the same page (a double click, a colleague) finds one more and queues nothing.

    :raise NotResent: the order is in no state to confirm, or this resend was already queued.
    """
    order = service.lock(order.id)
    if order.state not in RESENDABLE:
        db.session.rollback()
        raise NotResent(
            f"An order that is {order.state.replace('_', ' ')} has no confirmation to send again."
        )
    done = resends(order)
    if done != seen:
        db.session.rollback()
        raise NotResent("The confirmation was already sent again from this page; nothing more.")
    number = done + 1
    service.queue_message(order, RESEND, number)
    service.note(order, f"confirmation mail sent again by {staff.email} (resend {number})")
    audit.record(staff.email, "order.resend_confirmation", order.number, f"resend {number}")
    db.session.commit()
    drain_after_response(order.id)
    return number
