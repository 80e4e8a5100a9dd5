"""The migrations build exactly the schema the models describe, on SQLite and PostgreSQL."""

from __future__ import annotations

import os

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask_migrate import upgrade

from storefront import create_app
from storefront.extensions import db
from tests.deployment import create_database, drop_database


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_database(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'migrated.db'}"
        return
    admin = os.environ.get("STOREFRONT_TEST_POSTGRES_URL")
    if not admin:
        pytest.fail("STOREFRONT_TEST_POSTGRES_URL is not set: run `make test`")
    url = create_database(admin)
    yield url
    drop_database(admin, url)


def test_upgrade_from_nothing_matches_the_models(empty_database, tmp_path):
    app = create_app(
        {"DATABASE_URL": empty_database, "SANDBOX": False, "INSTANCE_PATH": str(tmp_path)}
    )
    with app.app_context():
        upgrade()  # what `flask db upgrade` (make run, the Procfile's release step) does
        with db.engine.connect() as connection:
            differences = compare_metadata(MigrationContext.configure(connection), db.metadata)
        db.engine.dispose()
    assert differences == []
