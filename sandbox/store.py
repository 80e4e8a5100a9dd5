"""The sandbox's state: JSON documents in SQLite, a clock tests can move, and armed faults.

SQLite rather than a dict so that the sandbox mounted inside a multi-process web server (the
Procfile's gunicorn) sees one state from every process. Each read-modify-write runs in one
``BEGIN IMMEDIATE`` transaction, so concurrent hosted-page posts and API calls never interleave.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS doc (kind TEXT, key TEXT, body TEXT, PRIMARY KEY (kind, key));
CREATE TABLE IF NOT EXISTS fault (
    id INTEGER PRIMARY KEY, gateway TEXT, op TEXT, fault TEXT, remaining INTEGER, params TEXT);
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT);
"""


class Store:
    def __init__(self, path: str = ":memory:"):
        self.path = path
        self._lock = threading.RLock()
        self._conn = sqlite3.connect(
            path, timeout=30, check_same_thread=False, isolation_level=None
        )
        self._conn.execute(
            "PRAGMA journal_mode=WAL" if path != ":memory:" else "PRAGMA foreign_keys=ON"
        )
        self._conn.executescript(SCHEMA)

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    # Documents -----------------------------------------------------------------------------
    def get(self, kind: str, key: str) -> dict | None:
        with self._lock:
            row = self._conn.execute(
                "SELECT body FROM doc WHERE kind=? AND key=?", (kind, key)
            ).fetchone()
        return json.loads(row[0]) if row else None

    def insert(self, kind: str, key: str, body: dict) -> bool:
        """Store a new document; False if ``key`` exists already (nothing is changed then)."""
        with self.transaction() as conn:
            exists = conn.execute(
                "SELECT 1 FROM doc WHERE kind=? AND key=?", (kind, key)
            ).fetchone()
            if exists:
                return False
            conn.execute("INSERT INTO doc VALUES (?, ?, ?)", (kind, key, json.dumps(body)))
            return True

    def put(self, kind: str, key: str, body: dict) -> None:
        with self.transaction() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO doc VALUES (?, ?, ?)", (kind, key, json.dumps(body))
            )

    def update(self, kind: str, key: str, change: Callable[[dict], Any]) -> tuple[dict | None, Any]:
        """Atomically apply ``change`` to a document (in place); returns (document, change's value).

        Returns ``(None, None)`` when there is no such document.
        """
        with self.transaction() as conn:
            row = conn.execute(
                "SELECT body FROM doc WHERE kind=? AND key=?", (kind, key)
            ).fetchone()
            if row is None:
                return None, None
            body = json.loads(row[0])
            value = change(body)
            conn.execute(
                "UPDATE doc SET body=? WHERE kind=? AND key=?", (json.dumps(body), kind, key)
            )
            return body, value

    def all(self, kind: str) -> list[dict]:
        with self._lock:
            rows = self._conn.execute("SELECT body FROM doc WHERE kind=? ORDER BY rowid", (kind,))
            return [json.loads(r[0]) for r in rows.fetchall()]

    def find(self, kind: str, **match: Any) -> list[dict]:
        return [d for d in self.all(kind) if all(d.get(k) == v for k, v in match.items())]

    # Clock ---------------------------------------------------------------------------------
    def now(self) -> float:
        """Wall-clock seconds plus the offset tests have moved the clock by."""
        return time.time() + float(self._meta("clock_offset", "0"))

    def advance(self, seconds: float) -> float:
        with self.transaction() as conn:
            offset = float(self._meta("clock_offset", "0", conn)) + seconds
            conn.execute("INSERT OR REPLACE INTO meta VALUES ('clock_offset', ?)", (str(offset),))
        return self.now()

    def _meta(self, name: str, default: str, conn: sqlite3.Connection | None = None) -> str:
        with self._lock:
            row = (
                (conn or self._conn)
                .execute("SELECT value FROM meta WHERE name=?", (name,))
                .fetchone()
            )
        return row[0] if row else default

    # Settings tests can change at run time -------------------------------------------------
    def setting(self, name: str, default: Any = None) -> Any:
        return json.loads(self._meta("setting:" + name, json.dumps(default)))

    def set_setting(self, name: str, value: Any) -> None:
        with self.transaction() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO meta VALUES (?, ?)", ("setting:" + name, json.dumps(value))
            )

    # Faults --------------------------------------------------------------------------------
    def arm(self, gateway: str, op: str, fault: str, count: int = 1, params: dict | None = None):
        """Arm ``fault`` for the next ``count`` calls of ``gateway``'s ``op`` ("*" for any op)."""
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO fault (gateway, op, fault, remaining, params) VALUES (?, ?, ?, ?, ?)",
                (gateway, op, fault, count, json.dumps(params or {})),
            )

    def take_fault(self, gateway: str, op: str) -> tuple[str, dict] | None:
        """Consume one armed fault for this call, oldest first; None when nothing is armed."""
        with self.transaction() as conn:
            row = conn.execute(
                "SELECT id, fault, remaining, params FROM fault WHERE gateway=? AND op IN (?, '*') "
                "AND remaining > 0 ORDER BY id LIMIT 1",
                (gateway, op),
            ).fetchone()
            if row is None:
                return None
            conn.execute("UPDATE fault SET remaining = remaining - 1 WHERE id=?", (row[0],))
            return row[1], json.loads(row[3])

    def faults(self) -> list[dict]:
        with self._lock:
            rows = self._conn.execute("SELECT gateway, op, fault, remaining, params FROM fault")
            return [
                {"gateway": g, "op": o, "fault": f, "remaining": r, "params": json.loads(p)}
                for g, o, f, r, p in rows.fetchall()
            ]

    def reset(self) -> None:
        with self.transaction() as conn:
            conn.execute("DELETE FROM doc")
            conn.execute("DELETE FROM fault")
            conn.execute("DELETE FROM meta")
