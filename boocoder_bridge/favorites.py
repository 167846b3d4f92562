"""Favorites: composite model IDs in an SQLite database in the state dir, shared by BooChat and BooCoder.

Each add or remove is its own transaction on one row, so two processes writing at once lose nothing (unlike
saving a whole list). A database that cannot be read is an error and is left exactly as it is: never replaced,
never emptied. That includes an empty (0-byte) file: the bridge never leaves one, since a new database is built
under a temp name and linked into place whole (files.create_new), so an empty file is always damage (a crashed
copy, a sync tool, ``> file``). A missing file is no error: reading it gives no favorites, and it is created
only when a favorite is written. The schema carries a version (``PRAGMA user_version``) and migrations run
forward only.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

from .errors import StateError
from .files import DISK_FULL_TEXT, create_new, os_reason
from .ids import check_id_text, exact_spelling
from .settings import STATE_DIR_ENV

APPLICATION_ID = 0x42_6F_6F_42  # "BooB": marks the file as ours
SCHEMA_VERSION = 1
WRITABLE = f"check that the state dir is writable (--state-dir or {STATE_DIR_ENV})"
# Every refusal of a damaged file says how to get the favorites back, in both places: moving the file away
# loses nothing, since the next sync takes the stars back from opencode's TUI (it never reads a missing
# database as "every favorite removed").
KEEP = ("the file was left as it is; to keep your favorites, restore it from a backup, or move it away and run "
        "`boocoder-bridge favorites sync` to take them back from opencode's TUI list (model.json)")
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
        (the advice differs: wait, rather than move the file away); or the disk is full: then that."""
        code = getattr(exc, "sqlite_errorcode", None)
        if code in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
            return self._fail(f"the database is busy: another process has held its lock for over "
                              f"{BUSY_TIMEOUT_S:g} s", "try again; nothing was changed")
        if code == sqlite3.SQLITE_FULL:
            return self._fail(DISK_FULL_TEXT, "free some space, then try again; nothing was changed")
        return self._fail(problem, fix)

    def _connect(self, create: bool) -> sqlite3.Connection | None:
        """The checked database; None when there is none and ``create`` is false. Opened without SQLite's own
        create (``mode=rw``): a file deleted just before the open would otherwise come back empty."""
        if not self.path.exists():
            if not create:
                return None
            self._create()
        try:
            db = sqlite3.connect(f"{self.path.absolute().as_uri()}?mode=rw", timeout=BUSY_TIMEOUT_S,
                                 isolation_level=None, uri=True)
        except sqlite3.Error as exc:
            if not self.path.exists():  # removed meanwhile: as if it had never been there
                return self._connect(create) if create else None
            raise self._fail(f"cannot open the favorites database ({exc})", WRITABLE) from None
        try:
            self._check_and_migrate(db)
        except BaseException:
            db.close()
            raise
        return db

    def _create(self) -> None:
        """A new database with the current schema, appearing whole (see the module docstring)."""
        def build(tmp: Path) -> None:
            with closing(sqlite3.connect(tmp, isolation_level=None)) as db:
                self._migrate(db, 0)

        try:
            create_new(self.path, build)  # False: another process made it first, which is as good
        except OSError as exc:
            raise self._fail(f"cannot create the favorites database ({os_reason(exc)})", WRITABLE) from None

    def _check_and_migrate(self, db: sqlite3.Connection) -> None:
        try:
            empty = self.path.stat().st_size == 0
        except OSError as exc:
            raise self._fail(f"cannot read the favorites database ({os_reason(exc)})", KEEP) from None
        if empty:  # never one of ours (see the module docstring): damage
            raise self._fail("the favorites database is empty (0 bytes)", KEEP)
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
            raise self._sql_fail(exc, f"not a readable favorites database ({exc})", KEEP) from None
        if not intact:
            raise self._fail("the favorites database is corrupt", KEEP)
        if app_id == 0 and version == 0 and not tables - {"sqlite_sequence"}:
            self._migrate(db, 0)  # a valid SQLite file with nothing in it (made by hand): nothing to lose
            return
        if app_id != APPLICATION_ID:
            raise self._fail("not a boocoder-bridge favorites database", KEEP)
        if version > SCHEMA_VERSION:
            raise self._fail(f"written by a newer boocoder-bridge (schema {version}, this one knows "
                             f"{SCHEMA_VERSION})", "upgrade boocoder-bridge")
        if version < SCHEMA_VERSION:
            self._migrate(db, version)
        if "favorites" not in tables:
            raise self._fail("the favorites table is missing (wrong schema)", KEEP)

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

    def read(self) -> list[str] | None:
        """Every stored favorite, visible or not, in the order added; None when there is no database (which a
        sync must not take for "every favorite was removed")."""
        db = self._connect(create=False)
        if db is None:
            return None
        with closing(db):
            try:
                return [row[0] for row in db.execute("SELECT model_id FROM favorites ORDER BY position")]
            except sqlite3.Error as exc:
                raise self._sql_fail(exc, f"cannot read favorites ({exc})", KEEP) from None

    def list(self) -> list[str]:
        """Every stored favorite, visible or not, in the order added."""
        return self.read() or []

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
        return self.forget(model_id)[1]

    def forget(self, model_id: str) -> tuple[str, bool]:
        """Forget a favorite as it was stored, whatever the registry says now: ``pb/b1`` whose provider left the
        registry is that favorite, not the legacy ID ``default/pb/b1``. Tried in order: the text as given, its
        composite form, then the one stored ID that differs from either only in Unicode normalization (the
        rule of :func:`boocoder_bridge.ids.exact_spelling`). Returns the ID forgotten (else the composite form)
        and whether it was stored. A missing database is not created."""
        check_id_text(model_id)
        stored = self.read()
        if stored is None:
            return self._composite_or_text(model_id), False
        found = exact_spelling(model_id, stored)
        if found is None:
            composite = self.canonical(model_id)  # may raise: no such ID can be stored either
            found = exact_spelling(composite, stored)
            if found is None:
                return composite, False
        return found, self._write("DELETE FROM favorites WHERE model_id = ?", (found,), create=False) > 0

    def _composite_or_text(self, model_id: str) -> str:
        try:
            return self.canonical(model_id)
        except ValueError:
            return model_id

    def _write(self, sql: str, params: tuple[object, ...], create: bool = True) -> int:
        db = self._connect(create=create)
        if db is None:
            return 0
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
