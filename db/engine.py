"""Engines for SQLite (default) and PostgreSQL, configured for safe concurrent writes."""

import os
from typing import Any

from sqlalchemy import create_engine, event
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

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we emit BEGIN ourselves, below
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine
