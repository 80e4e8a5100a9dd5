"""/healthz, /readyz and `flask ops check`: readiness fails when the database is gone, a
migration is missing or the outbox is stuck, and recovers when the cause is gone."""

from __future__ import annotations

import os
from datetime import timedelta

import pytest
from flask_migrate import downgrade, upgrade

from storefront import create_app
from storefront.extensions import db
from storefront.ops.health import migration_heads
from tests.deployment import create_database, drop_database


def readiness(app) -> tuple[int, dict]:
    response = app.test_client().get("/readyz")
    return response.status_code, {c["name"]: c for c in response.get_json()["checks"]}


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'ready.db'}", None
        return
    admin = os.environ.get("STOREFRONT_TEST_POSTGRES_URL")
    if not admin:
        pytest.fail("STOREFRONT_TEST_POSTGRES_URL is not set: run `make test`")
    url = create_database(admin)
    yield url, admin
    drop_database(admin, url)


def shop(url: str, tmp_path, **settings):
    return create_app(
        {"DATABASE_URL": url, "SANDBOX": False, "INSTANCE_PATH": str(tmp_path), **settings}
    )


def test_healthz_needs_no_database(tmp_path):
    app = shop(f"sqlite:///{tmp_path / 'missing' / 'none.db'}", tmp_path)
    response = app.test_client().get("/healthz")
    assert (response.status_code, response.text) == (200, "ok\n")
    assert app.test_client().get("/readyz").status_code == 503


def test_a_migration_missing_makes_it_unready_until_upgraded(database, tmp_path):
    url, _ = database
    app = shop(url, tmp_path)
    with app.app_context():
        upgrade()
        status, checks = readiness(app)
        assert status == 200, checks
        assert checks["migrations"]["detail"] == f"at {migration_heads()[0]}"
        downgrade(revision="-1")  # the database is one revision behind the code
        status, checks = readiness(app)
        assert status == 503
        assert not checks["migrations"]["ok"] and checks["database"]["ok"]
        assert "code expects" in checks["migrations"]["detail"]
        result = app.test_cli_runner().invoke(args=["ops", "check"])
        assert result.exit_code == 1 and "FAIL migrations" in result.output
        upgrade()
        assert readiness(app)[0] == 200
        assert app.test_cli_runner().invoke(args=["ops", "check"]).exit_code == 0
        db.engine.dispose()


def test_a_database_made_by_create_all_is_ready_only_where_migrations_are_not_required(tmp_path):
    url = f"sqlite:///{tmp_path / 'made.db'}"
    app = shop(url, tmp_path)
    with app.app_context():
        db.create_all()
    status, checks = readiness(app)
    assert status == 200 and "create_all" in checks["migrations"]["detail"]
    strict = shop(url, tmp_path, READY_REQUIRE_MIGRATIONS=True)
    status, checks = readiness(strict)
    assert status == 503 and "never migrated" in checks["migrations"]["detail"]


def test_the_sqlite_file_gone_makes_it_unready_until_it_is_back(tmp_path):
    path = tmp_path / "gone.db"
    app = shop(f"sqlite:///{path}", tmp_path)
    with app.app_context():
        upgrade()
        assert readiness(app)[0] == 200
        path.rename(tmp_path / "aside.db")
        status, checks = readiness(app)
        assert status == 503 and not checks["database"]["ok"]
        assert not path.exists()  # the check did not create an empty file
        (tmp_path / "aside.db").rename(path)
        assert readiness(app)[0] == 200
        db.engine.dispose()


def test_a_dropped_postgresql_database_makes_it_unready_until_it_is_back(tmp_path):
    import psycopg

    admin = os.environ.get("STOREFRONT_TEST_POSTGRES_URL")
    if not admin:
        pytest.fail("STOREFRONT_TEST_POSTGRES_URL is not set: run `make test`")
    url = create_database(admin)
    name = url.rsplit("/", 1)[1]
    app = shop(url, tmp_path)
    try:
        with app.app_context():
            upgrade()
            assert readiness(app)[0] == 200
            drop_database(admin, url)
            status, checks = readiness(app)
            assert status == 503 and not checks["database"]["ok"]
            assert "password" not in checks["database"]["detail"]
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(f'CREATE DATABASE "{name}"')
            upgrade()
            assert readiness(app)[0] == 200
            db.engine.dispose()
    finally:
        drop_database(admin, url)


def test_a_stuck_outbox_makes_it_unready(app, client):
    from storefront.orders.models import OutboxMessage
    from storefront.timeutil import now_utc
    from tests.ops_support import make_order

    with app.app_context():
        order = make_order()
        db.session.add(
            OutboxMessage(
                kind="confirmation", order_id=order.id, created_at=now_utc() - timedelta(minutes=6)
            )
        )
        db.session.commit()
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.get_json()["checks"][2]["name"] == "outbox"
    with app.app_context():
        db.session.query(OutboxMessage).update({"sent_at": now_utc()})
        db.session.commit()
    assert client.get("/readyz").status_code == 200
