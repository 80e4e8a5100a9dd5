"""Catalogue reads, each in a fixed number of SQL queries whatever the catalogue's size.

Every page shows the category navigation, loaded once per request (``categories``); a category
page finds its category in that list instead of asking the database again. Listings count once
and fetch one page, so a page costs at most three queries.
"""

from __future__ import annotations

import functools
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from flask import abort, current_app, g
from sqlalchemy import Select, bindparam, false, func, select, union_all
from sqlalchemy.orm import joinedload

from storefront.catalogue import search
from storefront.catalogue.cache import current_version, rows_of
from storefront.catalogue.models import Category, Product
from storefront.extensions import db

# A search longer than this is no longer a product name; cutting it bounds the words looked up.
MAX_QUERY_LENGTH = 100
# Page numbers with more digits than this cannot exist; refusing them early avoids huge OFFSETs.
MAX_PAGE_DIGITS = 6


@dataclass
class Page:
    """One page of a listing: the items and what the pagination links need."""

    items: list[Product]
    number: int
    per_page: int
    total: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))

    @property
    def has_prev(self) -> bool:
        return self.number > 1

    @property
    def has_next(self) -> bool:
        return self.number < self.pages

    def numbers(self, around: int = 2) -> list[int | None]:
        """Page numbers to link, with ``None`` where a run of pages is left out."""
        shown = {1, self.pages, *range(self.number - around, self.number + around + 1)}
        result: list[int | None] = []
        for n in sorted(p for p in shown if 1 <= p <= self.pages):
            if result and result[-1] is not None and n - result[-1] > 1:
                result.append(None)
            result.append(n)
        return result


def categories() -> list[Category]:
    """All categories in menu order, loaded once per request."""
    if "catalogue_categories" not in g:
        stmt = db.select(Category).order_by(Category.position, Category.name)
        g.catalogue_categories = list(db.session.execute(stmt).scalars())
    return g.catalogue_categories


def category_or_404(slug: str) -> Category:
    """:raise 404: no category has this slug."""
    for category in categories():
        if category.slug == slug:
            return category
    abort(404)


def product_or_404(slug: str) -> Product:
    """An active product with its category. :raise 404: no active product has this slug."""
    stmt = (
        db.select(Product)
        .options(joinedload(Product.category))
        .where(Product.slug == slug, Product.active.is_(True))
    )
    return db.first_or_404(stmt)


def featured_products(per_category: int = 2) -> list[Product]:
    """The first few products in stock of each category, for the home page, in one query.

    Ordered as a shop window: each category's first product (in menu order), then each one's
    second, and so on. Each category's few are read from its index, so the query costs the same
    whatever the catalogue's size (a window function over every product would not).
    """
    menu = categories()
    if not menu:
        return []
    stmt = _featured_statement(len(menu), per_category)
    params = {f"category_{i}": category.id for i, category in enumerate(menu)}
    found = sorted(db.session.execute(stmt, params).scalars(), key=lambda p: p.id)
    position = {category.id: category.position for category in menu}
    ranks: dict[int, int] = {}
    keyed = []
    for product in found:  # in id order: the count so far is the product's rank in its category
        ranks[product.category_id] = rank = ranks.get(product.category_id, 0) + 1
        keyed.append(((rank, position[product.category_id], product.id), product))
    return [product for _, product in sorted(keyed, key=lambda pair: pair[0])]


@functools.lru_cache(maxsize=16)
def _featured_statement(count: int, per_category: int):
    """``SELECT`` the first ``per_category`` active products in stock of each of ``count``
    categories (bound as ``category_0`` …): a ``LIMIT`` per category, joined by ``UNION ALL``.
    Built once per shape: building a statement costs more than running this one."""
    firsts = [
        db.select(Product.id)
        .where(
            Product.category_id == bindparam(f"category_{i}"),
            Product.active.is_(True),
            Product.stock > 0,
        )
        .order_by(Product.id)
        .limit(per_category)
        .subquery()
        for i in range(count)
    ]
    ids = union_all(*(db.select(first.c.id) for first in firsts)).subquery()
    return db.select(Product).where(Product.id.in_(db.select(ids.c.id)))


def parse_page(raw: str | None) -> int:
    """The page number from ``?page=``. :raise 404: not a positive whole number."""
    if raw is None or raw == "":
        return 1
    if not (raw.isascii() and raw.isdigit()) or len(raw) > MAX_PAGE_DIGITS or int(raw) < 1:
        abort(404)
    return int(raw)


def clean_query(raw: str | None) -> str:
    """The search text: control characters and repeated spaces removed, cut to length."""
    # Echoed on the page and sent to the database: a NUL cannot be sent to PostgreSQL in a
    # string, and no control character belongs to a product's name.
    printable = "".join(" " if unicodedata.category(c) == "Cc" else c for c in raw or "")
    return " ".join(printable.split())[:MAX_QUERY_LENGTH].strip()


# The orders a listing may be sorted in (``?sort=``), each ending on the id so that a product
# never moves between pages. "newest": the id, given in the order products were added.
SORTS: dict[str, tuple] = {
    "name": (Product.name, Product.id),
    "price": (Product.price, Product.id),
    "price-desc": (Product.price.desc(), Product.id),
    "newest": (Product.id.desc(),),
}
RELEVANCE = "relevance"  # search's own order, and its default


def parse_sort(raw: str | None, default: str) -> str:
    """The sort asked for, or ``default`` for none or one we do not offer (a link from an old
    page, a hand-edited address: the listing is still worth showing)."""
    return raw if raw in SORTS or (raw == RELEVANCE and default == RELEVANCE) else default


def category_page(category: Category, number: int, per_page: int, sort: str = "name") -> Page:
    """:raise 404: the page is past the last one."""
    return _paginate(
        lambda stmt: stmt.where(Product.category_id == category.id),
        SORTS[sort],
        number,
        per_page,
    )


def search_page(text: str, number: int, per_page: int, sort: str = RELEVANCE) -> Page:
    """Active products with a word starting with each word of ``text`` in their name or
    description, best match first (see ``search``) unless ``sort`` names another order.

    :raise 404: the page is past the last one.
    """
    found = search.words(text)
    if not found:  # only punctuation: nothing to look for
        return _paginate(lambda stmt: stmt.where(false()), (Product.id,), number, per_page)
    match = search.match(db.session.get_bind().dialect.name, found)

    def narrow(stmt: Select) -> Select:
        if match.index is not None:
            stmt = stmt.join(match.index, match.index.c.rowid == Product.id)
        return stmt.where(match.condition)

    order = (match.rank, Product.name, Product.id) if sort == RELEVANCE else SORTS[sort]
    return _paginate(narrow, order, number, per_page)


def _paginate(
    narrow: Callable[[Select], Select], order_by: tuple, number: int, per_page: int
) -> Page:
    """One page of the active products ``narrow`` keeps: a count, then the page itself."""

    def selected(stmt: Select) -> Select:
        return narrow(stmt.where(Product.active.is_(True)))

    total = db.session.execute(selected(db.select(func.count()).select_from(Product))).scalar_one()
    page = Page(items=[], number=number, per_page=per_page, total=total)
    if number > page.pages:
        abort(404)
    if total:
        stmt = (
            selected(db.select(Product))
            .order_by(*order_by)
            .limit(per_page)
            .offset((number - 1) * per_page)
        )
        page.items = list(db.session.execute(stmt).scalars())
    return page


@dataclass(frozen=True)
class ProductView:
    """What the cart shows of a product, as read at one catalogue version: a plain value that
    may be kept between requests (an ORM instance may not), and that no one can change."""

    id: int
    slug: str
    name: str
    price: int
    stock: int
    active: bool
    image_url: str
    image_alt: str
    tax_class: str

    @classmethod
    def of(cls, product: Product) -> ProductView:
        return cls(
            id=product.id,
            slug=product.slug,
            name=product.name,
            price=product.price,
            stock=product.stock,
            active=product.active,
            image_url=product.image_url,
            image_alt=product.image_alt,
            tax_class=product.tax_class,
        )


def product_views(ids: Iterable[int]) -> dict[int, ProductView]:
    """The products with these ids (those that exist), each as kept in the process when it was
    read at the catalogue's current version, the others read in one query. A change to any
    product moves the version, so a view kept under it is as current as a read would be."""
    version, kept = current_version(), rows_of(current_app)
    found: dict[int, ProductView] = {}
    missing = []
    for product_id in ids:
        view = kept.get(("product", version, product_id))
        if view is None:
            missing.append(product_id)
        else:
            found[product_id] = view
    if missing:
        for product in db.session.execute(select(Product).where(Product.id.in_(missing))).scalars():
            found[product.id] = kept.put(("product", version, product.id), ProductView.of(product))
    return found
