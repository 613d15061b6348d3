"""Bring a database to the newest schema with Alembic (the only way tables are made outside tests).

Checking the schema is on every start's path, migrating is not: `head_revision`,
`current_revision` and `is_known_revision` read the migration files' `revision` and
`down_revision` lines and the `alembic_version` table directly, so a process whose database is
up to date never imports Alembic (about 0.2 s of a start, more on a loaded machine). A file
those lines cannot be read from plainly (a merge, a branch label, another layout) hands the
question to Alembic's own `ScriptDirectory`, which gives the same answer (tests/test_start_path.py).
"""

import re
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from alembic.config import Config
    from sqlalchemy.engine import Engine

MIGRATIONS = Path(__file__).parent / "migrations"
MIGRATION_LOCK = 0x646F6C6D  # an advisory lock key of its own ("dolm")
VERSION_TABLE = "alembic_version"
# One top-level assignment of a quoted id (with or without an annotation), as the script template writes it.
_ASSIGNED = r"^{name}(?:\s*:[^=\n]+)?\s*=\s*(?:None|(['\"])([^'\"\n]+)\1)\s*$"
_REVISION = re.compile(_ASSIGNED.format(name="revision"), re.MULTILINE)
_DOWN_REVISION = re.compile(_ASSIGNED.format(name="down_revision"), re.MULTILINE)
_UNUSED = re.compile(r"^(?:branch_labels|depends_on)(?:\s*:[^=\n]+)?\s*=\s*None\s*$", re.MULTILINE)


def alembic_config(engine: "Engine") -> "Config":
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["engine"] = engine
    return config


def upgrade(engine: "Engine", revision: str = "head") -> None:
    """Apply every migration up to `revision`; a no-op on an up-to-date database."""
    from alembic import command

    config = alembic_config(engine)
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            # Several processes started with AUTO_MIGRATE=1 take turns; the later ones find it done.
            connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK})")
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def revision(engine: "Engine", message: str) -> None:
    """Autogenerate a new migration from the difference between the tables and the database."""
    from alembic import command

    config = alembic_config(engine)
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.revision(config, message=message, autogenerate=True)


def head_revision() -> str:
    """The newest migration this code knows."""
    chain = _plain_chain()
    if chain is not None:
        heads = set(chain) - {down for down in chain.values() if down is not None}
        if len(heads) == 1:
            return heads.pop()
    return _alembic_head()


def _alembic_head() -> str:
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config_without_engine()).get_current_head()
    assert head is not None, "no migrations found"
    return head


def _plain_chain() -> dict[str, str | None] | None:
    """Each migration's revision and the one it revises, read from the files' text without running
    them; None when a file is not in the plain one-parent form (Alembic is asked then)."""
    chain: dict[str, str | None] = {}
    for script in sorted((MIGRATIONS / "versions").glob("*.py")):
        if script.name.startswith(("__init__", ".#")):
            continue
        text = script.read_text(encoding="utf-8")
        revisions = _REVISION.findall(text)
        downs = _DOWN_REVISION.findall(text)
        if len(revisions) != 1 or len(downs) != 1 or len(_UNUSED.findall(text)) != 2:
            return None
        (_, rev), (_, down) = revisions[0], downs[0]
        if not rev or rev in chain:
            return None
        chain[rev] = down or None
    return chain or None


def alembic_config_without_engine() -> "Config":
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def current_revision(engine: "Engine") -> str | None:
    """The revision the database is at; None for a database never migrated (no alembic_version)."""
    from sqlalchemy import inspect, text

    with engine.connect() as connection:
        if not inspect(connection).has_table(VERSION_TABLE):
            return None
        rows = list(connection.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalars())  # noqa: S608
    if len(rows) > 1:  # several heads: Alembic says what is wrong
        from alembic.runtime.migration import MigrationContext

        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    return rows[0] if rows else None


def is_current(engine: "Engine") -> bool:
    """Whether the database has every migration this code knows."""
    return current_revision(engine) == head_revision()


def is_known_revision(revision: str) -> bool:
    """Whether this code has the migration `revision` (a database newer than the code has not)."""
    chain = _plain_chain()
    if chain is not None:
        return revision in chain
    from alembic.script import ScriptDirectory

    try:
        return ScriptDirectory.from_config(alembic_config_without_engine()).get_revision(revision) is not None
    except Exception:  # alembic raises its own errors for an id it does not know
        return False
