"""What the catalogue and stock pages do: each function one change, recorded with who made it,
committed whole or not at all."""

from __future__ import annotations

from dataclasses import dataclass

from flask import current_app
from sqlalchemy import exists, func, select
from sqlalchemy.orm import selectinload
from wtforms.fields.choices import SelectChoice  # type: ignore[attr-defined]  # not in types-WTForms 3.2

from storefront.admin import audit
from storefront.admin.images import delete_upload, save_upload
from storefront.catalogue import stock
from storefront.catalogue.models import Category, Product, StockMovement, StockReason
from storefront.catalogue.seed import slugify
from storefront.extensions import db
from storefront.money import to_major
from storefront.orders.models import Order, OrderLine

HISTORY_SHOWN = 200


class CatalogueRefused(ValueError):
    """The change cannot be made; ``field`` names the form field to show the message at."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field


@dataclass
class ProductData:
    name: str
    slug: str
    description: str
    price: int  # minor units
    category_id: int
    tax_class: str
    image_alt: str
    stock: int | None = None  # only when creating: later changes go through adjust_stock


# Reads -------------------------------------------------------------------------------------
def products() -> list[Product]:
    stmt = select(Product).options(selectinload(Product.category)).order_by(Product.name)
    return list(db.session.execute(stmt).scalars())


def categories() -> list[Category]:
    """Every category, top-level ones each followed by their children, in menu order."""
    every = list(
        db.session.execute(select(Category).order_by(Category.position, Category.name)).scalars()
    )
    ordered = []
    for top in (c for c in every if c.parent_id is None):
        ordered.append(top)
        ordered.extend(c for c in every if c.parent_id == top.id)
    return ordered


def history(product: Product) -> list[StockMovement]:
    stmt = (
        select(StockMovement)
        .where(StockMovement.product_id == product.id)
        .order_by(StockMovement.id.desc())
        .limit(HISTORY_SHOWN)
    )
    return list(db.session.execute(stmt).scalars())


def was_ordered(product: Product) -> bool:
    return db.session.execute(
        select(exists().where(OrderLine.product_id == product.id))
    ).scalar_one()


def order_numbers(movements: list[StockMovement]) -> dict[int, str]:
    ids = {m.order_id for m in movements if m.order_id}
    if not ids:
        return {}
    rows = db.session.execute(select(Order.id, Order.number).where(Order.id.in_(ids)))
    return dict(rows.all())


# Products ----------------------------------------------------------------------------------
def _free_slug(model, wanted: str, own_id: int | None, typed: bool) -> str:
    """``wanted`` if no other row has it; a typed slug that is taken is refused, a derived one
    gets a number."""
    candidate, n = wanted, 1
    while True:
        other = db.session.execute(select(model.id).where(model.slug == candidate)).scalar()
        if other is None or other == own_id:
            return candidate
        if typed:
            raise CatalogueRefused(f"The address {candidate} is used already.", "slug")
        n += 1
        candidate = f"{wanted[: model.slug.type.length - 6]}-{n}"


def _shown(value) -> str:
    """A price (minor units) as typed in the admin; anything else as it is."""
    if isinstance(value, int):
        return to_major(value, current_app.config["CURRENCY"])
    return str(value)


def save_product(product: Product | None, data: ProductData, picture, actor: str) -> Product:
    """Create (``product`` None) or update a product, with a new picture if one was sent.

    :raise CatalogueRefused: the slug is taken, the category unknown, or the picture refused.
    :raise images.ImageRefused: the picture is not one the shop accepts.
    """
    if db.session.get(Category, data.category_id) is None:
        raise CatalogueRefused("Choose a category.", "category")
    derived = slugify(data.name)[:120] or "product"
    slug = _free_slug(
        Product, data.slug or derived, product.id if product else None, bool(data.slug)
    )
    upload = save_upload(picture) if picture else None
    creating = product is None
    if product is None:
        product = Product(stock=0)
        db.session.add(product)
    before = {"price": product.price, "name": product.name}
    old_upload = product.upload
    product.name, product.slug, product.description = data.name, slug, data.description
    product.price, product.category_id, product.tax_class = (
        data.price,
        data.category_id,
        data.tax_class,
    )
    product.image_alt = data.image_alt
    if upload:
        product.upload = upload
    db.session.flush()
    if creating:
        audit.record(actor, "product created", product.name, f"price {_shown(data.price)}")
        if data.stock:
            stock.adjust(product, data.stock, StockReason.MANUAL, "initial stock", actor)
    else:
        changes = [
            f"{key} {_shown(was)} → {_shown(getattr(product, key))}"
            for key, was in before.items()
            if was != getattr(product, key)
        ]
        audit.record(actor, "product edited", product.name, "; ".join(changes))
    if upload:
        audit.record(actor, "picture uploaded", product.name, upload)
    db.session.commit()
    if upload and old_upload:
        delete_upload(old_upload)
    return product


def set_active(product: Product, active: bool, actor: str) -> None:
    """Archive (hidden from the shop, kept for the orders that name it) or bring back."""
    product.active = active
    audit.record(actor, "product restored" if active else "product archived", product.name)
    db.session.commit()


def delete_product(product: Product, actor: str) -> None:
    """Delete a product that was never ordered, with its stock history.

    :raise CatalogueRefused: it was ordered: archive it instead.
    """
    if was_ordered(product):
        raise CatalogueRefused(
            f"{product.name} was ordered: orders keep referring to it, so it can be archived "
            "(hidden from the shop) but not deleted."
        )
    name, upload = product.name, product.upload
    db.session.execute(db.delete(StockMovement).where(StockMovement.product_id == product.id))
    db.session.delete(product)
    audit.record(actor, "product deleted", name)
    db.session.commit()
    delete_upload(upload)


def adjust_stock(
    product: Product, delta: int, reason: str, note: str, order_number: str, actor: str
) -> StockMovement:
    """Change a product's stock with a reason, by one staff member.

    :raise CatalogueRefused: unknown order number, or the stock would go below zero.
    """
    order_id = None
    if order_number:
        order_id = db.session.execute(
            select(Order.id).where(Order.number == order_number.strip())
        ).scalar()
        if order_id is None:
            raise CatalogueRefused(f"There is no order {order_number}.", "order")
    try:
        movement = stock.adjust(product, delta, StockReason(reason), note, actor, order_id)
    except stock.StockRefused as refused:
        db.session.rollback()
        raise CatalogueRefused(str(refused), "delta") from None
    audit.record(actor, "stock adjusted", product.name, f"{delta:+d} ({reason}): {note}")
    db.session.commit()
    return movement


# Categories --------------------------------------------------------------------------------
def parent_choices(category: Category | None) -> list[SelectChoice]:
    """Top-level categories a category may go inside: not itself, and none at all for a
    category that has children of its own (nesting is one level deep)."""
    choices = [SelectChoice(0, "None: a top-level category")]
    if category is not None and category.children:
        return choices
    tops = db.session.execute(
        select(Category).where(Category.parent_id.is_(None)).order_by(Category.position)
    ).scalars()
    return choices + [
        SelectChoice(c.id, c.name) for c in tops if category is None or c.id != category.id
    ]


def save_category(
    category: Category | None,
    name: str,
    slug: str,
    description: str,
    position: int,
    parent_id: int,
    actor: str,
) -> Category:
    """Create or update a category.

    :raise CatalogueRefused: slug taken, or a parent that would nest two levels deep.
    """
    parent = db.session.get(Category, parent_id) if parent_id else None
    if parent_id and parent is None:
        raise CatalogueRefused("Choose a category from the list.", "parent")
    if parent is not None:
        if parent.parent_id is not None:
            raise CatalogueRefused(f"{parent.name} is inside another category itself.", "parent")
        if category is not None and (parent.id == category.id or category.children):
            raise CatalogueRefused(
                "A category with categories inside it cannot go inside another.", "parent"
            )
    own = category.id if category else None
    slug = _free_slug(Category, slug or slugify(name)[:80] or "category", own, bool(slug))
    creating = category is None
    if category is None:
        category = Category()
        db.session.add(category)
    category.name, category.slug, category.description = name, slug, description
    category.position, category.parent_id = position, parent.id if parent else None
    audit.record(actor, "category created" if creating else "category edited", name)
    db.session.commit()
    return category


def product_count(category: Category) -> int:
    return db.session.execute(
        select(func.count()).select_from(Product).where(Product.category_id == category.id)
    ).scalar_one()
