"""What an order adds up to, as the review, the receipt and the back office show it: the lines'
subtotal, the delivery, the total and the VAT in it per rate.

An order's VAT is the one frozen with it (its ``OrderTax`` rows); before it is placed, the same
``orders.vat.breakdown`` works it out from the cart and the delivery chosen, so the review shows
what the order will store.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from flask import current_app

from storefront.orders import vat


@dataclass(frozen=True)
class RateLine:
    rate: int  # hundredths of a percent
    vat: int  # minor units

    @property
    def percent(self) -> str:
        whole, part = divmod(self.rate, 100)
        return f"{whole}.{part:02d}".rstrip("0").rstrip(".")


@dataclass(frozen=True)
class Totals:
    subtotal: int
    delivery_name: str
    delivery_price: int
    total: int
    taxes: tuple[RateLine, ...]
    currency: str

    @property
    def has_delivery(self) -> bool:
        return bool(self.delivery_name or self.delivery_price)


def _rates(rows: Iterable) -> tuple[RateLine, ...]:
    merged: dict[int, int] = {}
    for row in rows:
        merged[row.rate] = merged.get(row.rate, 0) + row.vat
    return tuple(RateLine(rate, amount) for rate, amount in sorted(merged.items(), reverse=True))


def of_order(order) -> Totals:
    """The totals of a placed order, from what it froze."""
    return Totals(
        subtotal=sum(line.total for line in order.lines),
        delivery_name=order.delivery_name,
        delivery_price=order.delivery_price,
        total=order.total,
        taxes=_rates(order.taxes),
        currency=order.currency,
    )


def of_cart(cart, delivery_name: str, delivery_price: int) -> Totals:
    """The totals the cart would be placed with, with the delivery chosen."""
    breakdown = vat.breakdown(
        [(line.total, line.product.tax_class) for line in cart.lines],
        delivery_price,
        current_app.config["VAT_RATES"],
    )
    return Totals(
        subtotal=cart.total,
        delivery_name=delivery_name,
        delivery_price=delivery_price,
        total=cart.total + delivery_price,
        taxes=_rates(breakdown),
        currency=cart.currency,
    )
