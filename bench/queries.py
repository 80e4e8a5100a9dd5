"""SQL statements per page, counted for a small and a large catalogue.

The shop runs in this process (Flask's test client) on a database of its own, with a
SQLAlchemy ``before_cursor_execute`` listener counting every statement a request sends, and
the catalogue version's read, which is made on a bare DBAPI connection that no SQLAlchemy
event sees, counted where it is made. Each page is requested once to warm up (the first
request of a process loads more than the rest), then counted on a second request. A count
that grows with the catalogue is an N+1.
"""

from __future__ import annotations

from pathlib import Path

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import event, select

from bench.seed import SEARCH_WORD, local_app, seed_catalogue

CART_LINES = 3


def pages(product_slug: str) -> list[tuple[str, str]]:
    """The pages benchmarked, as (label, path)."""
    return [
        ("Home", "/"),
        ("Category", "/c/coffee"),
        ("Product", f"/p/{product_slug}"),
        ("Search", f"/search?q={SEARCH_WORD}"),
        (f"Cart ({CART_LINES} items)", "/cart/"),
    ]


def shopper_client(app: Flask) -> tuple[FlaskClient, str]:
    """A test client whose cart holds one each of the catalogue's first ``CART_LINES``
    products, and the first product's slug (the product page measured)."""
    from storefront.catalogue.models import Product
    from storefront.extensions import db

    with app.app_context():
        stmt = select(Product).order_by(Product.id).limit(CART_LINES)
        products = list(db.session.execute(stmt).scalars())
        slug = products[0].slug
        db.session.remove()
    client = app.test_client()
    with client.session_transaction() as session:
        session["cart"] = {str(p.id): 1 for p in products}
        session["cart_prices"] = {str(p.id): p.price for p in products}
    return client, slug


def count_queries(database_url: str, instance: Path, size: int) -> dict[str, int]:
    """Seed ``size`` products into the empty database at ``database_url``; statements per page."""
    from storefront.catalogue import cache
    from storefront.extensions import db

    app = local_app(database_url, instance)
    with app.app_context():
        db.create_all()
        seed_catalogue(size)
        engine = db.engine
    client, first_slug = shopper_client(app)

    statements: list[str] = []

    def counted(_conn, _cursor, statement, *_args) -> None:
        statements.append(statement)

    counts = {}
    select_version = cache._select_version

    def version_counted(engine):
        statements.append(cache._VERSION_SQL)
        return select_version(engine)

    event.listen(engine, "before_cursor_execute", counted)
    cache._select_version = version_counted
    try:
        for label, path in pages(first_slug):
            warm = client.get(path)
            if warm.status_code != 200:
                raise RuntimeError(f"{path} answered {warm.status_code}")
            statements.clear()
            client.get(path)
            counts[label] = len(statements)
    finally:
        cache._select_version = select_version
        event.remove(engine, "before_cursor_execute", counted)
        with app.app_context():
            db.session.remove()
            db.engine.dispose()
    return counts
