"""What every command needs: the translator, the database, the district, the clock."""

import getpass
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy.engine import Engine

from bot.i18n import Translator
from db.engine import make_engine
from db.migrate import upgrade
from db.models import District
from db.uow import UnitOfWork
from services.districts import find_district

# The terminal chat's demo lives in its own file, so trying the bot never writes into a real database.
DEMO_DATABASE_URL = "sqlite:///demo.sqlite3"


@dataclass
class Context:
    translator: Translator
    district_slug: str | None = None
    _engine: Engine | None = field(default=None, repr=False)
    _url: str | None = field(default=None, repr=False)

    @property
    def engine(self) -> Engine:
        """The engine, with the schema brought up to date on first use."""
        if self._engine is None:
            self._engine = make_engine(self._url)
            upgrade(self._engine)
        return self._engine

    def use_demo_database(self) -> str | None:
        """Work on demo.sqlite3 unless DATABASE_URL names a database; returns the demo file's URL if so."""
        assert self._engine is None, "choose the database before the first use"
        if os.environ.get("DATABASE_URL"):
            return None
        self._url = DEMO_DATABASE_URL
        return self._url

    def uow(self) -> UnitOfWork:
        return UnitOfWork(self.engine)

    def district(self, uow: UnitOfWork) -> District:
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
