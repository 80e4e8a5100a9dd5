"""Placing orders and moving them through their states, each move a guarded update.

Every transition is ``UPDATE … WHERE state IN (allowed)``: whichever of several concurrent
requests (browser return, callback, reconciler, a second server process) gets there first makes
the change and its effects; the others find the row already moved and do nothing.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import timedelta

from flask import current_app
from flask_babel import gettext
from sqlalchemy import exc, func, select, update

from storefront.catalogue import stock as stock_history
from storefront.catalogue.models import Product
from storefront.database import rows_changed
from storefront.extensions import db
from storefront.i18n import current_locale
from storefront.orders import vat
from storefront.orders.models import (
    ORDER_MAILS,
    PLACED_MAIL,
    REPEATABLE_MAILS,
    Order,
    OrderEvent,
    OrderLine,
    OrderState,
    OrderTax,
    OutboxMessage,
    allowed_sources,
)
from storefront.timeutil import now_utc


class OutOfStock(Exception):
    """Some lines cannot be reserved; ``names`` says which."""

    def __init__(self, names: list[str]):
        super().__init__(", ".join(names))
        self.names = names


class OverLimit(Exception):
    """The order would hold more stock than one unpaid order or one customer may; the message
    is written for the customer."""


@dataclass(frozen=True)
class CustomerDetails:
    email: str
    name: str
    address: str
    city: str
    postcode: str
    country: str
    phone: str = ""
    # A billing address of its own, or all "": the same as the delivery address.
    billing_name: str = ""
    billing_address: str = ""
    billing_city: str = ""
    billing_postcode: str = ""
    billing_country: str = ""
    note: str = ""  # the customer's note to the shop, plain text


# What a URL key of ours can look like (base64url): anything else is refused before a query.
TOKEN = re.compile(r"[A-Za-z0-9_-]{16,64}")


def new_token() -> str:
    """An unguessable URL key: 192 random bits."""
    return secrets.token_urlsafe(24)


def is_token(text: str) -> bool:
    """Whether ``text`` has the shape of one of our URL keys (says nothing of its existence)."""
    return TOKEN.fullmatch(text) is not None


def _new_number() -> str:
    # Random, so that order numbers do not reveal how much the shop sells.
    return str(secrets.randbelow(90_000_000) + 10_000_000)


def find_by_checkout_key(key: str) -> Order | None:
    return db.session.execute(select(Order).where(Order.checkout_key == key)).scalar_one_or_none()


def place_order(
    lines: list[tuple[Product, int]],
    details: CustomerDetails,
    checkout_key: str,
    delivery: tuple[str, int] = ("", 0),
):
    """Freeze ``lines`` into a new order, reserve their stock and queue the "order received"
    mail, in one transaction.

    Returns ``(order, created)``: a second submission of the same checkout form (a double click,
    a second tab) finds the order the first one made instead of making another.

    :raise OutOfStock: a line's stock ran out since the cart was shown; nothing is stored.
    :raise OverLimit: more than one unpaid order or one customer may hold; nothing is stored.

    ``delivery`` is the chosen method's name and price for this basket, frozen on the order,
    in its total, and in the VAT per rate stored with it (``OrderTax``, see ``orders.vat``).
    """
    existing = find_by_checkout_key(checkout_key)
    if existing is not None:
        return existing, False
    check_hold_limits(lines, details.email)
    currency = current_app.config["CURRENCY"]
    window = timedelta(seconds=float(current_app.config["ORDER_PAYMENT_WINDOW"]))
    for _ in range(5):  # a random order number may, rarely, be taken already
        order = Order(
            number=_new_number(),
            receipt_token=new_token(),
            checkout_key=checkout_key,
            email=details.email,
            name=details.name,
            address=details.address,
            city=details.city,
            postcode=details.postcode,
            country=details.country,
            phone=details.phone,
            billing_name=details.billing_name,
            billing_address=details.billing_address,
            billing_city=details.billing_city,
            billing_postcode=details.billing_postcode,
            billing_country=details.billing_country,
            note=details.note,
            currency=currency,
            total=sum(product.price * quantity for product, quantity in lines) + delivery[1],
            delivery_name=delivery[0],
            delivery_price=delivery[1],
            locale=current_locale(),
            payment_due_by=now_utc() + window,
            lines=[
                OrderLine(
                    product_id=p.id,
                    name=p.name,
                    unit_price=p.price,
                    quantity=q,
                    tax_class=p.tax_class,
                )
                for p, q in lines
            ],
            events=[OrderEvent(to_state=OrderState.PENDING_PAYMENT, note="order placed")],
            taxes=[
                OrderTax(tax_class=t.tax_class, rate=t.rate, gross=t.gross, vat=t.vat)
                for t in vat.breakdown(
                    [(p.price * q, p.tax_class) for p, q in lines],
                    delivery[1],
                    current_app.config["VAT_RATES"],
                )
            ],
        )
        db.session.add(order)
        try:
            db.session.flush()
        except exc.IntegrityError:
            db.session.rollback()
            existing = find_by_checkout_key(checkout_key)
            if existing is not None:  # the other submission won the race
                return existing, False
            continue
        short = _reserve_stock(lines, order)
        if short:
            db.session.rollback()
            raise OutOfStock(short)
        # "We have your order": in the placing transaction, so a second submission that finds
        # this order queues nothing more (the caller drains after its response).
        queue_message(order, PLACED_MAIL)
        db.session.commit()
        return order, True
    raise RuntimeError("could not allocate an order number")


def check_hold_limits(lines: list[tuple[Product, int]], email: str) -> None:
    """Stock is reserved for an unpaid order until it is paid or its window closes, so what
    one order, and one customer's unpaid orders together, may hold is bounded: otherwise one
    anonymous order could show the whole shop sold out for the length of the window.

    :raise OverLimit: a line, the order or the customer's unpaid orders hold too much.
    """
    config = current_app.config
    per_line, per_order = config["ORDER_MAX_PER_LINE"], config["ORDER_MAX_UNITS"]
    for product, quantity in lines:
        if quantity > per_line:
            raise OverLimit(
                gettext(
                    "One order can hold at most %(most)d of %(product)s. "
                    "Please lower the quantity in your cart.",
                    most=per_line,
                    product=product.name,
                )
            )
    units = sum(quantity for _, quantity in lines)
    if units > per_order:
        raise OverLimit(
            gettext(
                "One order can hold at most %(most)d items. Please place a smaller order.",
                most=per_order,
            )
        )
    held = db.session.execute(
        select(func.coalesce(func.sum(OrderLine.quantity), 0))
        .join(Order, Order.id == OrderLine.order_id)
        .where(
            Order.state == OrderState.PENDING_PAYMENT,
            func.lower(Order.email) == email.strip().lower(),
        )
    ).scalar_one()
    if held + units > config["CUSTOMER_MAX_UNPAID_UNITS"]:
        raise OverLimit(
            gettext(
                "You have other orders waiting for payment. Please pay or let them lapse "
                "before placing another one."
            )
        )


def _reserve_stock(lines: list[tuple[Product, int]], order: Order | None = None) -> list[str]:
    """Take the stock for every line; the names of the lines that could not be taken."""
    short = [
        product.name for product, quantity in lines if not stock_history.take(product.id, quantity)
    ]
    stock_history.sold(lines, order)  # rolled back with the order when a line is short
    return short


def _release_stock(order: Order) -> None:
    for line in order.lines:
        if line.product_id is not None:
            stock_history.give_back(line.product_id, line.quantity)
    stock_history.released(order)


def lock(order_id: int) -> Order:
    """The order, row-locked until the end of the transaction (PostgreSQL; SQLite serialises
    writers on its own), so that concurrent settlements of one order take turns."""
    return db.session.execute(
        select(Order)
        .where(Order.id == order_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).scalar_one()


def transition(order: Order, to: OrderState, note: str) -> bool:
    """Move ``order`` to ``to`` if ``ORDER_PIPELINE`` allows it from the state the order is in
    now; True if this call moved it.

    Effects of the move happen here, inside the caller's transaction, exactly once: stock goes
    back on expiry or cancellation; the move's mail (``ORDER_MAILS``) is queued.
    """
    moved = rows_changed(
        update(Order)
        .where(Order.id == order.id, Order.state.in_(allowed_sources(to)))
        .values(state=to, updated_at=now_utc())
        .execution_options(synchronize_session=False)
    )
    if moved != 1:
        return False
    before = order.state
    db.session.refresh(order, ["state"])
    db.session.add(OrderEvent(order_id=order.id, from_state=before, to_state=to, note=note))
    if to in (OrderState.EXPIRED, OrderState.CANCELLED):
        _release_stock(order)
    kind = ORDER_MAILS.get(to)
    if kind is not None:
        sequence = None
        if kind in REPEATABLE_MAILS:  # the how-many-th move of its kind: one mail per move
            db.session.flush()
            sequence = db.session.execute(
                select(func.count(OrderEvent.id)).where(
                    OrderEvent.order_id == order.id,
                    OrderEvent.to_state.in_([s for s, k in ORDER_MAILS.items() if k == kind]),
                )
            ).scalar_one()
        queue_message(order, kind, sequence)
    return True


def note(order: Order, text: str) -> None:
    """An entry in the order's history that changes nothing."""
    db.session.add(
        OrderEvent(order_id=order.id, from_state=order.state, to_state=order.state, note=text)
    )


def queue_message(order: Order, kind: str, sequence: int | None = None) -> None:
    """Queue ``kind`` for ``order`` once (once per ``sequence`` where one is given: the second
    refund's mail is ``refunded:2``). Callers hold the order's lock (see ``lock``), so the
    check cannot race; the unique (kind, order) constraint is the backstop if one ever did."""
    if sequence is not None:
        kind = f"{kind}:{sequence}"
    exists = db.session.execute(
        select(OutboxMessage.id).where(
            OutboxMessage.kind == kind, OutboxMessage.order_id == order.id
        )
    ).first()
    if exists is None:
        db.session.add(OutboxMessage(kind=kind, order_id=order.id))
