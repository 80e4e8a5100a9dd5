"""Full-text search of the catalogue, on SQLite (FTS5) and on PostgreSQL (tsvector)."""

from __future__ import annotations

import re
from contextlib import contextmanager

import pytest
from sqlalchemy import event

from storefront.catalogue.models import Product
from storefront.catalogue.queries import clean_query, search_page
from storefront.catalogue.seed import seed_demo_catalogue
from storefront.extensions import db
from tests.factories import make_app

# Queries a customer of the demo shop might type, with what they find in the demo catalogue in
# the order both databases rank it: names before descriptions, then by name.
DEMO_QUERIES = {
    "mug": ["Ceramic Pour-over Dripper"],  # "mugs", in its description
    "ceram": ["Ceramic Pour-over Dripper"],
    "ceram mug": ["Ceramic Pour-over Dripper"],
    "tea": [
        "Glass Teapot with Infuser, 800 ml",
        "Jasmine Silver Needle, 50 g",
        "Sencha Kagoshima, 100 g",
    ],
    "green tea": ["Sencha Kagoshima, 100 g"],
    "espresso": ["House Espresso Blend, 1 kg", "Hand Burr Grinder"],
    "jasmine": ["Jasmine Silver Needle, 50 g", "Ethiopia Yirgacheffe, 250 g"],
    "pour-over": ["Ceramic Pour-over Dripper", "Ethiopia Yirgacheffe, 250 g"],
    "POUR over": ["Ceramic Pour-over Dripper", "Ethiopia Yirgacheffe, 250 g"],
    "milk": ["Assam Breakfast, 250 g", "Colombia Huila, 250 g", "House Espresso Blend, 1 kg"],
    "kettle": ["Gooseneck Kettle, 1 L"],
    "1 kg": ["House Espresso Blend, 1 kg"],
    "lemon": ["Ethiopia Yirgacheffe, 250 g"],
    "motorbike": [],
}
# Queries that find much of the catalogue: both databases list it in the same order too.
BROAD_QUERIES = ["e", "a", "g", "1", "250", "no", "beans", "whole beans", "roast", "coffee"]
# What a customer may type that the index's own query languages would read as syntax.
HOSTILE_QUERIES = [
    '"',
    '""',
    'tea"',
    '"tea',
    "*",
    "tea*",
    "-",
    "-tea",
    "tea -green",
    "NEAR",
    "NEAR(tea green)",
    "tea NEAR green",
    "OR",
    "tea OR coffee",
    "AND",
    "tea AND",
    "NOT tea",
    "name:tea",
    "description:tea",
    "{name}:tea",
    "^tea",
    "tea:*",
    "tea & green",
    "tea | green",
    "!tea",
    "tea <-> green",
    "(tea",
    "tea)",
    "'",
    "'tea'",
    "\\",
    "tea\\",
    "+tea",
    ":",
    "%",
    "_",
]


@contextmanager
def demo_shop(folder, database_url: str | None = None):
    """The shop with the demo catalogue, on SQLite in ``folder`` or on ``database_url``."""
    overrides = {"DATABASE_URL": database_url} if database_url else {}
    app = make_app(folder, **overrides)
    with app.app_context():
        seed_demo_catalogue()
    try:
        yield app
    finally:
        with app.app_context():
            db.engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def shop(request, tmp_path):
    url = request.getfixturevalue("postgres_database") if request.param == "postgresql" else None
    with demo_shop(tmp_path / request.param, url) as app:
        yield app


def found(app, query: str) -> list[str]:
    """The names the search page lists for ``query``, all on one page."""
    with app.test_request_context():
        text = clean_query(query)
        if not text:
            return []
        return [product.name for product in search_page(text, 1, 1000).items]


def spaced(text: str) -> str:
    """``text`` with everything but letters and digits turned into spaces."""
    return re.sub(r"[\W_]+", " ", text)


def change(app, current_name: str, **values) -> None:
    with app.app_context():
        db.session.execute(db.update(Product).where(Product.name == current_name).values(**values))
        db.session.commit()


def test_both_databases_find_the_same_products_in_the_same_order(tmp_path, postgres_database):
    queries = [*DEMO_QUERIES, *BROAD_QUERIES, *HOSTILE_QUERIES]
    with demo_shop(tmp_path / "sqlite") as sqlite:
        on_sqlite = {query: found(sqlite, query) for query in queries}
    with demo_shop(tmp_path / "postgresql", postgres_database) as postgresql:
        on_postgresql = {query: found(postgresql, query) for query in queries}
    for query in DEMO_QUERIES:
        assert on_sqlite[query] == on_postgresql[query] == DEMO_QUERIES[query], query
    for query in queries:
        assert on_sqlite[query] == on_postgresql[query], query


def test_each_word_is_a_prefix(shop):
    assert found(shop, "Yirgach") == ["Ethiopia Yirgacheffe, 250 g"]
    assert found(shop, "yirgacheffes") == []  # a prefix of the query is not enough


def test_every_word_must_match(shop):
    assert "Sencha Kagoshima, 100 g" in found(shop, "tea")
    assert "Glass Teapot with Infuser, 800 ml" in found(shop, "tea")
    assert found(shop, "tea kagoshima") == ["Sencha Kagoshima, 100 g"]
    assert found(shop, "tea motorbike") == []


def test_a_match_in_the_name_ranks_above_one_in_the_description_only(shop):
    for query in [q for q in [*DEMO_QUERIES, *BROAD_QUERIES] if q.isalnum()]:  # one word
        names = found(shop, query)
        in_name = [any(w.startswith(query) for w in spaced(n).lower().split()) for n in names]
        assert in_name == sorted(in_name, reverse=True), (query, names)


def test_query_syntax_typed_by_a_customer_is_plain_text(shop):
    client = shop.test_client()
    for query in HOSTILE_QUERIES:
        response = client.get("/search", query_string={"q": query})
        assert response.status_code == 200, query
        assert "Results for" in response.get_data(as_text=True), query
        assert found(shop, query) == found(shop, spaced(query)), query


def test_operators_are_searched_as_words(shop):
    assert found(shop, "tea OR coffee") == []  # no product has a word starting with "or"
    assert found(shop, "NEAR") == ["Darjeeling First Flush, 100 g"]  # "nearly"
    assert found(shop, '"tea"') == found(shop, "tea") == found(shop, "tea*") == found(shop, "-tea")


def test_a_renamed_product_is_found_by_its_new_name_at_once(shop):
    change(shop, "Gooseneck Kettle, 1 L", name="Swan-neck Kettle, 1 L")
    assert found(shop, "swan") == ["Swan-neck Kettle, 1 L"]
    assert found(shop, "gooseneck") == []


def test_a_new_description_is_searched_at_once(shop):
    change(shop, "Hand Burr Grinder", description="Grinds for the moka pot.")
    assert found(shop, "moka") == ["Hand Burr Grinder"]
    assert "Hand Burr Grinder" not in found(shop, "espresso")


def test_an_archived_product_is_not_found_and_comes_back_when_restored(shop):
    change(shop, "Gooseneck Kettle, 1 L", active=False)
    assert found(shop, "kettle") == []
    change(shop, "Gooseneck Kettle, 1 L", active=True)
    assert found(shop, "kettle") == ["Gooseneck Kettle, 1 L"]


def test_a_deleted_product_leaves_the_index(shop):
    with shop.app_context():
        db.session.execute(db.delete(Product).where(Product.name == "Gooseneck Kettle, 1 L"))
        db.session.commit()
    assert found(shop, "kettle") == []


def test_a_product_added_is_found_at_once(shop):
    with shop.app_context():
        kettle = db.session.execute(db.select(Product).where(Product.name.contains("Kettle")))
        category_id = kettle.scalar_one().category_id
        db.session.add(
            Product(slug="moka", name="Moka Pot", price=3000, stock=3, category_id=category_id)
        )
        db.session.commit()
    assert found(shop, "moka") == ["Moka Pot"]


def test_a_search_takes_two_queries_whatever_it_finds(shop):
    statements: list[str] = []

    def count(_conn, _cursor, statement, *_args):
        statements.append(statement)

    with shop.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        for query in ["a", "tea green", "motorbike"]:
            statements.clear()
            found(shop, query)
            assert len(statements) <= 2, statements
        statements.clear()
        found(shop, "!!!")
        assert len(statements) <= 1, statements
    finally:
        event.remove(engine, "before_cursor_execute", count)


def test_results_are_paginated_by_rank(shop):
    with shop.test_request_context():
        everything = [p.name for p in search_page("a", 1, 1000).items]
        first, second = search_page("a", 1, 5), search_page("a", 2, 5)
    assert first.total == second.total == len(everything)
    assert [p.name for p in first.items + second.items] == everything[:10]
