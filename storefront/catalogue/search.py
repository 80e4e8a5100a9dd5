"""Full-text search of the products' names and descriptions: the index each database keeps,
and the condition and ranking a search adds to a statement over ``product``.

SQLite keeps an FTS5 table, ``product_search``, whose content is the product table itself
(external content) and which triggers on ``product`` keep in step. PostgreSQL keeps a generated
``tsvector`` column, ``product.search_vector``, with a GIN index. Neither is part of the models:
``install`` builds it whenever ``create_all`` creates the product table, and the migration
``f5b7d9e1a3c6`` builds the same on a migrated database.

Both databases cut text into the same words, so that a search finds the same products on
either: runs of letters and digits, case folded, accents kept. FTS5's ``unicode61`` tokenizer
is told exactly that; on PostgreSQL everything else is replaced by spaces before the ``simple``
configuration reads the text, because its parser would otherwise keep "1.5" or
"example.com" as one word. A search is an AND of prefixes, one per word of the query, built
here from words alone: whatever punctuation or operator a customer types ("NEAR", "-", "*",
quotes) is a separator or a plain word, never the index's query syntax.

Ranking is the same on both, by construction: products with every word of the query in
their name first, then those that have some only in the description; within each, by name,
then id. (bm25 and ts_rank, the indexes' own scores, weigh words differently from each other,
so the two databases would list equally good matches in different orders.)
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

_WORD = re.compile(r"[^\W_]+")

_SQLITE_CREATE = [
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
    # Only these columns: stock changes with every order and must not rewrite the index.
    """CREATE TRIGGER product_search_update AFTER UPDATE OF id, name, description ON product
    BEGIN
        INSERT INTO product_search (product_search, rowid, name, description)
        VALUES ('delete', old.id, old.name, old.description);
        INSERT INTO product_search (rowid, name, description)
        VALUES (new.id, new.name, new.description);
    END""",
    # Index the rows already there (none when create_all has just made the table).
    "INSERT INTO product_search (product_search) VALUES ('rebuild')",
]
_SQLITE_DROP = [
    "DROP TRIGGER IF EXISTS product_search_update",
    "DROP TRIGGER IF EXISTS product_search_delete",
    "DROP TRIGGER IF EXISTS product_search_insert",
    "DROP TABLE IF EXISTS product_search",
]
# A stored generated column is computed for the rows already there when it is added.
_POSTGRESQL_CREATE = [
    """ALTER TABLE product ADD COLUMN search_vector tsvector GENERATED ALWAYS AS (
        setweight(to_tsvector('simple', regexp_replace(name, '[^[:alnum:]]+', ' ', 'g')), 'A')
        || setweight(
            to_tsvector('simple', regexp_replace(description, '[^[:alnum:]]+', ' ', 'g')), 'B'
        )
    ) STORED""",
    "CREATE INDEX ix_product_search_vector ON product USING gin (search_vector)",
]
_POSTGRESQL_DROP = [
    "DROP INDEX IF EXISTS ix_product_search_vector",
    "ALTER TABLE product DROP COLUMN IF EXISTS search_vector",
]


def _statements(connection: Connection, sqlite: list[str], postgresql: list[str]) -> list[str]:
    name = connection.dialect.name
    if name == "sqlite":
        return sqlite
    if name == "postgresql":
        return postgresql
    raise NotImplementedError(f"no product search index for {name}")


def install(connection: Connection) -> None:
    """Create the search index of the product table (which must exist) and fill it."""
    for statement in _statements(connection, _SQLITE_CREATE, _POSTGRESQL_CREATE):
        connection.execute(sa.text(statement))


def uninstall(connection: Connection) -> None:
    """Drop the search index, leaving the product table as the models describe it."""
    for statement in _statements(connection, _SQLITE_DROP, _POSTGRESQL_DROP):
        connection.execute(sa.text(statement))


def described_by_the_models(name: str | None, type_: str, parent_names: dict) -> bool:
    """Alembic's ``include_name`` hook: false for the index's own tables, column and index,
    which the models leave out on purpose (autogenerate would otherwise drop them)."""
    if type_ == "table":
        return not (name or "").startswith("product_search")
    if type_ == "column":
        return not (parent_names.get("table_name") == "product" and name == "search_vector")
    if type_ == "index":
        return name != "ix_product_search_vector"
    return True


def words(text: str) -> list[str]:
    """The words of a query, each once, in order: what the index is asked for."""
    return list(dict.fromkeys(_WORD.findall(text)))


@dataclass(frozen=True)
class Match:
    """What a search adds to a statement selecting from ``product``."""

    index: sa.TableClause | None  # joined on ``rowid = product.id`` where it is a table
    condition: sa.ColumnElement[bool]
    rank: sa.ColumnElement  # best first when ordered by it


def match(dialect: str, found: list[str]) -> Match:
    """Products whose name or description has a word starting with each of ``found``
    (which must not be empty), those with every word in the name first."""
    if dialect == "sqlite":
        # Each word quoted: FTS5 then reads it as a string, never as NEAR, OR, - or a column.
        expression = " ".join(f'"{word}"*' for word in found)
        table: sa.ColumnClause[object] = sa.literal_column("product_search")
        in_name = sa.literal_column("product.id").in_(
            sa.select(sa.literal_column("rowid"))
            .select_from(sa.table("product_search"))
            .where(table.op("MATCH")(sa.bindparam("search_name", f"name : ({expression})")))
        )
        return Match(
            index=sa.table("product_search", sa.column("rowid")),
            condition=table.op("MATCH")(sa.bindparam("search", expression)),
            rank=sa.case((in_name, 0), else_=1),
        )
    if dialect == "postgresql":
        # Quoted lexemes joined by &: the words hold no quote, so to_tsquery cannot fail.
        expression = " & ".join(f"'{word}':*" for word in found)
        vector: sa.ColumnClause[object] = sa.literal_column("product.search_vector")
        query = sa.func.to_tsquery(
            sa.literal_column("'simple'"), sa.bindparam("search", expression)
        )
        # The name's words are the vector's label A.
        name_only = sa.func.ts_filter(vector, sa.literal_column("'{a}'::\"char\"[]"))
        return Match(
            index=None,
            condition=vector.op("@@")(query),
            rank=sa.case((name_only.op("@@")(query), 0), else_=1),
        )
    raise NotImplementedError(f"no product search for {dialect}")
