"""Stock: every change of a product's stock, and the movement that writes down its reason.

The order service takes and gives back stock with :func:`take` and :func:`give_back`, and
calls :func:`sold` and :func:`released` inside the same transaction, so a movement exists
exactly when the stock change it describes was committed. The admin changes stock through
:func:`adjust`. Each is a guarded update that can never take stock below zero, and each tells
the page cache whether the pages show the new stock differently (:func:`shown`).
"""

from __future__ import annotations

from sqlalchemy import update

from storefront.cart.service import MAX_QUANTITY
from storefront.catalogue.cache import STOCK_ONLY, mark_changed
from storefront.catalogue.models import Product, StockMovement, StockReason
from storefront.extensions import db

SHOP = "shop"
# "Only N left" up to this many (templates/catalogue/_macros.html, stock_status).
LOW_STOCK = 5


def shown(stock: int) -> int:
    """What the pages show of ``stock``: whether any is left, "only N left" up to
    :data:`LOW_STOCK`, and the quantity fields' largest value, at most the cart's limit; any
    stock beyond both looks the same. Two stocks with the same value here give the same
    pages (tests/test_catalogue_cache.py renders them to hold the templates to it)."""
    return max(0, min(stock, max(MAX_QUANTITY, LOW_STOCK)))


def take(product_id: int, quantity: int) -> bool:
    """Take ``quantity`` of an active product's stock, if it has that many; not committed."""
    return _change(product_id, -quantity, Product.active.is_(True)) is not None


def give_back(product_id: int, quantity: int) -> None:
    """Put ``quantity`` back into a product's stock (an order that will not be paid)."""
    _change(product_id, quantity)


def _change(product_id: int, delta: int, *conditions) -> int | None:
    """Add ``delta`` to the stock where it stays at zero or more and ``conditions`` hold; the
    new stock, or None when nothing changed (no such product, too little stock). The version
    moves with the commit when the pages show the new stock differently."""
    after = db.session.execute(
        update(Product)
        .where(Product.id == product_id, Product.stock + delta >= 0, *conditions)
        .values(stock=Product.stock + delta)
        .returning(Product.stock)
        .execution_options(synchronize_session=False, **{STOCK_ONLY: True})
    ).scalar_one_or_none()
    if after is not None and shown(after - delta) != shown(after):
        mark_changed()
    return after


class StockRefused(ValueError):
    """The adjustment would take the stock below zero."""


def sold(lines, order=None) -> None:
    """Stock reserved for a new order: one movement per line (``(product, quantity)`` pairs)."""
    for product, quantity in lines:
        db.session.add(
            StockMovement(
                product_id=product.id,
                delta=-quantity,
                reason=StockReason.SALE,
                note=f"order {order.number}" if order is not None else "order placed",
                actor=SHOP,
                order_id=order.id if order is not None else None,
            )
        )


def released(order) -> None:
    """Stock given back by an order that expired or was cancelled."""
    for line in order.lines:
        if line.product_id is not None:
            db.session.add(
                StockMovement(
                    product_id=line.product_id,
                    delta=line.quantity,
                    reason=StockReason.RELEASE,
                    note=f"order {order.number} {order.state.replace('_', ' ')}",
                    actor=SHOP,
                    order_id=order.id,
                )
            )


def adjust(
    product: Product,
    delta: int,
    reason: StockReason,
    note: str,
    actor: str,
    order_id: int | None = None,
) -> StockMovement:
    """Add ``delta`` (negative: take away) to the stock and write the movement; not committed.

    :raise StockRefused: the stock would go below zero (concurrent sales included: the check
        is in the UPDATE itself).
    """
    if _change(product.id, delta) is None:
        raise StockRefused(
            f"Only {product.stock} in stock: taking away {-delta} would leave less than none."
        )
    db.session.refresh(product, ["stock"])
    movement = StockMovement(
        product_id=product.id,
        delta=delta,
        reason=reason,
        note=note,
        actor=actor,
        order_id=order_id,
    )
    db.session.add(movement)
    return movement
