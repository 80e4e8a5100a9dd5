"""A catalogue of any size for the benchmarks, built from the demo catalogue's categories,
descriptions and pictures, so that its pages look and weigh like the demo shop's.

Stock is large: the order benchmarks reserve stock with every order placed and must never run
out. Products are spread evenly over the three categories.
"""

from __future__ import annotations

import secrets
from pathlib import Path

from sqlalchemy import func, insert

from storefront.catalogue.models import Category, Product
from storefront.catalogue.seed import CATEGORIES, PRODUCTS, slugify
from storefront.extensions import db

STOCK = 1_000_000
# A word in the names of one demo product in ten and in the description of another: a search
# for it finds about a fifth of the catalogue, several pages of results.
SEARCH_WORD = "espresso"
BATCH = 5000  # products per INSERT


def seed_catalogue(count: int) -> None:
    """Create the tables' catalogue rows: three categories and ``count`` products.

    Call inside an application context, on an empty catalogue. Products go in as bulk
    ``INSERT``s of a few thousand rows: a hundred thousand ORM objects would take minutes.
    """
    if db.session.execute(db.select(func.count()).select_from(Product)).scalar_one():
        raise RuntimeError("the benchmark catalogue must start empty")
    categories = {
        slug: Category(slug=slug, name=name, description=description, position=position)
        for position, (slug, name, description) in enumerate(CATEGORIES, start=1)
    }
    db.session.add_all(categories.values())
    db.session.flush()
    ids = {slug: category.id for slug, category in categories.items()}
    for first in range(1, count + 1, BATCH):
        rows = [_product(number, ids) for number in range(first, min(count, first + BATCH - 1) + 1)]
        db.session.execute(insert(Product), rows)
    db.session.commit()


def _product(number: int, category_ids: dict[str, int]) -> dict:
    demo = PRODUCTS[(number - 1) % len(PRODUCTS)]
    name = f"{demo.name.split(',')[0]} No. {number}"
    return {
        "slug": slugify(name),
        "name": name,
        "description": demo.description,
        "price": demo.cents + 10 * (number % 40),
        "stock": STOCK,
        "image": demo.image,
        "image_alt": demo.alt,
        "category_id": category_ids[demo.category],
        "active": True,
    }


def local_app(database_url: str, instance: Path):
    """The shop in this process, on ``database_url``: for seeding and for counting queries."""
    from storefront import create_app

    return create_app(
        {
            "ENV": "development",
            "SECRET_KEY": "bench-" + secrets.token_hex(24),
            "DATABASE_URL": database_url,
            "INSTANCE_PATH": str(instance),
            "SANDBOX": False,
            "GATEWAYS": "rbs",
            "RATELIMIT_ENABLED": False,
        }
    )


def seed_database(database_url: str, instance: Path, count: int, slugs: int = 32) -> list[str]:
    """Seed the migrated, empty database; the slugs of its first ``slugs`` products."""
    app = local_app(database_url, instance)
    with app.app_context():
        seed_catalogue(count)
        stmt = db.select(Product.slug).order_by(Product.id).limit(slugs)
        found = list(db.session.execute(stmt).scalars())
        db.session.remove()
        if db.engine.dialect.name == "postgresql":
            # As a database that has been running is: its statistics gathered and no work
            # left for autovacuum, which would otherwise be busy with the tables just loaded
            # while the pages are measured.
            with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.exec_driver_sql("VACUUM ANALYZE")
        db.engine.dispose()
    return found
