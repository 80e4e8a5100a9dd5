"""The catalogue: categories and the products in them, with their stock and its history."""

from __future__ import annotations

import enum
from datetime import datetime

from flask import url_for
from sqlalchemy import CheckConstraint, DateTime, ForeignKey, Index, String, Text, event
from sqlalchemy.orm import Mapped, mapped_column, relationship

from storefront.catalogue import search
from storefront.extensions import Model
from storefront.timeutil import now_utc


class TaxClass(enum.StrEnum):
    """Which VAT rate a product's price carries (rates are the checkout's business)."""

    STANDARD = "standard"
    REDUCED = "reduced"
    ZERO = "zero"


class Category(Model):
    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(80), unique=True)
    name: Mapped[str] = mapped_column(String(120))
    description: Mapped[str] = mapped_column(Text, default="")
    position: Mapped[int] = mapped_column(default=0)
    # One level of nesting: a child's parent is always a top-level category (the admin checks).
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("category.id"), index=True)

    products: Mapped[list[Product]] = relationship(back_populates="category")
    parent: Mapped[Category | None] = relationship(remote_side=[id], back_populates="children")
    children: Mapped[list[Category]] = relationship(back_populates="parent")


class Product(Model):
    __table_args__ = (
        # The last line of defence against overselling: no transaction may commit negative stock.
        CheckConstraint("stock >= 0", name="stock_not_negative"),
        CheckConstraint("price > 0", name="price_positive"),
        # A category's listing, counted and paged from the index alone, in name or price
        # order: without them a page of a 30,000-product category read every one of them.
        Index("ix_product_listing_name", "category_id", "active", "name", "id"),
        Index("ix_product_listing_price", "category_id", "active", "price", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(120), unique=True)
    name: Mapped[str] = mapped_column(String(200), index=True)
    description: Mapped[str] = mapped_column(Text, default="")
    # Price in minor units of the shop's currency (STOREFRONT_CURRENCY).
    price: Mapped[int]
    stock: Mapped[int] = mapped_column(default=0)
    # A file of static/img/products/ (the demo catalogue's pictures)…
    image: Mapped[str] = mapped_column(String(200), default="")
    # …or, taking precedence, a picture uploaded in the admin: its random file name.
    upload: Mapped[str] = mapped_column(String(64), default="", server_default="")
    image_alt: Mapped[str] = mapped_column(String(300), default="")
    active: Mapped[bool] = mapped_column(default=True)
    tax_class: Mapped[str] = mapped_column(
        String(20), default=TaxClass.STANDARD, server_default=TaxClass.STANDARD.value
    )
    category_id: Mapped[int] = mapped_column(ForeignKey("category.id"), index=True)

    category: Mapped[Category] = relationship(back_populates="products")

    @property
    def image_url(self) -> str:
        """Where the product's picture is served from; "" when it has none."""
        if self.upload:
            return url_for("media.image", name=self.upload)
        if self.image:
            return url_for("static", filename="img/products/" + self.image)
        return ""


# The search index is not a model (see catalogue.search): built and dropped with the table.
event.listen(
    Product.__table__, "after_create", lambda _t, connection, **_kw: search.install(connection)
)
event.listen(
    Product.__table__, "before_drop", lambda _t, connection, **_kw: search.uninstall(connection)
)


class StockReason(enum.StrEnum):
    SALE = "sale"  # reserved when an order is placed
    RELEASE = "release"  # an unpaid order expired or was cancelled
    REFUND_RESTOCK = "refund_restock"  # goods came back with a refund
    MANUAL = "manual"  # counted, damaged, delivered: a person's adjustment


class StockMovement(Model):
    """One change of a product's stock, with why and by whom: the stock's whole history."""

    id: Mapped[int] = mapped_column(primary_key=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("product.id"), index=True)
    delta: Mapped[int]
    reason: Mapped[StockReason] = mapped_column(String(20))
    note: Mapped[str] = mapped_column(String(300), default="")
    # A staff member's email, or "shop" for what the shop does on its own (sales, expiries).
    actor: Mapped[str] = mapped_column(String(254), default="shop")
    order_id: Mapped[int | None] = mapped_column(ForeignKey("order.id"), index=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=now_utc)

    product: Mapped[Product] = relationship()
