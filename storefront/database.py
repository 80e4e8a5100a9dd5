"""Guards at the database's door, attached to the application's own engine in ``init_app``.

- SQLite: WAL and foreign keys on every connection, and one queue of writers (below).
- Both databases: no NUL character reaches a text parameter.

And ``rows_changed``, the count of rows a guarded UPDATE or DELETE changed.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from typing import Any, cast

from flask import Flask
from sqlalchemy import Delete, Update, event
from sqlalchemy.engine import CursorResult, Engine

from storefront.extensions import db

try:
    import fcntl
except ImportError:  # not POSIX: writers queue within each process only
    fcntl = None  # type: ignore[assignment]


def init_app(app: Flask) -> None:
    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", _no_nul_in_text, retval=True)
    if engine.dialect.name != "sqlite":
        return
    event.listen(engine, "connect", _sqlite_pragmas)
    event.listen(engine, "before_cursor_execute", _queue_sqlite_writer)
    event.listen(engine, "commit", _release_sqlite_writer)
    event.listen(engine, "rollback", _release_sqlite_writer)
    event.listen(engine, "checkin", _release_on_checkin)


def rows_changed(statement: Update | Delete) -> int:
    """Run ``statement`` in the current session; the number of rows it changed.

    An UPDATE or DELETE without RETURNING always gives a ``CursorResult``, which holds the
    count; ``Session.execute`` is typed as giving any ``Result``, which does not.
    """
    return cast(CursorResult[Any], db.session.execute(statement)).rowcount


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    # WAL lets readers go on while a payment is being written; foreign keys are off by default.
    if isinstance(dbapi_connection, sqlite3.Connection):
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()


# PostgreSQL refuses a NUL character in text, and a request can carry one anywhere (a link, a
# form, a gateway's callback). No value the shop stores or looks up holds one, so every text
# parameter has it replaced by U+FFFD on its way to the database: a lookup then finds nothing,
# and evidence keeps what a caller sent, visibly marked. Both databases alike.
def _without_nul(value):
    return value.replace("\x00", "\ufffd") if isinstance(value, str) and "\x00" in value else value


def _parameters_without_nul(parameters):
    if isinstance(parameters, dict):
        return {key: _without_nul(value) for key, value in parameters.items()}
    if isinstance(parameters, (list, tuple)):
        return type(parameters)(_without_nul(value) for value in parameters)
    return parameters


def _no_nul_in_text(_conn, _cursor, statement, parameters, _context, many):
    if many and isinstance(parameters, (list, tuple)):
        return statement, [_parameters_without_nul(row) for row in parameters]
    return statement, _parameters_without_nul(parameters)


# SQLite lets one connection write at a time; the others sleep and poll for its lock, napping up
# to 100 ms at a time, so under a burst of callbacks their waits add up to seconds, and a process
# whose threads keep writing can starve another's. Writers queue instead: within a process on a
# thread lock, between processes on an advisory file lock next to the database, both taken at a
# transaction's first write and given back at its end. SQLite's own lock is then free whenever
# a writer asks for it. Nothing changes on PostgreSQL, whose row locks queue writers by themselves.
# The file lock has no timeout: its holder is a transaction under way in another process, which
# ends with its request (gunicorn's timeout ends a worker that hangs, and the kernel then frees
# its lock). The thread lock has one, for a thread that writes on a second connection while its
# first holds the lock: after it, SQLite's own busy wait decides.
_WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE")
WRITER_QUEUE_TIMEOUT = 30.0  # seconds


class _SqliteWriters:
    """The queue of writers to one SQLite database file."""

    def __init__(self, path: str | None):
        self.path = path  # None: an in-memory database, one process only
        self.lock = threading.Lock()
        self.file: int | None = None
        self.pid: int | None = None

    def acquire(self) -> bool:
        if not self.lock.acquire(timeout=WRITER_QUEUE_TIMEOUT):
            return False
        if self.path is not None and fcntl is not None:
            # One thread per process waits here, asleep in the kernel, and is woken as soon as
            # the other process's writer ends: polling instead, a process whose threads keep
            # writing took the lock back before the other's next look, again and again.
            fcntl.flock(self._descriptor(self.path), fcntl.LOCK_EX)
        return True

    def _descriptor(self, path: str) -> int:
        if self.file is None or self.pid != os.getpid():
            # A forked worker needs a file description of its own.
            self.file = os.open(path + "-writers", os.O_RDWR | os.O_CREAT, 0o600)
            self.pid = os.getpid()
        return self.file

    def release(self) -> None:
        if self.path is not None and fcntl is not None and self.file is not None:
            fcntl.flock(self.file, fcntl.LOCK_UN)
        self.lock.release()


_sqlite_writers: dict[str, _SqliteWriters] = {}


def _writers_of(engine: Engine) -> _SqliteWriters:
    key = str(engine.url)
    if key not in _sqlite_writers:
        database = engine.url.database
        path = database if database and database != ":memory:" else None
        _sqlite_writers.setdefault(key, _SqliteWriters(path))
    return _sqlite_writers[key]


def _queue_sqlite_writer(conn, _cursor, statement, _parameters, _context, _many) -> None:
    if "writers" in conn.info:
        return
    if not statement.lstrip()[:7].upper().startswith(_WRITES):
        return
    writers = _writers_of(conn.engine)
    if writers.acquire():
        conn.info["writers"] = writers


def _release_sqlite_writer(conn) -> None:
    writers = conn.info.pop("writers", None)
    if writers is not None:
        writers.release()


def _release_on_checkin(_dbapi_connection, record) -> None:
    # A connection handed back to the pool mid-transaction is rolled back by the pool itself.
    if record is not None and (writers := record.info.pop("writers", None)) is not None:
        writers.release()
