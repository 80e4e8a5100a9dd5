"""Catalogue pages: home, category listings, product pages and search. Read-only, GET only."""

from __future__ import annotations

from flask import Blueprint, current_app, render_template, request

from storefront.catalogue import queries

bp = Blueprint("catalogue", __name__)


@bp.app_context_processor
def _navigation() -> dict:
    # Every page's header lists the categories. Loaded lazily and once per request; a broken
    # database must not also break the error page that reports it, so it then shows no menu.
    def nav_categories():
        try:
            return queries.categories()
        except Exception:
            current_app.logger.exception("could not load the category menu")
            return []

    return {"nav_categories": nav_categories}


def _per_page() -> int:
    return max(1, current_app.config["PRODUCTS_PER_PAGE"])


@bp.get("/")
def home():
    """The shop's front page: the categories and a few products from each."""
    return render_template(
        "catalogue/home.html",
        categories=queries.categories(),
        products=queries.featured_products(),
    )


@bp.get("/c/<slug>")
def category(slug: str):
    """One category's products, a page at a time (``?page=N``).

    :raise 404: unknown category, or a page number that is not a page of it.
    """
    current = queries.category_or_404(slug)
    page = queries.category_page(current, queries.parse_page(request.args.get("page")), _per_page())
    return render_template("catalogue/category.html", category=current, page=page)


@bp.get("/p/<slug>")
def product(slug: str):
    """A product: picture, description, price, stock and the add-to-cart form (which the
    cart provides: ``add_to_cart_form`` in the template).

    :raise 404: no active product has this slug.
    """
    return render_template("catalogue/product.html", product=queries.product_or_404(slug))


@bp.get("/search")
def search():
    """Products whose name or description contains ``?q=``, a page at a time.

    :raise 404: a page number that is not a page of the results.
    """
    text = queries.clean_query(request.args.get("q"))
    number = queries.parse_page(request.args.get("page"))
    page = queries.search_page(text, number, _per_page()) if text else None
    return render_template("catalogue/search.html", search_query=text, page=page)
