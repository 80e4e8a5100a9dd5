"""The migrations build exactly the schema the models describe, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask_migrate import downgrade, upgrade
from sqlalchemy import text

from storefront import create_app
from storefront.catalogue.search import described_by_the_models
from storefront.extensions import db

SEARCH_REVISION, BEFORE_SEARCH = "f5b7d9e1a3c6", "a6c8e0b2d4f7"


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_database(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'migrated.db'}"
    return request.getfixturevalue("postgres_database")


def differences_from_the_models() -> list:
    """What autogenerate would change, leaving out the search index as ``flask db migrate``
    does (migrations/env.py)."""
    with db.engine.connect() as connection:
        context = MigrationContext.configure(
            connection, opts={"include_name": described_by_the_models}
        )
        return compare_metadata(context, db.metadata)


def search_index(connection) -> list[tuple]:
    """The search index's definition as the database holds it, whitespace aside."""
    if connection.dialect.name == "sqlite":
        rows = connection.execute(
            text(
                "SELECT type, name, sql FROM sqlite_master"
                " WHERE name LIKE 'product_search%' ORDER BY name"
            )
        )
    else:
        rows = connection.execute(
            text(
                "SELECT column_name, data_type, generation_expression"
                " FROM information_schema.columns"
                " WHERE table_name = 'product' AND column_name = 'search_vector'"
                " UNION ALL SELECT indexname, '', indexdef FROM pg_indexes"
                " WHERE indexname = 'ix_product_search_vector'"
            )
        )
    return [tuple(" ".join(str(v).split()) for v in row) for row in rows]


def test_upgrade_from_nothing_matches_the_models(empty_database, tmp_path):
    app = create_app(
        {"DATABASE_URL": empty_database, "SANDBOX": False, "INSTANCE_PATH": str(tmp_path)}
    )
    with app.app_context():
        upgrade()  # what `flask db upgrade` (make run, the Procfile's release step) does
        differences = differences_from_the_models()
        db.engine.dispose()
    assert differences == []


def test_the_migration_builds_the_search_index_create_all_builds(empty_database, tmp_path):
    migrated = create_app(
        {"DATABASE_URL": empty_database, "SANDBOX": False, "INSTANCE_PATH": str(tmp_path)}
    )
    with migrated.app_context():
        upgrade()
        with db.engine.connect() as connection:
            by_migration = search_index(connection)
        db.drop_all()
        with db.engine.begin() as connection:
            connection.execute(text("DROP TABLE alembic_version"))
        db.create_all()
        with db.engine.connect() as connection:
            by_create_all = search_index(connection)
        db.engine.dispose()
    assert by_migration == by_create_all
    assert len(by_migration) >= 2


def test_the_search_migration_indexes_existing_products_and_goes_back(empty_database, tmp_path):
    from storefront.catalogue.queries import search_page
    from storefront.catalogue.seed import seed_demo_catalogue

    app = create_app(
        {"DATABASE_URL": empty_database, "SANDBOX": False, "INSTANCE_PATH": str(tmp_path)}
    )
    with app.app_context():
        upgrade(revision=BEFORE_SEARCH)
        seed_demo_catalogue()
        db.session.remove()
        upgrade(revision=SEARCH_REVISION)  # the products already there are indexed
        with app.test_request_context():
            assert [p.name for p in search_page("sencha", 1, 10).items] == [
                "Sencha Kagoshima, 100 g"
            ]
            db.session.remove()
        downgrade(revision=BEFORE_SEARCH)
        with db.engine.connect() as connection:
            assert search_index(connection) == []
        upgrade()
        assert differences_from_the_models() == []
        with app.test_request_context():
            assert len(search_page("tea", 1, 10).items) == 3
            db.session.remove()
        db.engine.dispose()
