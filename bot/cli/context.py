"""What every command needs: the translator, the database, the district, the clock."""

from __future__ import annotations

import enum
import getpass
import logging
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from sqlalchemy.engine import Engine

from bot.i18n import Translator
from db.engine import make_engine
from db.migrate import current_revision, head_revision, is_known_revision, upgrade
from services.errors import InvalidInput
from services.text import N_

if TYPE_CHECKING:  # the ORM layer (SQLModel, the tables): imported by the commands that use it
    from db.models import District
    from db.uow import UnitOfWork

log = logging.getLogger(__name__)

# The terminal chat's demo lives in its own file, so trying the bot never writes into a real database.
DEMO_DATABASE_URL = "sqlite:///demo.sqlite3"


class Schema(enum.Enum):
    """What a command does with a database behind the code."""

    REQUIRE = "require"  # refuse, naming `migrate` (unless AUTO_MIGRATE=1)
    MIGRATE = "migrate"  # bring it up to date: `init`, `migrate`, the demo
    LATER = "later"  # the command calls `prepare_schema` itself (`run` waits for the database first)


def auto_migrate() -> bool:
    return os.environ.get("AUTO_MIGRATE", "").strip().lower() in ("1", "true", "yes")


def refuse_newer_than_code(current: str | None, head: str) -> None:
    """Refuse a database at a revision this code does not know (newer: the code was rolled back)."""
    if current is not None and current != head and not is_known_revision(current):
        raise InvalidInput(
            N_(
                "The database is at revision {current}, newer than this version of the bot knows "
                "({head}). Install the newer version."
            ),
            current=current,
            head=head,
        )


@dataclass
class Context:
    translator: Translator
    district_slug: str | None = None
    schema: Schema = Schema.REQUIRE
    _engine: Engine | None = field(default=None, repr=False)
    _url: str | None = field(default=None, repr=False)

    @property
    def engine(self) -> Engine:
        """The engine; on first use the schema is migrated or checked, as `schema` says."""
        if self._engine is None:
            self._engine = make_engine(self._url)
            if self.schema is not Schema.LATER:
                self.prepare_schema()
        return self._engine

    def prepare_schema(self) -> None:
        """Migrate the database, or refuse one behind the code with the command that fixes it.

        An upgrade is a step the operator takes (`migrate`, after a backup), not a side effect of
        starting the bot, unless they chose AUTO_MIGRATE=1.
        """
        engine = self.engine
        current, head = current_revision(engine), head_revision()
        if current == head:
            return
        refuse_newer_than_code(current, head)  # before migrating: alembic cannot go from there
        if self.schema is Schema.MIGRATE or auto_migrate():
            upgrade(engine)
            log.info("migrated the database from revision %s to %s", current or "none", head)
            return
        if current is None:
            raise InvalidInput(
                N_(
                    "This database was never set up. Run “python -m bot init --name …” (a new district) "
                    "or “python -m bot migrate” first, or set AUTO_MIGRATE=1."
                )
            )
        raise InvalidInput(
            N_(
                "The database is at revision {current}; this version of the bot needs {head}. Back it up, "
                "then run “python -m bot migrate” (or set AUTO_MIGRATE=1 to migrate on start)."
            ),
            current=current,
            head=head,
        )

    def use_demo_database(self) -> str | None:
        """Work on demo.sqlite3 unless DATABASE_URL names a database; returns the demo file's URL if so."""
        assert self._engine is None, "choose the database before the first use"
        if os.environ.get("DATABASE_URL"):
            return None
        self._url = DEMO_DATABASE_URL
        return self._url

    def uow(self) -> UnitOfWork:
        from db.uow import UnitOfWork

        return UnitOfWork(self.engine)

    def district(self, uow: UnitOfWork) -> District:
        from services.districts import find_district

        return find_district(uow.session, self.district_slug)

    @staticmethod
    def now() -> datetime:
        return datetime.now(UTC)

    @staticmethod
    def actor() -> str:
        """Audit name for the command line: who ran it on this machine."""
        try:
            return f"cli:{getpass.getuser()}"
        except (KeyError, OSError):
            return "cli"

    def say(self, message: str, **params: object) -> None:
        print(self.translator.render(message, params))

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
