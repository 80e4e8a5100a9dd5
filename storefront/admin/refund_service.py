"""Refunding an order by line: the operator picks lines and quantities (and the delivery), the
amount follows from the prices frozen on the order, and the back office's refund moves it.

The lines are reserved (``orders.refunds.RefundLine``) under the order's lock before the
gateway is asked, so a double click or a colleague cannot refund a line twice; they are
confirmed, and their goods put back in stock where asked, only once the gateway confirmed the
refund. A refusal takes the reservation back; a lost answer leaves it, and the stock, alone.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import current_app
from sqlalchemy import delete, func, select, update

from storefront.admin import audit
from storefront.admin.models import StaffUser
from storefront.catalogue import stock
from storefront.catalogue.models import Product, StockReason
from storefront.extensions import db
from storefront.gateways import configured
from storefront.money import format_money
from storefront.orders import service
from storefront.orders.models import Order, OrderLine
from storefront.orders.refunds import RefundLine, refunded_quantities
from storefront.payments import backoffice
from storefront.payments.models import PaymentAttempt
from storefront.timeutil import now_utc

DELIVERY = None  # the key of the delivery among the refunded quantities


class NotRefunded(Exception):
    """Nothing was refunded (or the outcome is not known yet); the message says why."""


@dataclass(frozen=True)
class Wanted:
    """What the operator asked to refund of one line."""

    line_id: int
    quantity: int
    restock: bool


@dataclass(frozen=True)
class RefundableLine:
    line: OrderLine
    left: int  # units not yet refunded (nor reserved for a refund under way)


def payment_to_refund(order: Order) -> PaymentAttempt | None:
    """The payment a refund of this order goes to: the newest with money left to refund."""
    return next((a for a in reversed(order.attempts) if backoffice.refundable(a) > 0), None)


def refundable_lines(order: Order) -> list[RefundableLine]:
    done = refunded_quantities(order)
    return [RefundableLine(line, line.quantity - done.get(line.id, 0)) for line in order.lines]


def delivery_refundable(order: Order) -> bool:
    return order.delivery_price > 0 and DELIVERY not in refunded_quantities(order)


def refunds_seen(order: Order) -> int:
    """How many refund rows the order has: the page shows it, and a second post of the same
    page (a double click) finds one more under the lock and refunds nothing."""
    return db.session.execute(
        select(func.count(RefundLine.id)).where(RefundLine.order_id == order.id)
    ).scalar_one()


def refund_lines(
    order: Order,
    staff: StaffUser,
    wanted: list[Wanted],
    delivery: bool,
    reason: str,
    seen: int,
) -> int:
    """Refund ``wanted`` (and the delivery if ``delivery``) of ``order``; the amount refunded.

    :raise NotRefunded: without the payments permission, on a page out of date, for more
        than is left of a line or of the payment (no gateway call in any of these), when the
        gateway refuses (nothing recorded), or when its answer is lost (lines kept reserved,
        nothing restocked; the message says so).
    """
    if not staff.may_move_money:
        raise NotRefunded(
            "Your account may not refund payments: ask an owner for the payments permission. "
            "Nothing was sent to the gateway."
        )
    attempt, rows = _reserve(order, staff, wanted, delivery, reason, seen)
    amount = sum(row.amount for row in rows)
    ref, ids = rows[0].refund_ref, [row.id for row in rows]
    before = attempt.refunded
    try:
        backoffice.refund(attempt, amount, staff.email)
    except backoffice.ActionRefused as refused:
        db.session.execute(delete(RefundLine).where(RefundLine.id.in_(ids)))
        db.session.commit()
        raise NotRefunded(f"Nothing was refunded. {refused}") from refused
    except backoffice.ActionUnknown as lost:
        raise NotRefunded(
            "The gateway did not answer the refund; its outcome will be checked automatically. "
            "The lines stay set aside for this refund and nothing was put back in stock: check "
            "the payment before refunding them again."
        ) from lost
    if attempt.refunded < before + amount:
        raise NotRefunded(
            "The gateway answered, but its amounts do not show the refund: the lines stay set "
            "aside and nothing was put back in stock. Check the payment with the gateway."
        )
    _confirm(order, staff, ids, ref, reason, amount)
    return amount


def _money(amount: int, order: Order) -> str:
    return format_money(amount, order.currency, current_app.config["LOCALE"])


def _reserve(
    order: Order, staff: StaffUser, wanted: list[Wanted], delivery: bool, reason: str, seen: int
) -> tuple[PaymentAttempt, list[RefundLine]]:
    order = service.lock(order.id)
    try:
        attempt, rows = _rows(order, staff, wanted, delivery, reason, seen)
    except NotRefunded:
        db.session.rollback()
        raise
    db.session.add_all(rows)
    db.session.commit()
    return attempt, rows


def _rows(
    order: Order, staff: StaffUser, wanted: list[Wanted], delivery: bool, reason: str, seen: int
) -> tuple[PaymentAttempt, list[RefundLine]]:
    if refunds_seen(order) != seen:
        raise NotRefunded(
            "The order was refunded from another page meanwhile (or this one was sent twice): "
            "look at it again. Nothing was refunded."
        )
    attempt = payment_to_refund(order)
    if attempt is None:
        raise NotRefunded(
            f"Nothing of order {order.number} can be refunded: it is "
            f"{order.state.replace('_', ' ')}."
        )
    gateway = configured(attempt.gateway)
    if gateway is None or not gateway.supports_refund:
        title = gateway.title if gateway is not None else attempt.gateway
        raise NotRefunded(
            f"{title} has no refund in its protocol here: refund it from the gateway's own "
            "back office. Nothing was sent to the gateway."
        )
    left = {item.line.id: item for item in refundable_lines(order)}
    ref = f"{attempt.reference}-{attempt.refunded}"
    rows = []
    for want in wanted:
        if want.quantity == 0:
            continue
        item = left.get(want.line_id)
        if item is None:
            raise NotRefunded("A line of another order was sent: look at the order again.")
        if not 0 < want.quantity <= item.left:
            raise NotRefunded(
                f"{item.line.name}: only {item.left} of {item.line.quantity} can still be "
                f"refunded, not {want.quantity}. Nothing was refunded."
            )
        rows.append(_row(order, staff, attempt, reason, item.line, want.quantity, want.restock))
    if delivery:
        if not delivery_refundable(order):
            raise NotRefunded("The delivery was refunded already. Nothing was refunded.")
        rows.append(_row(order, staff, attempt, reason, None, 1, False))
    amount = sum(row.amount for row in rows)
    if amount <= 0:
        raise NotRefunded("Choose a quantity of at least one line, or the delivery, to refund.")
    limit = backoffice.refundable(attempt)
    if amount > limit:
        raise NotRefunded(
            f"These lines come to {_money(amount, order)}, but only {_money(limit, order)} of "
            "the payment is left to refund. Nothing was refunded."
        )
    for row in rows:
        row.refund_ref = f"{ref}-{amount}"
    return attempt, rows


def _row(order, staff, attempt, reason, line: OrderLine | None, quantity: int, restock: bool):
    price = line.unit_price if line is not None else order.delivery_price
    return RefundLine(
        order_id=order.id,
        order_line_id=line.id if line is not None else None,
        quantity=quantity,
        amount=price * quantity,
        restock=restock and line is not None and line.product_id is not None,
        attempt_id=attempt.id,
        refund_ref="",
        reason=reason,
        actor=staff.email,
    )


def _confirm(order: Order, staff: StaffUser, ids: list[int], ref: str, reason: str, amount: int):
    """The gateway confirmed the refund: the lines are done, and their goods go back."""
    order = service.lock(order.id)
    db.session.execute(
        update(RefundLine).where(RefundLine.id.in_(ids)).values(confirmed_at=now_utc())
    )
    rows = db.session.execute(select(RefundLine).where(RefundLine.id.in_(ids))).scalars().all()
    lines = {line.id: line for line in order.lines}
    parts = []
    for row in rows:
        line = lines.get(row.order_line_id) if row.order_line_id is not None else None
        name = line.name if line is not None else "delivery"
        parts.append(f"{row.quantity} × {name}" + (" (restocked)" if row.restock else ""))
        if row.restock and line is not None and line.product_id is not None:
            product = db.session.get_one(Product, line.product_id)
            stock.adjust(
                product,
                row.quantity,
                StockReason.REFUND_RESTOCK,
                f"order {order.number} refund {ref}",
                staff.email,
                order_id=order.id,
            )
    detail = f"{_money(amount, order)}: {', '.join(parts)}; {reason}"
    service.note(order, f"refunded by line by {staff.email}: {detail}")
    audit.record(staff.email, "order.refund_lines", order.number, detail)
    db.session.commit()
