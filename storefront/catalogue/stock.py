"""Stock movements: every change of a product's stock is written down with its reason.

The order service calls :func:`sold` and :func:`released` inside its own transaction, so a
movement exists exactly when the stock change it describes was committed. The admin changes
stock through :func:`adjust`, a guarded update that can never take stock below zero.
"""

from __future__ import annotations

from sqlalchemy import update

from storefront.catalogue.models import Product, StockMovement, StockReason
from storefront.database import rows_changed
from storefront.extensions import db

SHOP = "shop"


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
    changed = rows_changed(
        update(Product)
        .where(Product.id == product.id, Product.stock + delta >= 0)
        .values(stock=Product.stock + delta)
        .execution_options(synchronize_session=False)
    )
    if changed != 1:
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
