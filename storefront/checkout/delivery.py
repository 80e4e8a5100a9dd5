"""Which delivery methods a customer may choose, and what the chosen one costs."""

from __future__ import annotations

from dataclasses import dataclass

from flask_babel import gettext as _
from sqlalchemy import select

from storefront.checkout.models import DeliveryMethod
from storefront.extensions import db
from storefront.templating import money


def available(country: str) -> list[DeliveryMethod]:
    """The active methods serving ``country``, in the admin's order; empty: not served."""
    methods = db.session.execute(
        select(DeliveryMethod)
        .where(DeliveryMethod.active.is_(True))
        .order_by(DeliveryMethod.position, DeliveryMethod.id)
    ).scalars()
    return [m for m in methods if m.serves(country)]


def find(method_id: int, country: str) -> DeliveryMethod | None:
    """The method ``method_id`` if it is active and serves ``country`` (else None)."""
    return next((m for m in available(country) if m.id == method_id), None)


def needed() -> bool:
    """Whether the checkout asks for a delivery: a shop with no active method charges none."""
    return (
        db.session.execute(
            select(DeliveryMethod.id).where(DeliveryMethod.active.is_(True)).limit(1)
        ).first()
        is not None
    )


@dataclass(frozen=True)
class Quote:
    """A method as the customer is offered it: its price for this basket."""

    method_id: int | None
    name: str
    price: int

    @property
    def as_order_delivery(self) -> tuple[str, int]:
        return self.name, self.price


NO_DELIVERY = Quote(None, "", 0)


def quotes(country: str, basket: int) -> list[Quote]:
    """What each method serving ``country`` costs for a basket of ``basket`` minor units."""
    return [Quote(m.id, m.name, m.price_for(basket)) for m in available(country)]


def cheapest(offered: list[Quote]) -> Quote | None:
    """The cheapest of ``offered``, the admin's order breaking a tie (the preselected one)."""
    return min(offered, key=lambda q: q.price) if offered else None


class DeliveryChanged(Exception):
    """The delivery chosen is no longer on offer at the price the customer saw; the message
    (empty when nothing was chosen yet) is written for the customer."""


def confirm(chosen: dict | None, country: str, basket: int) -> Quote:
    """The customer's choice (``{"id", "price"}`` as stored at the choice) as it stands now.

    :raise DeliveryChanged: nothing chosen yet, the method is gone (deactivated, or no longer
        serving ``country``), or its price for this basket is not the one the customer saw.
    """
    if not needed():
        if chosen:  # the shop stopped charging for delivery: show the customer the new total
            raise DeliveryChanged(_("Delivery has changed. Please check your order again."))
        return NO_DELIVERY
    if not chosen:
        raise DeliveryChanged("")
    method = find(int(chosen.get("id") or 0), country)
    if method is None:
        raise DeliveryChanged(
            _("The delivery you chose is no longer available. Please choose again.")
        )
    quote = Quote(method.id, method.name, method.price_for(basket))
    if quote.price != chosen.get("price"):
        raise DeliveryChanged(
            _(
                "The price of %(name)s is now %(price)s. Please check your delivery choice.",
                name=quote.name,
                price=money(quote.price),
            )
        )
    return quote
