"""Plain functions that put things in the shop's database for a test."""

from __future__ import annotations

import itertools
from pathlib import Path

from storefront import create_app
from storefront.catalogue.models import Category, Product
from storefront.extensions import db

_counter = itertools.count(1)


def make_category(name: str = "Coffee") -> Category:
    n = next(_counter)
    category = Category(slug=f"{name.lower().replace(' ', '-')}-{n}", name=name)
    db.session.add(category)
    db.session.commit()
    return category


def make_product(
    name: str = "House Blend", price: int = 1250, stock: int = 10, category: Category | None = None
) -> Product:
    n = next(_counter)
    product = Product(
        slug=f"{name.lower().replace(' ', '-')}-{n}",
        name=name,
        description=f"{name}, for tests.",
        price=price,
        stock=stock,
        image="",
        image_alt=name,
        category=category or make_category(),
    )
    db.session.add(product)
    db.session.commit()
    return product


def make_app(folder: Path, **overrides):
    """The shop on a fresh SQLite database in ``folder``, pointed at no live gateway."""
    folder.mkdir(parents=True, exist_ok=True)
    app = create_app(
        {
            "TESTING": True,
            "SECRET_KEY": "test-secret-key-" + "x" * 32,
            "DATABASE_URL": f"sqlite:///{folder / 'shop.db'}",
            "INSTANCE_PATH": str(folder / "instance"),
            "SANDBOX": False,
            "RATELIMIT_ENABLED": False,
            **overrides,
        }
    )
    with app.app_context():
        db.create_all()
    return app
