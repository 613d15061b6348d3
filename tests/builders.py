"""A small world to test in: a district with a school, interpreters and a budget, made by the services."""

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from math import pi
from pathlib import Path
from typing import Any

from sqlalchemy import LargeBinary, String, TypeDecorator
from sqlalchemy import select as sa_select
from sqlalchemy.engine import Engine
from sqlmodel import SQLModel, select

from db.models import Offer
from db.uow import UnitOfWork
from services.clock import BERLIN
from services.closeout import dispute, report
from services.districts import create_district
from services.geo import EARTH_RADIUS_M
from services.ledger import set_total
from services.offers import accept_offer
from services.pool import InterpreterData, save_interpreter
from services.requests import RequestDraft, submit_request
from services.schools import SchoolData, save_school
from services.vocabulary import Gender, Mode, Topic

ROOT = Path(__file__).resolve().parent.parent
NOW = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)  # Monday 09:00 in Berlin
SOON = datetime(2026, 3, 10, 10, 0, tzinfo=BERLIN).astimezone(UTC)  # a week ahead, Tuesday 10:00
ACTOR = "test"
SOLTAU = (52.9868, 9.8433)
ALL_MODES = frozenset(Mode)


@dataclass
class World:
    make_uow: Callable[[], UnitOfWork]
    district_id: int = 0
    school_id: int = 0
    interpreters: dict[str, int] = field(default_factory=dict)

    def interpreter(
        self,
        name: str,
        languages: Iterable[str] = ("ar",),
        *,
        km_north: float = 0.0,
        modes: frozenset[Mode] = ALL_MODES,
        gender: Gender | None = None,
    ) -> int:
        """Add an interpreter living exactly `km_north` kilometres (straight line) north of the school."""
        lat, lon = SOLTAU
        lat += km_north * 1000 / (EARTH_RADIUS_M * pi / 180)
        data = InterpreterData(
            name, tuple(languages), "Soltau", lat, lon, modes, "+49 5191 1", f"{name}@x.de", gender
        )
        with self.make_uow() as uow:
            interpreter = save_interpreter(
                uow.session, district_id=self.district_id, data=data, actor=ACTOR, now=NOW
            )
            uow.commit()
            assert interpreter.id is not None
            self.interpreters[name] = interpreter.id
            return interpreter.id


def build_world(
    make_uow: Callable[[], UnitOfWork], *, budget_cents: int = 5000_00, slug: str = "testkreis"
) -> World:
    world = World(make_uow)
    with make_uow() as uow:
        district = create_district(uow.session, name=f"Landkreis {slug}", slug=slug, now=NOW)
        assert district.id is not None
        school = save_school(
            uow.session,
            district_id=district.id,
            data=SchoolData("Grundschule Soltau", "Schulstraße 4, 29614 Soltau", "Soltau", *SOLTAU),
            actor=ACTOR,
            now=NOW,
        )
        set_total(
            uow.session, district_id=district.id, year=2026, total_cents=budget_cents, actor=ACTOR, now=NOW
        )
        uow.commit()
        assert school.id is not None
        world.district_id, world.school_id = district.id, school.id
    return world


def draft(
    school_id: int,
    *,
    language: str = "ar",
    mode: Mode = Mode.IN_PERSON,
    starts_at: datetime = SOON,
    minutes: int = 60,
    topic: Topic = Topic.PARENT_TALK,
    gender: Gender | None = None,
) -> RequestDraft:
    return RequestDraft(
        school_id=school_id,
        language=language,
        mode=mode,
        starts_at=starts_at,
        duration_minutes=minutes,
        topic=topic,
        gender_preference=gender,
    )


def later(**kwargs: float) -> datetime:
    return NOW + timedelta(**kwargs)


def submit(world: World, now: datetime = NOW, **kwargs: Any) -> int:
    """Submit a request made by `draft(**kwargs)`, committed; returns its id."""
    with world.make_uow() as u:
        request = submit_request(
            u.session,
            district_id=world.district_id,
            draft=draft(world.school_id, **kwargs),
            actor=ACTOR,
            now=now,
        )
        u.commit()
        assert request.id is not None
        return request.id


def book(world: World, request_id: int, name: str, now: datetime = NOW) -> None:
    """The named interpreter accepts their offer for the request, committed."""
    with world.make_uow() as u:
        offer = u.session.exec(
            select(Offer).where(
                Offer.request_id == request_id, Offer.interpreter_id == world.interpreters[name]
            )
        ).one()
        accept_offer(
            u.session, offer_id=offer.id or 0, interpreter_id=world.interpreters[name], actor=ACTOR, now=now
        )
        u.commit()


def report_for(
    world: World,
    request_id: int,
    name: str,
    minutes: int,
    at: datetime,
    *,
    km: int = 0,
    expenses_cents: int = 0,
) -> None:
    """The named interpreter reports the session, committed."""
    with world.make_uow() as u:
        report(
            u.session,
            request_id=request_id,
            interpreter_id=world.interpreters[name],
            minutes=minutes,
            km=km,
            expenses_cents=expenses_cents,
            actor=ACTOR,
            now=at,
        )
        u.commit()


def dispute_for(world: World, request_id: int, reason: str, at: datetime) -> None:
    """The school disputes the report, committed."""
    with world.make_uow() as u:
        dispute(
            u.session,
            district_id=world.district_id,
            request_id=request_id,
            school_id=world.school_id,
            reason=reason,
            actor=ACTOR,
            now=at,
        )
        u.commit()


def run_report(engine: Engine, folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`python -m bot report ARGS` in `folder`, on the test's database, in English."""
    url = engine.url.render_as_string(hide_password=False)
    return subprocess.run(
        [sys.executable, "-m", "bot", "report", *args],
        cwd=folder,
        env={**os.environ, "DATABASE_URL": url, "BOT_LOCALE": "en", "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        check=False,
    )


def cells_holding(engine: Engine, *needles: str) -> list[str]:
    """`table.column` of every text or binary column, in every table, with a cell holding one of the
    needles as written or JSON-escaped (`\\u00fc`); sorted, each column once."""
    wanted = [form.encode() for needle in needles for form in (needle, json.dumps(needle)[1:-1])]
    found = set()
    with engine.connect() as connection:
        for table in SQLModel.metadata.sorted_tables:
            for column in table.columns:
                kind = column.type.impl if isinstance(column.type, TypeDecorator) else column.type
                if not isinstance(kind, String | LargeBinary):  # Text is a String
                    continue
                for (value,) in connection.execute(sa_select(column).where(column.is_not(None))):
                    raw = value if isinstance(value, bytes) else str(value).encode()
                    if any(form in raw for form in wanted):
                        found.add(f"{table.name}.{column.name}")
                        break
    return sorted(found)
