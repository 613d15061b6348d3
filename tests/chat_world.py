"""The demo district for chat tests, a clock the test moves, and who is who among the invitees."""

import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.engine import Engine
from sqlmodel import select

from bot.i18n import Translator
from db.models import District
from db.uow import UnitOfWork
from services.demo import create_demo
from services.identities import link
from services.invites import create_invite
from services.vocabulary import Role

NOW = datetime.fromisoformat("2026-03-02T08:00:00+00:00")  # Monday 09:00 in Berlin
START_TEXT = "10.3. 10:00"  # Tuesday next week, Berlin time
START = datetime.fromisoformat("2026-03-10T09:00:00+00:00")


class Clock:
    """Now, as the test sets it, running on in real time from there (so retry pauses pass)."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    @property
    def now(self) -> datetime:
        return self._base + timedelta(seconds=time.monotonic() - self._set_at)

    @now.setter
    def now(self, value: datetime) -> None:
        self._base, self._set_at = value, time.monotonic()

    def __call__(self) -> datetime:
        return self.now


def arabic_summary_lines(t: Translator) -> list[str]:
    """What the summary of the demo's Arabic request in person (60 min at the school) must say.

    The estimate is the dearest of the three offers: Rojin, 17 km away: 60 min at 24.00 plus
    2 x 17 km x 1.3 x 0.30.
    """
    return [
        t.render("Estimated cost: {estimate_cents}", {"estimate_cents": 3688}),
        t.render(
            "Budget left: {available_cents}, afterwards {after_cents}.",
            {"available_cents": 500000, "after_cents": 496312},
        ),
    ]


@dataclass(frozen=True)
class DemoCodes:
    school: str
    amira: str
    samir: str
    rojin: str
    coordinator: str


def make_demo(engine: Engine, now: datetime) -> DemoCodes:
    """The demo district (pool of 15, 5,000 EUR) and its five invite codes."""
    with UnitOfWork(engine) as uow:
        demo = create_demo(uow.session, now=now, actor="test")
        uow.commit()
    codes = [invite.code for invite in demo.invites]
    return DemoCodes(*codes)


def linked_coordinators(engine: Engine, users: Sequence[int], *, now: datetime, locale: str = "en") -> int:
    """The demo district with a coordinator for each Telegram user id (chat id = user id); its id."""
    make_demo(engine, now)
    with UnitOfWork(engine) as uow:
        district_id = uow.session.exec(select(District.id)).one()
        assert district_id is not None
        for user in users:
            _, code = create_invite(
                uow.session,
                district_id=district_id,
                role=Role.COORDINATOR,
                for_id=district_id,
                actor="t",
                now=now,
            )
            link(
                uow.session,
                platform="telegram",
                user_id=str(user),
                chat_id=str(user),
                code=code,
                now=now,
                locale=locale,
            )
        uow.commit()
    return district_id
