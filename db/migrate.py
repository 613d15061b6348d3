"""Bring a database to the newest schema with Alembic (the only way tables are made outside tests)."""

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Engine

MIGRATIONS = Path(__file__).parent / "migrations"
MIGRATION_LOCK = 0x646F6C6D  # an advisory lock key of its own ("dolm")


def alembic_config(engine: Engine) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["engine"] = engine
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Apply every migration up to `revision`; a no-op on an up-to-date database."""
    config = alembic_config(engine)
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            # Several processes started with AUTO_MIGRATE=1 take turns; the later ones find it done.
            connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK})")
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def revision(engine: Engine, message: str) -> None:
    """Autogenerate a new migration from the difference between the tables and the database."""
    config = alembic_config(engine)
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.revision(config, message=message, autogenerate=True)


def head_revision() -> str:
    """The newest migration this code knows."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config_without_engine()).get_current_head()
    assert head is not None, "no migrations found"
    return head


def alembic_config_without_engine() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at; None for a database never migrated (no alembic_version)."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def is_current(engine: Engine) -> bool:
    """Whether the database has every migration this code knows."""
    return current_revision(engine) == head_revision()


def is_known_revision(revision: str) -> bool:
    """Whether this code has the migration `revision` (a database newer than the code has not)."""
    from alembic.script import ScriptDirectory

    try:
        return ScriptDirectory.from_config(alembic_config_without_engine()).get_revision(revision) is not None
    except Exception:  # alembic raises its own errors for an id it does not know
        return False
