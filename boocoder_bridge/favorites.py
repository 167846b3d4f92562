"""Favorites: composite model IDs in an SQLite database in the state dir, shared by BooChat and BooCoder.

Each add or remove is its own transaction on one row, so two processes writing at once lose nothing (unlike
saving a whole list). A database that cannot be read is an error and is left exactly as it is: never replaced,
never emptied. The schema carries a version (``PRAGMA user_version``) and migrations run forward only.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

from .errors import StateError
from .files import ensure_dir
from .settings import STATE_DIR_ENV

APPLICATION_ID = 0x42_6F_6F_42  # "BooB": marks the file as ours
SCHEMA_VERSION = 1
WRITABLE = f"check that the state dir is writable (--state-dir or {STATE_DIR_ENV})"
# MIGRATIONS[n] takes a database from version n to n + 1.
MIGRATIONS: dict[int, tuple[str, ...]] = {
    0: ("CREATE TABLE favorites (position INTEGER PRIMARY KEY AUTOINCREMENT, model_id TEXT NOT NULL UNIQUE, "
        "added_at REAL NOT NULL)",),
}


BUSY_TIMEOUT_S = 10.0  # a write holds the lock for milliseconds; waiting longer only hangs the command


class Favorites:
    """The stored favorites. ``canonical`` turns any accepted ID (legacy too) into its composite form."""

    def __init__(self, path: Path, canonical: Callable[[str], str]) -> None:
        self.path = path
        self.canonical = canonical

    def _fail(self, problem: str, fix: str) -> StateError:
        return StateError(f"{self.path}: {problem}; {fix}")

    def _sql_fail(self, exc: sqlite3.Error, problem: str, fix: str) -> StateError:
        """``problem``, unless the database was only locked by another connection: then "busy, try again"
        (the advice differs: wait, rather than move the file away)."""
        if getattr(exc, "sqlite_errorcode", None) in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
            return self._fail(f"the database is busy: another process has held its lock for over "
                              f"{BUSY_TIMEOUT_S:g} s", "try again; nothing was changed")
        return self._fail(problem, fix)

    def _connect(self, create: bool) -> sqlite3.Connection | None:
        if not self.path.exists():
            if not create:
                return None
            try:
                ensure_dir(self.path.parent)
            except OSError as exc:
                raise self._fail(f"cannot create the state dir ({exc.strerror})", WRITABLE) from None
        try:
            db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
        except sqlite3.Error as exc:
            raise self._fail(f"cannot open the favorites database ({exc})", WRITABLE) from None
        try:
            self._check_and_migrate(db)
        except BaseException:
            db.close()
            raise
        return db

    def _check_and_migrate(self, db: sqlite3.Connection) -> None:
        keep = "the file was left as it is; move it away to start with no favorites"
        try:
            # One read transaction: another process creating the file commits either wholly before these
            # reads or wholly after them, never between (where a new file would look like a foreign one).
            db.execute("BEGIN")
            try:
                app_id = db.execute("PRAGMA application_id").fetchone()[0]
                version = db.execute("PRAGMA user_version").fetchone()[0]
                tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
                intact = db.execute("PRAGMA quick_check").fetchone()[0] == "ok"
            finally:
                db.execute("COMMIT")
        except sqlite3.DatabaseError as exc:
            raise self._sql_fail(exc, f"not a readable favorites database ({exc})", keep) from None
        if not intact:
            raise self._fail("the favorites database is corrupt", keep)
        if app_id == 0 and version == 0 and not tables - {"sqlite_sequence"}:
            self._migrate(db, 0)  # a new, empty file
            return
        if app_id != APPLICATION_ID:
            raise self._fail("not a boocoder-bridge favorites database", keep)
        if version > SCHEMA_VERSION:
            raise self._fail(f"written by a newer boocoder-bridge (schema {version}, this one knows "
                             f"{SCHEMA_VERSION})", "upgrade boocoder-bridge")
        if version < SCHEMA_VERSION:
            self._migrate(db, version)
        if "favorites" not in tables:
            raise self._fail("the favorites table is missing (wrong schema)", keep)

    def _migrate(self, db: sqlite3.Connection, version: int) -> None:
        try:
            db.execute("BEGIN IMMEDIATE")
            current = db.execute("PRAGMA user_version").fetchone()[0]  # another process may have done it
            for step in range(current, SCHEMA_VERSION):
                for statement in MIGRATIONS[step]:  # not executescript: it would commit half-way
                    db.execute(statement)
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise self._sql_fail(exc, f"cannot set up the favorites database ({exc})", WRITABLE) from None

    def list(self) -> list[str]:
        """Every stored favorite, visible or not, in the order added."""
        db = self._connect(create=False)
        if db is None:
            return []
        with closing(db):
            try:
                return [row[0] for row in db.execute("SELECT model_id FROM favorites ORDER BY position")]
            except sqlite3.Error as exc:
                raise self._sql_fail(exc, f"cannot read favorites ({exc})", "check the file") from None

    def add(self, model_id: str) -> str:
        """Store ``model_id`` (composite form); adding twice is a no-op. Returns the stored form."""
        return self.store(model_id)[0]

    def store(self, model_id: str) -> tuple[str, bool]:
        """Like :meth:`add`, and also whether it was new (so nobody prints "added" for a no-op)."""
        composite = self.canonical(model_id)
        added = self._write("INSERT OR IGNORE INTO favorites (model_id, added_at) VALUES (?, ?)",
                            (composite, time.time()))
        return composite, added > 0

    def remove(self, model_id: str) -> bool:
        """Forget ``model_id``; returns whether it was stored."""
        return self._write("DELETE FROM favorites WHERE model_id = ?", (self.canonical(model_id),)) > 0

    def _write(self, sql: str, params: tuple[object, ...]) -> int:
        db = self._connect(create=True)
        assert db is not None
        with closing(db):
            try:
                db.execute("BEGIN IMMEDIATE")
                changed = db.execute(sql, params).rowcount
                db.execute("COMMIT")
                return changed
            except sqlite3.Error as exc:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise self._sql_fail(exc, f"cannot write favorites ({exc})", WRITABLE) from None
