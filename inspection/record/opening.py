"""Opening the record: `open_record` for a record as it is (a SQLite file or a plant database's
URL; for writing, or read-only beside a station for reports and listings), and
`open_station_record` for a station's own record (its SQLite file, or a buffer that forwards to a
plant database)."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout
from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DatabaseError, OperationalError

from inspection.errors import StoreError
from inspection.record import migrate
from inspection.record.forwarding import Forwarder
from inspection.record.reconcile import end_dangling_runs
from inspection.record.server import is_url, open_server, server_url
from inspection.record.store import Store

BUSY_TIMEOUT_MS = 5000


def open_record(db: str | Path, *, read_only: bool = False) -> Store:
    """The record at `db` (a SQLite file, or a server's URL); one sentence if it cannot be opened.

    For writing, it is created and migrated as needed, a SQLite file is locked against a second
    instance of the program, and runs a crash left open are ended (`end_dangling_runs`).
    `read_only`: without the lock, beside a station that may be writing it (WAL), never migrated:
    for reports and listings; refused if missing or not brought up to date."""
    if is_url(db):
        return open_server(str(db), read_only=read_only)
    path = Path(db).expanduser().resolve()
    return _open_file_read_only(path) if read_only else _open_file(path)


def open_station_record(db: str | Path | None, buffer: str | Path | None = None) -> Store:
    """The station's own record. A path (None: the default file) opens that SQLite file, as
    `open_record`; a server's URL opens the local buffer (`buffer`, else the default file) with a
    `Forwarder` to the server started and attached to the record (`forwarder_of`), which the
    record's `close()` stops. The station starts whether the server answers or not."""
    from inspection.settings.config import default_db

    if db is None or not is_url(db):
        return open_record(db or default_db())
    server_url(str(db))  # a malformed or unsupported URL fails before anything is opened
    store = open_record(buffer or default_db())
    try:
        forwarder = Forwarder(store, str(db))
        store.attach(forwarder)
        forwarder.start()
    except BaseException:
        store.close()
        raise
    return store


def _open_file(path: Path) -> Store:
    """A SQLite record for writing: checked, locked, migrated, and its dangling runs ended."""
    _check_writable(path)
    lock = _lock(path)
    problem = _not_our_record(path) if path.exists() else None
    if problem:
        lock.release()
        raise StoreError(problem)
    engine = _sqlite_engine(f"sqlite:///{path}", _set_pragmas)
    from alembic.util import CommandError

    try:
        migrate.migrate(engine)
    except (DatabaseError, OperationalError, CommandError) as exc:
        engine.dispose()
        lock.release()
        if isinstance(exc, CommandError):
            raise StoreError(f"The database {path} was written by a newer Lepton Inspect ({exc}).") from None
        reason = str(exc.orig) if getattr(exc, "orig", None) is not None else str(exc)
        raise StoreError(f"The database {path} cannot be opened ({reason}).") from None
    store = Store(path, engine, lock)
    try:
        end_dangling_runs(store)
    except (DatabaseError, OperationalError) as exc:
        store.close()
        raise StoreError(
            f"The database {path} cannot be written ({exc.orig if getattr(exc, 'orig', None) else exc})."
        ) from None
    return store


def _check_writable(path: Path) -> None:
    """StoreError (one sentence) unless a record can be written at `path` (its folder made as needed)."""
    if path.is_dir():
        raise StoreError(f"The database path {path} is a folder; give a file name such as {path / 'lepton.db'}.")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(f"Cannot create the database folder {path.parent}: {exc.strerror}.") from None
    if not os.access(path.parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise StoreError(f"The database path {path} is not writable.")
    if path.exists() and not path.stat().st_mode & 0o222:  # marked read-only (which root, too, respects here)
        raise StoreError(f"The database {path} is read-only; open it with `shifts` or `report`, or make it writable.")


def _lock(path: Path) -> FileLock:
    """The lock file that keeps a second instance of the program off the record, taken."""
    # Not thread-local: a store opened on one thread (the GUI's worker) is closed on another (the GUI's).
    lock = FileLock(str(path) + ".lock", thread_local=False)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise StoreError(f"The database {path} is in use by another Lepton Inspect instance.") from None
    except OSError as exc:
        raise StoreError(f"Cannot lock the database {path}: {exc.strerror}.") from None
    return lock


def _open_file_read_only(path: Path) -> Store:
    if not path.is_file():
        raise StoreError(f"There is no database at {path}.")
    problem = _not_our_record(path, current=True)
    if problem:
        raise StoreError(problem)
    engine = _sqlite_engine(f"sqlite:///file:{path}?mode=ro&uri=true", _set_read_pragmas)
    return Store(path, engine, None)


def _sqlite_engine(url: str, on_connect: Any) -> Engine:
    engine = create_engine(url, connect_args={"timeout": BUSY_TIMEOUT_MS / 1000, "check_same_thread": False})
    event.listen(engine, "connect", on_connect)
    return engine


def _set_pragmas(dbapi_conn: sqlite3.Connection, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def _set_read_pragmas(dbapi_conn: sqlite3.Connection, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    cur.close()


def _not_our_record(path: Path, *, current: bool = False) -> str | None:
    """Why the existing file at `path` is no record this program may open, as one sentence, or None.
    Read-only: an empty file, another program's database or a newer schema is never migrated or changed.
    `current`: also refuse a record not yet brought up to this program's schema (it is read, not migrated)."""
    if path.stat().st_size == 0:
        return (
            f"The database {path} is an empty file (0 bytes), not a Lepton Inspect record; "
            "move it away to start a new one."
        )
    try:
        tables, version = _schema_of(path)
    except sqlite3.DatabaseError as exc:
        return f"The database {path} cannot be opened ({exc})."
    if version is None and tables - {"alembic_version"}:
        return f"The file {path} is a database of another program, not a Lepton Inspect record."
    if version is None and not current:
        return None  # a new, empty database: open_record creates the schema
    head = migrate.head()
    if version is not None and not migrate.known(version):
        return (
            f"The database {path} was written by a newer Lepton Inspect (schema {version}; this program knows "
            f"schemas up to {head}): open it with that version."
        )
    if current and version != head:
        return (
            f"The database {path} is at schema {version}, this program reads {head}: "
            "open it once with the station to update it."
        )
    return None


def _schema_of(path: Path) -> tuple[set[str], str | None]:
    """A SQLite file's tables and its Alembic version (None: none), read without changing it."""
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=BUSY_TIMEOUT_MS / 1000)
    try:
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        row = con.execute("SELECT version_num FROM alembic_version").fetchone() if "alembic_version" in tables else None
    finally:
        con.close()
    return tables, row[0] if row is not None else None
