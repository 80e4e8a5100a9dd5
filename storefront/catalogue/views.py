"""Catalogue pages: home, category listings, product pages and search. Read-only, GET only."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Hashable
from types import SimpleNamespace
from typing import Any

from flask import (
    Blueprint,
    current_app,
    g,
    get_flashed_messages,
    make_response,
    render_template,
    request,
    session,
)
from flask_wtf.csrf import generate_csrf
from jinja2 import StrictUndefined
from markupsafe import Markup

from storefront.catalogue import queries
from storefront.catalogue.cache import (
    CSRF_PLACEHOLDER,
    PLACEHOLDERS,
    current_version,
    fragments_of,
    request_key,
)
from storefront.i18n import current_locale
from storefront.templating import cart_count

bp = Blueprint("catalogue", __name__)
# Set on a request that found the database unreachable: its page (the error page saying so)
# is rendered without the menu and without the fragment cache, and asks no more.
_UNAVAILABLE = "catalogue_unavailable"


@bp.app_context_processor
def _navigation() -> dict:
    # Every page's header lists the categories. Loaded lazily and once per request; a broken
    # database must not also break the error page that reports it, so it then shows no menu.
    def nav_categories():
        if g.get(_UNAVAILABLE):
            return []
        try:
            return _menu()
        except Exception:
            g.setdefault(_UNAVAILABLE, True)
            current_app.logger.exception("could not load the category menu")
            return []

    return {"nav_categories": nav_categories}


@bp.app_template_global()
def cached(name: str, *key: Hashable, caller: Callable[[], str]) -> Markup:
    """``{% call cached("footer") %}…{% endcall %}``: the block as rendered once per catalogue
    version, language and ``key``, taken from the fragment cache after that. The parts of
    ``base.html`` that every page shows and no customer's own data is in (the banner, the
    search form, the menu, the footer) are rendered once, not on every page.

    Nothing that belongs to one customer may be inside such a block: the cart link, flash
    messages and CSRF tokens stay outside. Without a database (the error page saying so) the
    block is rendered each time."""
    if g.get(_UNAVAILABLE):
        return Markup(caller())  # noqa: S704 - the block's own rendering, escaped by Jinja
    try:
        version = current_version()
    except Exception:
        g.setdefault(_UNAVAILABLE, True)
        current_app.logger.exception("could not read the catalogue's version")
        return Markup(caller())  # noqa: S704 - as above
    full_key = ("fragment", name, version, current_locale(), request.script_root, *key)
    # The block's own rendering, escaped by Jinja.
    return fragments_of(current_app).get_or_make(full_key, lambda: Markup(caller()))  # noqa: S704


def _menu() -> list[SimpleNamespace]:
    """The category menu (id, slug, name of each category in menu order), from the fragment
    cache under the catalogue's version: every page shows it, not only the catalogue's."""
    return fragments_of(current_app).get_or_make(
        ("menu", current_version()),
        lambda: [SimpleNamespace(id=c.id, slug=c.slug, name=c.name) for c in queries.categories()],
    )


def _cached_page(template: str, build: Callable[[], dict]):
    """Serve ``template`` from the page cache (``build`` gives its context on a miss).

    A page is cached whole, rendered once per catalogue version, path and query, with
    placeholders where the parts that belong to one customer go: the cart link, flash messages
    and the CSRF token. Those are filled in on every request, so they never come out of the
    cache. The ETag hashes the final body, so a 304 means nothing on the page changed; private,
    because the page shows the visitor's cart.
    """

    def render() -> str:
        page = render_template(template, **build(), **_NOT_IN_A_SHARED_PAGE)
        if 'name="csrf_token"' in page:
            page = page.replace(generate_csrf(), CSRF_PLACEHOLDER)
        return page

    body = _fill(fragments_of(current_app).get_or_make(request_key(current_version()), render))
    response = make_response(body)
    response.set_etag(hashlib.sha256(body.encode()).hexdigest()[:32])
    response.headers["Cache-Control"] = "private, no-cache"
    return response.make_conditional(request)


def _placeholder(name: str) -> Markup:
    return Markup(PLACEHOLDERS[name])  # noqa: S704 - our own constant, never user input


def _customers_own(name: str) -> StrictUndefined:
    return StrictUndefined(
        hint=f"{name} is the visitor's own and this page is shared by every visitor: "
        "put it in a placeholder (customer_part) instead",
        name=name,
    )


# A cached page is rendered with placeholders for the visitor's parts, and with the visitor's
# own values undefined: a template that reads one fails at once rather than cache it for all.
_NOT_IN_A_SHARED_PAGE = {
    "customer_part": _placeholder,
    "cart_count": _customers_own("cart_count"),
    "session": _customers_own("session"),
}


def _fill(page: str) -> str:
    """The cached page with this customer's cart link, flash messages and CSRF token."""
    page = page.replace(PLACEHOLDERS["cart"], cart_link(cart_count()), 1)
    page = page.replace(PLACEHOLDERS["flashes"], flash_messages(), 1)
    if CSRF_PLACEHOLDER in page:
        page = page.replace(CSRF_PLACEHOLDER, generate_csrf())
    return page


@bp.app_template_global()
def cart_link(count: int) -> Markup:
    """The header's cart link for ``count`` items (``_customer.html``): the same for every
    cart of that size, so rendered once per language and size. The count is the customer's,
    and it is the key; nothing else in the link is."""
    key = ("cart-link", current_locale(), request.script_root, count)
    # Rendered by Jinja, escaped there.
    return fragments_of(current_app).get_or_make(
        key,
        lambda: Markup(_customer_macros().cart_link(count)),  # noqa: S704
    )


@bp.app_template_global()
def flash_messages() -> Markup:
    """This visitor's flash messages (``_customer.html``), taken out of the session; nothing
    to render, and the session left unread for it, when there are none."""
    if "_flashes" not in session:
        return Markup("")
    messages = get_flashed_messages(with_categories=True)
    return Markup(_customer_macros().flashes(messages))  # noqa: S704 - rendered by Jinja


def _customer_macros() -> Any:
    """``_customer.html``'s macros, as a module (its exported names are not known statically)."""
    return current_app.jinja_env.get_template("_customer.html").module


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
        sort = queries.parse_sort(request.args.get("sort"), "name")
        page = queries.category_page(current, number, _per_page(), sort)
        return {"category": current, "page": page, "current_category": current, "sort": sort}

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
        sort = queries.parse_sort(request.args.get("sort"), queries.RELEVANCE)
        page = queries.search_page(text, number, _per_page(), sort) if text else None
        return {"search_query": text, "page": page, "sort": sort}

    return _cached_page("catalogue/search.html", build)
