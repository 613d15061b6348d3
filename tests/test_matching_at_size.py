"""Matching over a pool of hundreds with thousands of bookings picks exactly whom the rule picks.

The rule (services/matching.py) is restated here the plain way: every interpreter and booking read,
every key worked out for everyone, one sort. `candidates` reads less (a wave's worth of travel,
minutes and "last served"); whatever it skips must not change who is offered, nor in which order.
Homes lie on a coarse grid and sessions last whole hours, so many candidates tie on travel and on
minutes, and "last served" and the id decide.
"""

import random
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import cast

import pytest
from sqlalchemy import insert
from sqlmodel import Session, col, select

from db.models import Absence, Interpreter, InterpreterLanguage, Request
from db.uow import UnitOfWork
from services.billing import estimate
from services.clock import BERLIN
from services.geo import distance_m
from services.matching import BUSY_STATES, Candidate, candidates, eligible_count
from services.policy import Policy, load_policy
from services.vocabulary import Gender, Mode, RequestState, parse_modes
from tests.builders import NOW, SOLTAU, SOON, World, build_world

MakeUow = Callable[[], UnitOfWork]
MODE_SETS = ("in_person,phone,video,written", "in_person,phone,video", "phone,video", "in_person", "video")
STATES = (
    RequestState.BOOKED,
    RequestState.COMPLETED,
    RequestState.SETTLED,
    RequestState.CANCELLED,  # booked once, then cancelled: served, but no minutes and never busy
)


@dataclass(frozen=True)
class Pool:
    world: World
    booked_id: int  # a booking at SOON, used as a probe that must not clash with itself


def _fill(world: World, engine_uow: MakeUow) -> Pool:
    rng = random.Random(1616)
    with engine_uow() as uow:
        connection = uow.session.connection()
        people = [
            {
                "district_id": world.district_id,
                "name": f"P{n}",
                "municipality": "Soltau",
                "latitude": SOLTAU[0] + rng.randint(-2, 2) * 0.02,
                "longitude": SOLTAU[1] + rng.randint(-2, 2) * 0.03,
                "modes": rng.choice(MODE_SETS),
                "gender": rng.choice((Gender.FEMALE.value, Gender.MALE.value, None)),
                "active": rng.random() > 0.05,
                "created_at": NOW,
            }
            for n in range(300)
        ]
        connection.execute(insert(Interpreter), people)
        ids = list(
            uow.session.exec(
                select(Interpreter.id)
                .where(Interpreter.district_id == world.district_id)
                .order_by(col(Interpreter.id))
            )
        )
        spoken = [
            {"interpreter_id": iid, "language": tag}
            for iid in ids
            for tag in {rng.choice(("ar", "ar", "uk", "fa")), rng.choice(("ar", "ru"))}
        ]
        connection.execute(insert(InterpreterLanguage), spoken)
        # One in ten never served; the others on whole hours from October to mid-April (about two
        # sessions each in March), with starts just either side of March's borders in Berlin.
        served = [iid for n, iid in enumerate(ids) if n % 10]
        first = datetime(2025, 10, 1, tzinfo=UTC)
        rows = []
        for n in range(4000):
            iid = rng.choice(served)
            if n % 50 == 0:
                starts = datetime(2026, 2, 28, 23, 0, tzinfo=UTC) + timedelta(hours=rng.choice((-1, 0, 1)))
            elif n % 50 == 1:
                starts = datetime(2026, 3, 31, 22, 0, tzinfo=UTC) + timedelta(hours=rng.choice((-1, 0, 1)))
            else:
                starts = first + timedelta(hours=rng.randrange(24 * 195))
            booked = starts - timedelta(days=rng.randint(1, 30))
            rows.append(
                {
                    "district_id": world.district_id,
                    "school_id": world.school_id,
                    "language": "ar",
                    "mode": rng.choice(("in_person", "phone", "video", "written")),
                    "topic": "parent_talk",
                    "starts_at": starts,
                    "duration_minutes": rng.choice((60, 120)),
                    "place": "Schule",
                    "place_latitude": SOLTAU[0],
                    "place_longitude": SOLTAU[1],
                    "state": rng.choice(STATES).value,
                    "interpreter_id": iid,
                    # Bookings made on the same morning tie on "last served"; the id decides.
                    "booked_at": booked.replace(hour=7, minute=0),
                    "created_at": booked,
                    "updated_at": booked,
                }
            )
        # Requests nobody took: they make nobody busy and nobody served.
        rows += [
            {**rows[n], "state": RequestState.UNFILLED.value, "interpreter_id": None, "booked_at": None}
            for n in range(0, 400, 4)
        ]
        connection.execute(insert(Request), rows)
        # The probe booking's interpreter: could take it in person, with no other booking near it.
        near = {
            r["interpreter_id"]
            for r in rows
            if abs(cast(datetime, r["starts_at"]) - SOON) < timedelta(hours=12)
        }
        holder = next(
            iid
            for iid, person in zip(ids, people, strict=True)
            if person["active"]
            and "in_person" in str(person["modes"])
            and any(x == {"interpreter_id": iid, "language": "ar"} for x in spoken)
            and iid not in near
        )
        absences = []
        for iid in rng.sample([i for i in ids if i != holder], 30):
            starts = SOON - timedelta(days=rng.randint(0, 3), hours=rng.randint(0, 5))
            absences.append(
                {
                    "interpreter_id": iid,
                    "starts_at": starts,
                    "ends_at": starts + timedelta(days=2),
                    "created_at": NOW,
                }
            )
        connection.execute(insert(Absence), absences)
        own = Request(
            district_id=world.district_id,
            school_id=world.school_id,
            language="ar",
            mode=Mode.IN_PERSON.value,
            topic="parent_talk",
            starts_at=SOON,
            duration_minutes=60,
            place="Schule",
            place_latitude=SOLTAU[0],
            place_longitude=SOLTAU[1],
            state=RequestState.BOOKED.value,
            interpreter_id=holder,
            booked_at=NOW,
            created_at=NOW,
            updated_at=NOW,
        )
        uow.session.add(own)
        uow.commit()
        assert own.id is not None
        return Pool(world, own.id)


@pytest.fixture
def pool(uow: MakeUow) -> Pool:
    return _fill(build_world(uow), uow)


def _month(moment: datetime) -> tuple[datetime, datetime]:
    local = moment.astimezone(BERLIN)
    first = local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return first.astimezone(UTC), (first + timedelta(days=32)).replace(day=1).astimezone(UTC)


@dataclass(frozen=True)
class Snapshot:
    """Everything the rule looks at, read once."""

    everyone: list[Interpreter]
    spoken: set[tuple[int, str]]
    bookings: dict[int, list[Request]]
    absences: dict[int, list[Absence]]


def snapshot(session: Session, district_id: int) -> Snapshot:
    bookings: dict[int, list[Request]] = defaultdict(list)
    for booking in session.exec(select(Request)):
        if booking.interpreter_id is not None:
            bookings[booking.interpreter_id].append(booking)
    absences: dict[int, list[Absence]] = defaultdict(list)
    for absence in session.exec(select(Absence)):
        absences[absence.interpreter_id].append(absence)
    return Snapshot(
        list(session.exec(select(Interpreter).where(Interpreter.district_id == district_id))),
        {(x.interpreter_id, x.language) for x in session.exec(select(InterpreterLanguage))},
        bookings,
        absences,
    )


def reference(
    world: Snapshot, request: Request, policy: Policy, exclude: set[int], mode: Mode
) -> list[Candidate]:
    """The rule, plainly: everyone looked at, every key worked out, one sort."""
    start = request.starts_at
    end = start + timedelta(minutes=request.duration_minutes)
    month_start, month_end = _month(start)
    buffer = policy.travel_buffer
    found = []
    for person in world.everyone:
        iid = person.id
        assert iid is not None
        if (
            not person.active
            or iid in exclude
            or (iid, request.language) not in world.spoken
            or mode not in parse_modes(person.modes)
            or (request.gender_preference is not None and person.gender != request.gender_preference)
            or any(a.starts_at < end and a.ends_at > start for a in world.absences[iid])
        ):
            continue
        own = world.bookings[iid]
        clash = False
        for other in own:
            if mode == Mode.WRITTEN or other.mode == Mode.WRITTEN or other.id == request.id:
                continue
            if other.state not in BUSY_STATES:
                continue
            pad = buffer if Mode.IN_PERSON in (mode, other.mode) else timedelta(0)
            other_end = other.starts_at + timedelta(minutes=other.duration_minutes)
            clash = clash or (other.starts_at < end + pad and other_end + pad > start)
        if clash:
            continue
        distance = distance_m(
            person.latitude, person.longitude, request.place_latitude, request.place_longitude
        )
        cost = estimate(mode, request.duration_minutes, distance, policy)
        minutes = sum(
            b.duration_minutes
            for b in own
            if b.state in BUSY_STATES and month_start <= b.starts_at < month_end
        )
        served = [b.booked_at for b in own if b.booked_at is not None]
        found.append(
            Candidate(
                iid, distance, cost.travel_cents, cost.total_cents, minutes, max(served) if served else None
            )
        )
    never = datetime.min.replace(tzinfo=UTC)
    return sorted(
        found,
        key=lambda c: (c.travel_cents, c.minutes_this_month, c.last_served_at or never, c.interpreter_id),
    )


def _probe(pool: Pool, mode: Mode, *, starts_at: datetime = SOON, gender: Gender | None = None) -> Request:
    return Request(
        district_id=pool.world.district_id,
        school_id=pool.world.school_id,
        language="ar",
        mode=mode.value,
        topic="parent_talk",
        starts_at=starts_at,
        duration_minutes=60,
        place="Schule",
        place_latitude=SOLTAU[0] + 0.01,
        place_longitude=SOLTAU[1] + 0.015,
        gender_preference=gender.value if gender else None,
        state=RequestState.REQUESTED.value,
        created_at=NOW,
        updated_at=NOW,
    )


def _tie_broken_by_last_served(ranked: list[Candidate], upto: int) -> bool:
    """Whether two neighbours among the first `upto` tie on travel and minutes and differ in service."""
    return any(
        (a.travel_cents, a.minutes_this_month) == (b.travel_cents, b.minutes_this_month)
        and a.last_served_at != b.last_served_at
        for a, b in pairwise(ranked[:upto])
    )


def test_each_wave_is_the_head_of_the_plainly_ranked_list(pool: Pool) -> None:
    with pool.world.make_uow() as uow:
        session = uow.session
        policy = load_policy(session, pool.world.district_id)
        booked = session.get(Request, pool.booked_id)
        assert booked is not None
        march_end = datetime(2026, 3, 31, 21, 30, tzinfo=UTC)  # the month's last half hour in Berlin
        probes = [
            (_probe(pool, Mode.IN_PERSON), Mode.IN_PERSON),
            (_probe(pool, Mode.VIDEO), Mode.VIDEO),
            (_probe(pool, Mode.PHONE, gender=Gender.FEMALE), Mode.PHONE),
            (_probe(pool, Mode.WRITTEN), Mode.WRITTEN),
            (_probe(pool, Mode.IN_PERSON, starts_at=march_end), Mode.IN_PERSON),
            (_probe(pool, Mode.PHONE), Mode.VIDEO),  # what another mode would give
            (booked, Mode.IN_PERSON),  # a saved booking does not clash with itself
        ]
        ties = 0
        world = snapshot(session, pool.world.district_id)
        for request, mode in probes:
            plain = reference(world, request, policy, set(), mode)
            assert len(plain) > 25, (mode, len(plain))
            ties += _tie_broken_by_last_served(plain, 6)
            excluded = {c.interpreter_id for c in plain[:4:2]}  # asked already: the 1st and 3rd
            skipping = reference(world, request, policy, excluded, mode)
            for limit in (1, 2, 3, 5, 12):
                assert candidates(session, request, policy, mode=mode, limit=limit) == plain[:limit]
                assert (
                    candidates(session, request, policy, excluded, mode=mode, limit=limit) == skipping[:limit]
                )
            assert candidates(session, request, policy, mode=mode) == plain
            if mode == Mode(request.mode):
                assert eligible_count(session, request, policy) == len(plain)
        # The data makes the later keys matter, else an order that ignores them would pass.
        assert ties >= 3
        assert booked.interpreter_id in {
            c.interpreter_id for c in reference(world, booked, policy, set(), Mode.IN_PERSON)
        }


def test_a_wave_of_none_or_of_nobody_is_empty(pool: Pool) -> None:
    with pool.world.make_uow() as uow:
        policy = load_policy(uow.session, pool.world.district_id)
        request = _probe(pool, Mode.VIDEO)
        assert candidates(uow.session, request, policy, limit=0) == []
        request.language = "ka"
        assert candidates(uow.session, request, policy, limit=3) == []
        assert eligible_count(uow.session, request, policy) == 0
