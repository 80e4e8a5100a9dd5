"""Catalogue pages: home, category listings, product pages and search. Read-only, GET only."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from types import SimpleNamespace

from flask import Blueprint, current_app, make_response, render_template, request
from flask_wtf.csrf import generate_csrf

from storefront.catalogue import queries
from storefront.catalogue.cache import CSRF_PLACEHOLDER, current_version, fragments_of, request_key

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


def _cached_page(template: str, build: Callable[[], dict]):
    """Render ``template``'s title and ``main`` block from the fragment cache (``build`` gives
    the context on a miss), inside ``base.html`` rendered afresh: the per-customer parts never
    come out of the cache. The ETag hashes the whole final body, so a 304 means nothing on the
    page changed; private, because the page shows the visitor's cart."""
    key = request_key(current_version())
    fragments = fragments_of(current_app)
    hit = fragments.get(key)
    if hit is None:
        context = build()
        tmpl = current_app.jinja_env.get_template(template)
        full = dict(context)
        current_app.update_template_context(full)
        ctx = tmpl.new_context(full)
        for _ in tmpl.root_render_func(ctx):  # runs the template's imports into ctx
            pass
        title = "".join(tmpl.blocks["title"](ctx))
        main = "".join(tmpl.blocks["main"](ctx))
        if "csrf_token" in main:
            main = main.replace(generate_csrf(), CSRF_PLACEHOLDER)
        found = context.get("current_category")
        current = SimpleNamespace(id=found.id) if found is not None else None
        hit = (title, main, current)
        fragments.put(key, hit)
    title, main, current = hit
    if CSRF_PLACEHOLDER in main:
        main = main.replace(CSRF_PLACEHOLDER, generate_csrf())
    body = render_template(
        "catalogue/_cached.html",
        cached_title=title,
        cached_main=main,
        current_category=current,
        search_query=queries.clean_query(request.args.get("q"))
        if request.endpoint == "catalogue.search"
        else "",
    )
    response = make_response(body)
    response.set_etag(hashlib.sha256(body.encode()).hexdigest()[:32])
    response.headers["Cache-Control"] = "private, no-cache"
    return response.make_conditional(request)


def _per_page() -> int:
    return max(1, current_app.config["PRODUCTS_PER_PAGE"])


@bp.get("/")
def home():
    """The shop's front page: the categories and a few products from each."""
    return _cached_page(
        "catalogue/home.html",
        lambda: {"categories": queries.categories(), "products": queries.featured_products()},
    )


@bp.get("/c/<slug>")
def category(slug: str):
    """One category's products, a page at a time (``?page=N``).

    :raise 404: unknown category, or a page number that is not a page of it.
    """

    def build() -> dict:
        current = queries.category_or_404(slug)
        number = queries.parse_page(request.args.get("page"))
        page = queries.category_page(current, number, _per_page())
        return {"category": current, "page": page, "current_category": current}

    return _cached_page("catalogue/category.html", build)


@bp.get("/p/<slug>")
def product(slug: str):
    """A product: picture, description, price, stock and the add-to-cart form (which the
    cart provides: ``add_to_cart_form`` in the template).

    :raise 404: no active product has this slug.
    """

    def build() -> dict:
        found = queries.product_or_404(slug)
        return {"product": found, "current_category": found.category}

    return _cached_page("catalogue/product.html", build)


@bp.get("/search")
def search():
    """Products with a word starting with each word of ``?q=`` in their name or description,
    best match first, a page at a time (``queries.search_page``).

    :raise 404: a page number that is not a page of the results.
    """

    def build() -> dict:
        text = queries.clean_query(request.args.get("q"))
        number = queries.parse_page(request.args.get("page"))
        page = queries.search_page(text, number, _per_page()) if text else None
        return {"search_query": text, "page": page}

    return _cached_page("catalogue/search.html", build)
