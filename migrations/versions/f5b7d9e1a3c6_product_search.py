"""Full-text search of the products (storefront.catalogue.search)

SQLite: the FTS5 table product_search (external content: the product table) and the triggers
product_search_insert, _delete and _update that keep it in step, filled from the rows already
there. PostgreSQL: the generated column product.search_vector (computed for the rows already
there as it is added) and its GIN index ix_product_search_vector.

The statements are written out here rather than imported, so that this revision keeps doing
what it did when the index changes; they are the ones create_all runs today, and
tests/test_migrations.py checks that both build the same index.

On SQLite, a later migration that alters product in batch mode rebuilds the table, and the
triggers go with the old one: such a migration must recreate them (and rebuild the index).
On PostgreSQL, name and description cannot change type while the generated column reads
them: such a migration drops the column first and adds it again.

Revision ID: f5b7d9e1a3c6
Revises: a6c8e0b2d4f7
Create Date: 2026-12-02 14:00:00

"""
from alembic import op


# revision identifiers, used by Alembic.
revision = "f5b7d9e1a3c6"
down_revision = "a6c8e0b2d4f7"
branch_labels = None
depends_on = None


SQLITE_UPGRADE = [
    """CREATE VIRTUAL TABLE product_search USING fts5(
        name, description, content='product', content_rowid='id',
        tokenize="unicode61 remove_diacritics 0 categories 'L* N* Co'"
    )""",
    """CREATE TRIGGER product_search_insert AFTER INSERT ON product BEGIN
        INSERT INTO product_search (rowid, name, description)
        VALUES (new.id, new.name, new.description);
    END""",
    """CREATE TRIGGER product_search_delete AFTER DELETE ON product BEGIN
        INSERT INTO product_search (product_search, rowid, name, description)
        VALUES ('delete', old.id, old.name, old.description);
    END""",
    """CREATE TRIGGER product_search_update AFTER UPDATE OF id, name, description ON product
    BEGIN
        INSERT INTO product_search (product_search, rowid, name, description)
        VALUES ('delete', old.id, old.name, old.description);
        INSERT INTO product_search (rowid, name, description)
        VALUES (new.id, new.name, new.description);
    END""",
    "INSERT INTO product_search (product_search) VALUES ('rebuild')",
]
SQLITE_DOWNGRADE = [
    "DROP TRIGGER IF EXISTS product_search_update",
    "DROP TRIGGER IF EXISTS product_search_delete",
    "DROP TRIGGER IF EXISTS product_search_insert",
    "DROP TABLE IF EXISTS product_search",
]
POSTGRESQL_UPGRADE = [
    """ALTER TABLE product ADD COLUMN search_vector tsvector GENERATED ALWAYS AS (
        setweight(to_tsvector('simple', regexp_replace(name, '[^[:alnum:]]+', ' ', 'g')), 'A')
        || setweight(
            to_tsvector('simple', regexp_replace(description, '[^[:alnum:]]+', ' ', 'g')), 'B'
        )
    ) STORED""",
    "CREATE INDEX ix_product_search_vector ON product USING gin (search_vector)",
]
POSTGRESQL_DOWNGRADE = [
    "DROP INDEX IF EXISTS ix_product_search_vector",
    "ALTER TABLE product DROP COLUMN IF EXISTS search_vector",
]


def _run(sqlite, postgresql):
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        statements = sqlite
    elif dialect == "postgresql":
        statements = postgresql
    else:
        raise NotImplementedError(f"no product search index for {dialect}")
    for statement in statements:
        op.execute(statement)


def upgrade():
    _run(SQLITE_UPGRADE, POSTGRESQL_UPGRADE)


def downgrade():
    _run(SQLITE_DOWNGRADE, POSTGRESQL_DOWNGRADE)
