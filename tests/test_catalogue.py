"""The catalogue pages: home, categories, product pages, search, and the demo catalogue."""

from __future__ import annotations

import re
from contextlib import contextmanager
from html.parser import HTMLParser
from pathlib import Path

import pytest
from sqlalchemy import event

from storefront.catalogue.models import Category, Product
from storefront.catalogue.seed import PRODUCTS, seed_demo_catalogue
from storefront.extensions import db

STATIC = Path(__file__).resolve().parent.parent / "static"


@pytest.fixture
def seeded(app):
    with app.app_context():
        seed_demo_catalogue()
    return app


def product(app, slug: str) -> Product:
    with app.app_context():
        item = db.session.execute(db.select(Product).where(Product.slug == slug)).scalar_one()
        db.session.expunge(item)
        return item


def set_stock(app, slug: str, stock: int) -> None:
    with app.app_context():
        db.session.execute(db.update(Product).where(Product.slug == slug).values(stock=stock))
        db.session.commit()


@contextmanager
def counting_queries(app):
    """Count the SQL statements sent to the database inside the block."""
    statements: list[str] = []

    def count(_conn, _cursor, statement, *_args):
        statements.append(statement)

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", count)


# Home and categories ----------------------------------------------------------------------


def test_home_lists_the_categories_and_featured_products(client, seeded):
    page = client.get("/").get_data(as_text=True)
    for name in ("Coffee", "Tea", "Brewing gear"):
        assert name in page
    assert 'href="/c/brewing-gear"' in page
    assert 'href="/p/ethiopia-yirgacheffe-250-g"' in page
    # Featured products are ones a customer can buy now.
    assert "peru-decaf" not in page


def test_home_of_an_empty_shop_says_so(client):
    response = client.get("/")
    assert response.status_code == 200
    assert "being stocked" in response.get_data(as_text=True)


def test_category_lists_only_its_own_active_products(client, seeded):
    with seeded.app_context():
        db.session.execute(
            db.update(Product).where(Product.slug == "colombia-huila-250-g").values(active=False)
        )
        db.session.commit()
    page = client.get("/c/coffee").get_data(as_text=True)
    assert "Ethiopia Yirgacheffe" in page
    assert "Colombia Huila" not in page
    assert "Sencha" not in page
    assert "4 products" in page


def test_category_is_paginated_by_the_configured_page_size(client, seeded):
    seeded.config["PRODUCTS_PER_PAGE"] = 2
    first = client.get("/c/coffee").get_data(as_text=True)
    third = client.get("/c/coffee?page=3").get_data(as_text=True)
    assert len(re.findall(r'<li class="card">', first)) == 2
    assert len(re.findall(r'<li class="card">', third)) == 1
    assert "page 1 of 3" in first
    assert 'href="/c/coffee?page=2"' in first
    assert 'rel="prev"' in third and 'rel="next"' not in third
    # Every product appears on exactly one page.
    pages = "".join(client.get(f"/c/coffee?page={n}").get_data(as_text=True) for n in (1, 2, 3))
    for demo in PRODUCTS:
        if demo.category == "coffee":
            assert pages.count(f">{demo.name}</a>") == 1


def names_listed(page: str) -> list[str]:
    return re.findall(r'<h2[^>]*><a href="/p/[^"]+">([^<]+)</a>', page)


def coffee_by(key, reverse: bool = False) -> list[str]:
    coffee = [demo for demo in PRODUCTS if demo.category == "coffee"]
    return [demo.name for demo in sorted(coffee, key=key, reverse=reverse)]


@pytest.mark.parametrize(
    ("sort", "expected"),
    [
        ("", coffee_by(lambda d: d.name)),
        ("name", coffee_by(lambda d: d.name)),
        ("price", coffee_by(lambda d: (d.cents, d.name))),
        ("price-desc", coffee_by(lambda d: (-d.cents, d.name))),
        ("newest", list(reversed([d.name for d in PRODUCTS if d.category == "coffee"]))),
        ("bogus", coffee_by(lambda d: d.name)),  # an order we do not offer: the default one
    ],
)
def test_a_category_sorts_by_name_price_or_newest(client, seeded, sort, expected):
    page = client.get(f"/c/coffee?sort={sort}").get_data(as_text=True)
    assert names_listed(page) == expected
    # A plain GET form, working without JavaScript, with the order in use selected.
    assert '<select id="sort" name="sort">' in page
    chosen = sort if sort in ("name", "price", "price-desc", "newest") else "name"
    assert f'<option value="{chosen}" selected>' in page
    assert '<button class="button secondary small" type="submit">Sort</button>' in page


def test_sorting_is_kept_across_the_pages_of_a_listing(client, seeded):
    seeded.config["PRODUCTS_PER_PAGE"] = 2
    first = client.get("/c/coffee?sort=price").get_data(as_text=True)
    assert 'href="/c/coffee?page=2&amp;sort=price"' in first
    pages = [
        names_listed(client.get(f"/c/coffee?sort=price&page={n}").get_data(as_text=True))
        for n in (1, 2, 3)
    ]
    assert sum(pages, []) == coffee_by(lambda d: (d.cents, d.name))


def test_search_sorts_by_relevance_unless_asked_otherwise(client, seeded):
    best = names_listed(client.get("/search?q=tea").get_data(as_text=True))
    by_price = client.get("/search?q=tea&sort=price").get_data(as_text=True)
    assert sorted(best) == sorted(names_listed(by_price))
    prices = {demo.name: demo.cents for demo in PRODUCTS}
    assert names_listed(by_price) == sorted(best, key=lambda n: (prices[n], n))
    assert '<input type="hidden" name="q" value="tea">' in by_price  # the form keeps the query
    assert '<option value="relevance">' in by_price


@pytest.mark.parametrize("url", ["/c/nope", "/p/nope", "/c/", "/p/" + "x" * 500, "/c/%00"])
def test_unknown_slug_is_a_404_page(client, seeded, url):
    response = client.get(url)
    assert response.status_code == 404
    assert "Not found" in response.get_data(as_text=True)


def test_withdrawn_product_page_is_a_404(client, seeded):
    with seeded.app_context():
        db.session.execute(
            db.update(Product).where(Product.slug == "gooseneck-kettle-1-l").values(active=False)
        )
        db.session.commit()
    assert client.get("/p/gooseneck-kettle-1-l").status_code == 404


@pytest.mark.parametrize(
    "page", ["0", "-1", "x", "1.5", "1e3", "10" + "0" * 8, "9" * 40, "%00", "１", "2 "]
)
@pytest.mark.parametrize("url", ["/c/coffee", "/search?q=a"])
def test_bad_page_numbers_are_404_never_500(client, seeded, url, page):
    separator = "&" if "?" in url else "?"
    response = client.get(f"{url}{separator}page={page}")
    assert response.status_code == 404


def test_page_past_the_last_is_404(client, seeded):
    assert client.get("/c/coffee?page=2").status_code == 404
    assert client.get("/c/coffee?page=1").status_code == 200


# Product page -----------------------------------------------------------------------------


def test_product_page_shows_name_price_description_and_picture_with_alt(client, seeded):
    page = client.get("/p/ethiopia-yirgacheffe-250-g").get_data(as_text=True)
    assert "<h1>Ethiopia Yirgacheffe, 250 g</h1>" in page
    assert "€12.50" in page
    assert "jasmine, bergamot and lemon curd" in page
    assert 'src="/static/img/products/ethiopia-yirgacheffe.svg"' in page
    assert 'alt="A blue coffee bag with a white label showing a blue flower' in page
    assert "In stock" in page


def test_product_page_with_few_left_says_how_many(client, seeded):
    page = client.get("/p/darjeeling-first-flush-100-g").get_data(as_text=True)
    assert "Only 1 left" in page
    assert 'max="1"' in page


def test_product_page_offers_quantities_up_to_the_stock(client, seeded):
    page = client.get("/p/kenya-aa-nyeri-250-g").get_data(as_text=True)
    assert "Only 3 left" in page
    quantity = re.search(r'<input[^>]*name="quantity"[^>]*>', page).group(0)
    assert 'min="1"' in quantity and 'max="3"' in quantity
    assert 'action="/cart/add"' in page
    assert 'name="csrf_token"' in page


def test_out_of_stock_product_has_no_add_to_cart_form(client, seeded):
    page = client.get("/p/peru-decaf-swiss-water-250-g").get_data(as_text=True)
    assert "Out of stock" in page
    assert "/cart/add" not in page


# Search -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("sencha", "Sencha Kagoshima"),
        ("SENCHA", "Sencha Kagoshima"),
        ("bergamot", "Ethiopia Yirgacheffe"),  # in the description only
        ("  gooseneck   kettle ", "Gooseneck Kettle"),
    ],
)
def test_search_finds_products_by_name_or_description_ignoring_case(
    client, seeded, query, expected
):
    page = client.get("/search", query_string={"q": query}).get_data(as_text=True)
    assert expected in page
    assert "No products match" not in page


def test_search_without_a_match_says_so(client, seeded):
    page = client.get("/search?q=motorbike").get_data(as_text=True)
    assert "No products match “motorbike”" in page


def test_search_without_a_query_explains_what_to_do(client, seeded):
    response = client.get("/search")
    assert response.status_code == 200
    assert "Type a product name" in response.get_data(as_text=True)


@pytest.mark.parametrize(
    "query",
    [
        "%",
        "_",
        "\\",
        "motorbike%",
        "'; DROP TABLE product; --",
        '"><script>alert(1)</script>',
        "\x00",
        "motorbike\x00",
        "\t\r\n",
        "Tarrazú ☕ 日本茶",
        "𝔠𝔬𝔣𝔣𝔢𝔢",
        "a" * 10_000,
    ],
)
def test_search_handles_any_characters_and_length(client, seeded, query):
    response = client.get("/search", query_string={"q": query})
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert "<script>alert" not in page
    assert "No products match" in page or "Type a product name" in page


def test_search_treats_wildcards_as_separators(client, seeded):
    with seeded.app_context():
        category = db.session.execute(db.select(Category)).scalars().first()
        db.session.add(
            Product(slug="fifty", name="Fifty_Fifty Blend", price=900, stock=5, category=category)
        )
        db.session.commit()
    page = client.get("/search?q=fifty%25blend").get_data(as_text=True)
    assert "Fifty_Fifty Blend" in page
    assert "Ethiopia" not in page
    assert "No products match" in client.get("/search?q=%25_*").get_data(as_text=True)


def test_search_cuts_a_very_long_query(client, seeded):
    page = client.get("/search", query_string={"q": "x" * 5000}).get_data(as_text=True)
    assert "x" * 100 in page
    assert "x" * 101 not in page


def test_search_results_are_paginated_and_keep_the_query(client, seeded):
    seeded.config["PRODUCTS_PER_PAGE"] = 2
    page = client.get("/search?q=tea").get_data(as_text=True)
    assert "/search?page=2&amp;q=tea" in page or "/search?q=tea&amp;page=2" in page


# Query budget -----------------------------------------------------------------------------

PAGES = ["/", "/c/coffee", "/c/tea?page=1", "/p/kenya-aa-nyeri-250-g", "/search?q=e", "/cart/"]


@pytest.mark.parametrize("url", [*PAGES, "/c/nope", "/search"])
def test_each_page_takes_at_most_three_queries(client, seeded, url):
    with counting_queries(seeded) as statements:
        response = client.get(url)
    assert response.status_code in (200, 404)
    assert len(statements) <= 4, statements  # + the catalogue version read


@pytest.mark.parametrize("url", [*PAGES, "/c/coffee?page=9", "/search?q=No.&page=5"])
def test_query_count_does_not_grow_with_the_catalogue(app, client, url):
    with app.app_context():
        seed_demo_catalogue(extra_products=200)
    with counting_queries(app) as statements:
        response = client.get(url)
    assert response.status_code == 200
    assert len(statements) <= 4, statements  # + the catalogue version read


# The look: no scripts, no inline styles, a label for every input ------------------------


class _Audit(HTMLParser):
    def __init__(self):
        super().__init__()
        self.problems: list[str] = []
        self.inputs: list[str] = []
        self.labels: set[str] = set()

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag in ("script", "style"):
            self.problems.append(f"<{tag}>")
        for name, value in attrs:
            if name.startswith("on") or name == "style":
                self.problems.append(f"{tag} {name}=")
            if (value or "").strip().lower().startswith("javascript:"):
                self.problems.append(f"{tag} {name}={value}")
        if tag == "img" and "alt" not in a:
            self.problems.append(f"img without alt: {a.get('src')}")
        if tag == "label" and a.get("for"):
            self.labels.add(a["for"])
        if tag in ("input", "select", "textarea") and a.get("type") not in ("hidden", "submit"):
            self.inputs.append(a.get("id") or "")


@pytest.mark.parametrize("url", [*PAGES, "/search?q=zzz", "/c/nope"])
def test_pages_have_no_scripts_or_inline_styles_and_label_every_input(client, seeded, url):
    audit = _Audit()
    audit.feed(client.get(url).get_data(as_text=True))
    assert audit.problems == []
    assert audit.inputs, "the search box at least"
    assert all(i and i in audit.labels for i in audit.inputs), (audit.inputs, audit.labels)


def test_shared_assets_are_served(client):
    for path in ("/static/css/shop.css", "/static/favicon.svg"):
        response = client.get(path)
        assert response.status_code == 200
        response.close()


# The demo catalogue -----------------------------------------------------------------------


def test_seed_loads_a_small_shop_once(app):
    with app.app_context():
        assert seed_demo_catalogue() == len(PRODUCTS)
        assert seed_demo_catalogue(extra_products=10) == 0
        categories = db.session.execute(db.select(Category)).scalars().all()
        products = db.session.execute(db.select(Product)).scalars().all()
    assert len(categories) >= 3
    assert len(products) >= 12
    stocks = {p.stock for p in products}
    assert 0 in stocks and 1 in stocks
    assert len({p.slug for p in products}) == len(products)


def test_every_seeded_product_has_a_picture_and_alt_text(app):
    with app.app_context():
        seed_demo_catalogue(extra_products=30)
        products = db.session.execute(db.select(Product)).scalars().all()
    assert len(products) == len(PRODUCTS) + 30
    for item in products:
        assert (STATIC / "img" / "products" / item.image).is_file(), item.image
        assert len(item.image_alt) > 20


@pytest.mark.parametrize(("currency", "price"), [("EUR", 1250), ("JPY", 1250), ("KWD", 12500)])
def test_seed_prices_suit_the_shop_currency(app, currency, price):
    app.config["CURRENCY"] = currency
    with app.app_context():
        seed_demo_catalogue()
        item = db.session.execute(
            db.select(Product).where(Product.slug == "ethiopia-yirgacheffe-250-g")
        ).scalar_one()
    assert item.price == price


def test_seed_command_fills_an_empty_shop(runner, app):
    with app.app_context():
        result = runner.invoke(args=["seed", "--products", "5"])
        assert f"seeded {len(PRODUCTS) + 5} products" in result.output
        assert "already present" in runner.invoke(args=["seed"]).output


def test_pages_a_gateway_relays_get_absolute_links_and_assets(app):
    from storefront.payments.views import absolute_urls

    app.config["PUBLIC_URL"] = "https://shop.example"
    with app.test_request_context():
        html = absolute_urls(
            app.jinja_env.from_string(
                '{% extends "base.html" %}{% block main %}{% endblock %}'
            ).render()
        )
    assert 'href="https://shop.example/static/css/shop.css"' in html
    assert 'action="https://shop.example/search"' in html
    assert ' href="/' not in html and ' action="/' not in html and ' src="/' not in html
