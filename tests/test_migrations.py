"""The migrations build exactly the schema the models describe, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask_migrate import upgrade

from storefront import create_app
from storefront.extensions import db


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_database(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'migrated.db'}"
    return request.getfixturevalue("postgres_database")


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
