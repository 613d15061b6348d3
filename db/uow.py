"""The unit of work: one database transaction that services commit explicitly."""

from types import TracebackType
from typing import Self

from sqlalchemy.engine import Engine
from sqlmodel import Session

HELD = "uow.held"  # session.info: objects `hold` keeps alive for the transaction


class UnitOfWork:
    """`with uow: ...; uow.commit()`; leaving the block without a commit rolls everything back."""

    session: Session

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def __enter__(self) -> Self:
        self.session = Session(self.engine, expire_on_commit=False)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # close() rolls back whatever was not committed; unlike rollback() it keeps the attributes
        # of committed objects loaded, so callers may read what a service returned.
        self.session.close()

    def commit(self) -> None:
        self.session.commit()
        self.session.info.pop(HELD, None)

    def rollback(self) -> None:
        self.session.rollback()


def hold(session: Session, *objects: object) -> None:
    """Keep `objects` in the session's identity map for this transaction (`UnitOfWork.commit` lets
    them go), so a later `session.get` of them in it is answered without a read. The map holds
    objects weakly: one loaded by a service and dropped by its caller is gone when the event's
    notices are rendered."""
    session.info.setdefault(HELD, []).extend(objects)
