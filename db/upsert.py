"""INSERT ... ON CONFLICT for the database in use: PostgreSQL's and SQLite's own INSERT constructs."""

from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session

DialectInsert = postgresql.Insert | sqlite.Insert


def insert_for(session: Session, table: Any) -> DialectInsert:
    """An INSERT into `table` that offers `on_conflict_do_update` / `excluded` on this session's database."""
    if session.get_bind().dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)
