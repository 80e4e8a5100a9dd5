"""Catalogue page cache: never wrong, because every entry is keyed by the catalogue's version.

One row (``catalogue_version``) holds a counter. Each catalogue request reads it in one cheap
query; rendered page fragments are kept per process keyed by (version, language, path, query
args), so a change seen by any process moves every process past its old entries on their next
request, and a page rendered in one language is never served in another.

When the version moves: an ORM flush that adds, changes or deletes an instance of a class in
:data:`WATCHED`, a bulk ``UPDATE``/``DELETE`` of one, or a change of stock that the pages show
(:func:`mark_changed`: from 1,000 to 999 no page looks any different, and an order placed then
leaves every cached page in place) marks the session; as that session *commits*, the counter
is bumped by the transaction's last statement, so the change and the new version are
committed together: a reader that sees the new version sees the change. Bumped as the change
was made, the counter row's lock would be held for the rest of the transaction (serialising
every checkout on PostgreSQL); bumped last, it is held for the commit alone, as long as a
transaction of its own would hold it, and no second commit is made. Entries also expire after
:data:`TTL_SECONDS` as a safety net.

Another module registers its models with one line: ``WATCHED.append(DeliveryMethod)``, or calls
:func:`catalogue_changed` after committing a change the ORM does not see.

What is cached is the whole rendered page, with placeholders where the per-customer parts go
(the cart link, flash messages, the CSRF token); they are filled in on every request
(``catalogue.views._cached_page``).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import TypeVar

from flask import current_app, g, request
from sqlalchemy import Engine, Integer, create_engine, event, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column

from storefront.catalogue.models import Category, Product
from storefront.extensions import Model, db
from storefront.i18n import current_locale

TTL_SECONDS = 30.0
MAKE_WAIT = 5.0  # seconds a request waits for another one rendering the same entry
MAX_ENTRIES = 512  # rendered pages and fragments, per process
MAX_ROWS = 4096  # products as the cart shows them, per process
# The version reader's connections per process: kept open, enough for
# the requests that read at the same moment under load (a connection beyond them is opened
# for one read and closed again, which costs far more than the read).
READER_POOL = 8
READER_OVERFLOW = 24
CSRF_PLACEHOLDER = "\x00csrf\x00"
# Where a cached page's per-customer parts go (characters no rendered page holds).
PLACEHOLDERS = {"cart": "\x00cart\x00", "flashes": "\x00flashes\x00"}

# Model classes whose changes move the catalogue's version.
WATCHED: list[type] = [Product, Category]

_MARK = "catalogue_changed"
STOCK_ONLY = "stock_only"  # an UPDATE of stock alone, whose caller calls mark_changed
_CREATE = "catalogue_version_missing"
T = TypeVar("T")


class CatalogueVersion(Model):
    """The one row whose counter moves whenever the catalogue changes."""

    __tablename__ = "catalogue_version"

    id: Mapped[int] = mapped_column(primary_key=True)
    version: Mapped[int] = mapped_column(Integer, default=0)


_VERSION_SQL = "SELECT version FROM catalogue_version WHERE id = 1"


def current_version() -> int:
    """The catalogue's version: one primary-key read, once per request (every page's menu
    and content are keyed by it, and must agree)."""
    if "catalogue_version" not in g:
        g.catalogue_version = int(_read_version() or 0)
    return g.catalogue_version


_readers_lock = threading.Lock()


def _read_version() -> int | None:
    """On a pool of its own: autocommit, so no BEGIN and ROLLBACK around the one SELECT, and
    no ping before each use, so one round trip in all. A page served from the cache asks the
    database nothing else, and never opens the request's ORM session.

    Never on the shop's own pool: a request that holds a connection of it (and on SQLite,
    perhaps the writers' turn) and waited for a second one, to read the version while
    rendering its page, would wait on requests that wait on it, until the pool's timeout."""
    engine = db.engine
    if engine.dialect.name == "sqlite" and engine.url.database in (None, "", ":memory:"):
        # One connection shared by the whole process: read within the session's own use of it.
        return db.session.execute(
            select(CatalogueVersion.version).where(CatalogueVersion.id == 1)
        ).scalar()
    reader = current_app.extensions.get("catalogue_version_reader")
    if reader is None:
        with _readers_lock:
            reader = current_app.extensions.get("catalogue_version_reader")
            if reader is None:
                # SQLite: the pool's connections are taken by whichever thread reads next.
                threads = {"check_same_thread": False} if engine.dialect.name == "sqlite" else {}
                reader = create_engine(
                    engine.url,
                    isolation_level="AUTOCOMMIT",
                    pool_size=READER_POOL,
                    max_overflow=READER_OVERFLOW,
                    connect_args=threads,
                )
                current_app.extensions["catalogue_version_reader"] = reader
    return _select_version(reader)


def _select_version(engine: Engine) -> int | None:
    """The one SELECT on a pooled DBAPI connection, beneath SQLAlchemy's Core: for a query this
    small, Core's own work around it cost several times the query. A connection the server
    dropped is found by the query itself, which is then made once more on a fresh one."""
    for attempt in (1, 2):
        connection = engine.raw_connection()
        try:
            cursor = connection.cursor()
            try:
                cursor.execute(_VERSION_SQL)
                row = cursor.fetchone()
            finally:
                cursor.close()
            return row[0] if row else None
        except engine.dialect.loaded_dbapi.Error as error:
            dropped = engine.dialect.is_disconnect(error, connection.dbapi_connection, None)
            if not dropped or attempt == 2:
                raise
            connection.invalidate()
        finally:
            connection.close()
    return None  # not reached: the second try returns or raises


# The version moved on by one; no row changed: the counter row is not there yet.
_BUMP = (
    update(CatalogueVersion)
    .where(CatalogueVersion.id == 1)
    .values(version=CatalogueVersion.version + 1)
    .execution_options(synchronize_session=False)
)


def catalogue_changed() -> None:
    """Move the version on, in its own short transaction (call it after your commit)."""
    g.pop("catalogue_version", None)  # this request's own read is out of date now
    with db.engine.begin() as conn:
        moved = conn.execute(_BUMP).rowcount
    if not moved:
        try:
            with db.engine.begin() as conn:
                conn.execute(insert(CatalogueVersion).values(id=1, version=1))
        except IntegrityError:  # another process created it meanwhile
            catalogue_changed()


def _watched(obj: object) -> bool:
    return isinstance(obj, tuple(WATCHED))


@event.listens_for(Session, "before_flush")
def _on_flush(session, _context, _instances) -> None:
    if any(_watched(o) for o in (*session.new, *session.dirty, *session.deleted)):
        session.info[_MARK] = True


@event.listens_for(Session, "do_orm_execute")
def _on_execute(state) -> None:
    mapper = state.bind_mapper
    bulk = state.is_update or state.is_delete
    if state.execution_options.get(STOCK_ONLY):
        return  # its caller tells, through mark_changed
    if bulk and mapper is not None and issubclass(mapper.class_, tuple(WATCHED)):
        state.session.info[_MARK] = True


def mark_changed() -> None:
    """The version moves with this session's commit: for a change made by an update run with
    ``execution_options(stock_only=True)``, which marks nothing by itself
    (``storefront.catalogue.stock`` calls it when the pages show the new stock differently)."""
    db.session.info[_MARK] = True


@event.listens_for(Session, "before_commit")
def _on_commit(session) -> None:
    session.flush()  # what is still pending may be a change of the catalogue too
    if not session.info.pop(_MARK, False):
        return
    moved = session.execute(_BUMP).rowcount
    if not moved:  # no counter row yet: created once this transaction is in
        session.info[_CREATE] = True
    g.pop("catalogue_version", None)  # this request's own read is out of date now


@event.listens_for(Session, "after_commit")
def _on_committed(session) -> None:
    if session.info.pop(_CREATE, False):
        catalogue_changed()


@event.listens_for(Session, "after_rollback")
def _on_rollback(session) -> None:
    session.info.pop(_MARK, None)
    session.info.pop(_CREATE, None)


class FragmentCache:
    """A small per-process LRU of rendered fragments with a time limit.

    An entry missing is made by one thread at a time: every order placed moves the version,
    and the requests under way then all miss at once; each rendering the same page itself,
    they would share a core between them and all wait as long as the slowest. The others
    wait for the first one's page instead (at most :data:`MAKE_WAIT` seconds, then make it
    themselves).
    """

    def __init__(self, size: int = MAX_ENTRIES) -> None:
        self._size = size
        self._entries: OrderedDict[tuple, tuple[float, object]] = OrderedDict()
        self._making: dict[tuple, threading.Event] = {}
        self._lock = threading.Lock()

    def get(self, key: tuple):
        with self._lock:
            found = self._entries.get(key)
            if found is None or found[0] < time.monotonic():
                self._entries.pop(key, None)
                return None
            self._entries.move_to_end(key)
            return found[1]

    def put(self, key: tuple, value: T) -> T:
        with self._lock:
            self._entries[key] = (time.monotonic() + TTL_SECONDS, value)
            self._entries.move_to_end(key)
            while len(self._entries) > self._size:
                self._entries.popitem(last=False)
        return value

    def get_or_make(self, key: tuple, make: Callable[[], T]) -> T:
        """The entry under ``key``; made (outside the lock) and kept when there is none, or
        waited for while another thread makes it."""
        found = self.get(key)
        if found is not None:
            return found
        with self._lock:
            other = self._making.get(key)
            making = other or self._making.setdefault(key, threading.Event())
        mine = other is None
        if not mine:
            # Made by now, unless the other thread failed (its request's own error) or is slow.
            if making.wait(MAKE_WAIT) and (found := self.get(key)) is not None:
                return found
            return self.put(key, make())
        try:
            return self.put(key, make())
        finally:
            with self._lock:
                self._making.pop(key, None)
            making.set()

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


def fragments_of(app) -> FragmentCache:
    """The application's own fragment cache (one per app object: tests build many)."""
    return app.extensions.setdefault("catalogue_fragments", FragmentCache())


def rows_of(app) -> FragmentCache:
    """The application's cache of catalogue rows (products as the cart shows them): apart from
    the pages, so that many customers' carts do not push the pages out."""
    return app.extensions.setdefault("catalogue_rows", FragmentCache(MAX_ROWS))


def request_key(version: int) -> tuple:
    """(version, language, path, sorted query args): what a catalogue page's content depends
    on. The language is in it, or the first customer's German page would be every customer's."""
    args = tuple(sorted((k, tuple(request.args.getlist(k))) for k in request.args))
    return (version, current_locale(), request.path, args)
