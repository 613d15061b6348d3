"""Engines for SQLite (default) and PostgreSQL, configured for safe concurrent writes."""

import contextlib
import os
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event, make_url
from sqlalchemy.engine import Connection, Engine

DEFAULT_DATABASE_URL = "sqlite:///dolmetscherpool.sqlite3"


def database_url() -> str:
    """The configured database URL (`DATABASE_URL`), SQLite in the working directory by default."""
    return os.environ.get("DATABASE_URL", DEFAULT_DATABASE_URL)


def make_engine(url: str | None = None) -> Engine:
    """Create an engine; on SQLite every transaction starts with `BEGIN IMMEDIATE`.

    SQLite's default deferred transactions let two writers both read a balance and then fail or
    overwrite; taking the write lock at BEGIN serialises them, so checks like "enough budget left"
    hold until commit. WAL lets readers go on meanwhile, and the busy timeout makes writers queue
    instead of failing.
    """
    url = url or database_url()
    # hide_parameters: an error's log line must not carry the values (message text, names) it was writing.
    if not url.startswith("sqlite"):
        return create_engine(url, pool_pre_ping=True, hide_parameters=True)
    engine = create_engine(
        url, connect_args={"timeout": 30, "check_same_thread": False}, hide_parameters=True
    )
    path = _sqlite_file(url)

    @event.listens_for(engine, "do_connect")
    def _before_connect(*_: Any) -> None:
        # The database holds names, phone numbers and notes: owner only. SQLite gives its -wal and
        # -shm files the database file's mode, so creating that one 0600 (whatever the umask) covers them.
        # A missing directory is left to SQLite to report.
        if path is not None:
            with contextlib.suppress(FileExistsError, FileNotFoundError):
                os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we emit BEGIN ourselves, below
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        # Deleted and overwritten content is zeroed in the file, so a purged note is not left in a free page.
        cursor.execute("PRAGMA secure_delete=ON")
        cursor.close()
        if path is not None:
            private(path)

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def checkpoint(engine: Engine) -> None:
    """On SQLite, copy the WAL into the database file and empty it (after a purge: the old page images
    in the -wal file still hold the purged text). Nothing on PostgreSQL, whose dead rows autovacuum
    reclaims. Outside any transaction; waits (busy timeout) for readers to finish."""
    if engine.dialect.name != "sqlite":
        return
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        cursor.close()
    finally:
        raw.close()


def _sqlite_file(url: str) -> Path | None:
    """The database file of a SQLite URL; None for an in-memory database."""
    database = make_url(url).database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database)


def private(path: Path) -> None:
    """Owner only (0600) for a SQLite file and its -wal and -shm, also when they existed before."""
    for part in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        # Missing (no WAL yet), or another user's file that this one may read but not chmod.
        with contextlib.suppress(FileNotFoundError, PermissionError):
            part.chmod(0o600)
