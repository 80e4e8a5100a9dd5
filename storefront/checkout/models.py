"""Delivery methods: what a delivery costs, above which basket it is free, where it goes."""

from __future__ import annotations

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from storefront.catalogue.cache import WATCHED
from storefront.extensions import Model


class DeliveryMethod(Model):
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    price: Mapped[int]  # minor units of the shop's currency, VAT included (standard rate)
    # A basket (VAT included) of at least this much delivers free; None: never free.
    free_over: Mapped[int | None]
    # ISO 3166 codes, comma separated, e.g. "IE,GB"; the method is offered only there.
    countries: Mapped[str] = mapped_column(String(1000), default="")
    active: Mapped[bool] = mapped_column(default=True)
    position: Mapped[int] = mapped_column(default=0)

    def serves(self, country: str) -> bool:
        return country.upper() in {c.strip().upper() for c in self.countries.split(",")}

    def price_for(self, basket: int) -> int:
        """What delivery costs for a basket of ``basket`` minor units."""
        return 0 if self.free_over is not None and basket >= self.free_over else self.price


# Catalogue pages may show what delivery costs: a change to a method moves the pages' version.
WATCHED.append(DeliveryMethod)
