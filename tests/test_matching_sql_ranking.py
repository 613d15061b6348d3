"""Remote work (phone, video, written) is ranked in one SQL statement; it must rank exactly as the rule.

`services.matching.candidates` sorts remote work in the database (the month's minutes, last served,
the id) and reads last served only for those tied with the wave's last on minutes. Here a small
pool with every case spelled out (ties on minutes and on last served, never served, deactivated,
busy with and without the travel buffer, away, the month's borders in Berlin time, a wave larger
than the pool) is ranked by hand, and random pools are compared with the rule written out plainly
(tests/test_matching_at_size.py), on SQLite and PostgreSQL.
"""

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlmodel import Session

from db.models import Absence, Interpreter, InterpreterLanguage, Request
from services.clock import BERLIN
from services.matching import candidates, eligible_count
from services.policy import load_policy
from services.vocabulary import Gender, Mode, RequestState, format_modes
from tests.builders import NOW, SOLTAU, SOON, World, build_world
from tests.test_matching_at_size import MakeUow, reference, snapshot

# Berlin's March 2026 in UTC: it begins at 23:00 on 28 February (CET) and ends at 22:00 on 31 March
# (CEST since the 29th).
MARCH_BEGINS = datetime(2026, 2, 28, 23, 0, tzinfo=UTC)
APRIL_BEGINS = datetime(2026, 3, 31, 22, 0, tzinfo=UTC)
T0 = datetime(2026, 2, 1, 7, 0, tzinfo=UTC)
T1 = datetime(2026, 2, 10, 7, 0, tzinfo=UTC)
T2 = datetime(2026, 2, 20, 7, 0, tzinfo=UTC)
T3 = datetime(2026, 2, 25, 7, 0, tzinfo=UTC)
T4 = datetime(2026, 2, 26, 7, 0, tzinfo=UTC)
REMOTE = (Mode.PHONE, Mode.VIDEO, Mode.WRITTEN)


def _person(
    session: Session,
    world: World,
    name: str,
    *,
    languages: tuple[str, ...] = ("ar",),
    modes: str = "in_person,phone,video,written",
    gender: str | None = None,
    active: bool = True,
    north: float = 0.0,
) -> int:
    person = Interpreter(
        district_id=world.district_id,
        name=name,
        municipality="Soltau",
        latitude=SOLTAU[0] + north,
        longitude=SOLTAU[1],
        modes=modes,
        gender=gender,
        active=active,
        created_at=NOW,
    )
    session.add(person)
    session.flush()
    assert person.id is not None
    for language in languages:
        session.add(InterpreterLanguage(interpreter_id=person.id, language=language))
    return person.id


def _booking(
    session: Session,
    world: World,
    interpreter_id: int | None,
    starts_at: datetime,
    *,
    booked_at: datetime | None,
    minutes: int = 60,
    mode: Mode = Mode.PHONE,
    state: RequestState = RequestState.BOOKED,
) -> Request:
    booking = Request(
        district_id=world.district_id,
        school_id=world.school_id,
        language="ar",
        mode=mode.value,
        topic="parent_talk",
        starts_at=starts_at,
        duration_minutes=minutes,
        place="Schule",
        place_latitude=SOLTAU[0],
        place_longitude=SOLTAU[1],
        state=state.value,
        interpreter_id=interpreter_id,
        booked_at=booked_at,
        created_at=NOW,
        updated_at=NOW,
    )
    session.add(booking)
    session.flush()
    return booking


def _probe(world: World, mode: Mode, *, starts_at: datetime = SOON, gender: str | None = None) -> Request:
    return Request(
        district_id=world.district_id,
        school_id=world.school_id,
        language="ar",
        mode=mode.value,
        topic="parent_talk",
        starts_at=starts_at,
        duration_minutes=60,
        place="Schule",
        place_latitude=SOLTAU[0],
        place_longitude=SOLTAU[1],
        gender_preference=gender,
        state=RequestState.REQUESTED.value,
        created_at=NOW,
        updated_at=NOW,
    )


def _pool(session: Session, world: World) -> dict[str, int]:
    """The spelled-out pool; the ranking of a phone request at SOON is A B C F E G D K O."""
    f = Gender.FEMALE.value
    ids = {name: _person(session, world, name, gender=f if name in "ACG" else None) for name in "ABCDEFG"}
    ids["H"] = _person(session, world, "H", active=False)  # deactivated, never served
    ids |= {name: _person(session, world, name) for name in "IJKL"}
    ids["M"] = _person(session, world, "M", modes="video")
    ids["N"] = _person(session, world, "N", languages=("uk",))
    ids["O"] = _person(session, world, "O")
    # C: served on T1, its booking on the last evening of February in Berlin: no minutes in March.
    _booking(session, world, ids["C"], MARCH_BEGINS - timedelta(minutes=30), booked_at=T1, minutes=120)
    # D: half an hour after midnight on 1 March in Berlin (still February in UTC): 60 minutes.
    _booking(session, world, ids["D"], MARCH_BEGINS + timedelta(minutes=30), booked_at=T1)
    # E: served last (T2), but cancelled: no minutes.
    _booking(session, world, ids["E"], SOON + timedelta(days=2), booked_at=T2, state=RequestState.CANCELLED)
    # F: served on T1 like C, its booking at midnight on 1 April in Berlin: ties with C, the id decides.
    _booking(session, world, ids["F"], APRIL_BEGINS, booked_at=T1)
    # G: 23:30 on 31 March in Berlin (21:30 UTC): 60 minutes, served before D.
    _booking(session, world, ids["G"], APRIL_BEGINS - timedelta(minutes=30), booked_at=T0)
    # I: on the phone during the request; J: in person until a quarter of an hour before it, within
    # the travel buffer; K: on the phone until then, and remote work needs no buffer.
    _booking(session, world, ids["I"], SOON + timedelta(minutes=30), booked_at=T0)
    before = SOON - timedelta(minutes=75)
    _booking(session, world, ids["J"], before, booked_at=T0, mode=Mode.IN_PERSON)
    _booking(session, world, ids["K"], before, booked_at=T3)
    # L: away; O: written work at the same time, which never clashes but counts its minutes.
    session.add(
        Absence(
            interpreter_id=ids["L"],
            starts_at=SOON - timedelta(hours=1),
            ends_at=SOON + timedelta(hours=2),
            created_at=NOW,
        )
    )
    _booking(session, world, ids["O"], SOON, booked_at=T4, mode=Mode.WRITTEN)
    # A request nobody took makes nobody busy and nobody served.
    _booking(session, world, None, SOON, booked_at=None, state=RequestState.UNFILLED)
    session.flush()
    return ids


@pytest.fixture
def world(uow: MakeUow) -> World:
    return build_world(uow)


def test_a_phone_request_is_ranked_by_minutes_then_last_served_then_id(world: World) -> None:
    with world.make_uow() as uow:
        session = uow.session
        ids = _pool(session, world)
        name = {iid: n for n, iid in ids.items()}
        policy = load_policy(session, world.district_id)
        request = _probe(world, Mode.PHONE)
        ranked = candidates(session, request, policy)
        assert [name[c.interpreter_id] for c in ranked] == list("ABCFEGDKO")
        keys = {name[c.interpreter_id]: (c.minutes_this_month, c.last_served_at) for c in ranked}
        assert keys == {
            "A": (0, None),
            "B": (0, None),
            "C": (0, T1),
            "F": (0, T1),
            "E": (0, T2),
            "G": (60, T0),
            "D": (60, T1),
            "K": (60, T3),
            "O": (60, T4),
        }
        assert {c.travel_cents for c in ranked} == {0}
        # Every wave is the head of the whole list, up to more than there are.
        for limit in range(1, 13):
            wave = candidates(session, request, policy, limit=limit)
            assert [name[c.interpreter_id] for c in wave] == list("ABCFEGDKO")[:limit]
        assert eligible_count(session, request, policy) == 9
        # The asked are skipped; the rest keep their order.
        asked = [ids["A"], ids["C"], ids["G"]]
        wave = candidates(session, request, policy, asked, limit=4)
        assert [name[c.interpreter_id] for c in wave] == list("BFED")
        # A gender wish leaves the women, in the same order.
        wish = _probe(world, Mode.PHONE, gender=Gender.FEMALE.value)
        assert [name[c.interpreter_id] for c in candidates(session, wish, policy, limit=5)] == list("ACG")
        # By video M (video only) comes in among the never served; I is still busy.
        video = candidates(session, request, policy, mode=Mode.VIDEO, limit=4)
        assert [name[c.interpreter_id] for c in video] == list("ABMC")
        # Written work has no time: I and J are no longer busy (served on T0 like G: the id decides).
        written = [name[c.interpreter_id] for c in candidates(session, _probe(world, Mode.WRITTEN), policy)]
        assert written == list("ABCFEGIJDKO")


def test_each_wave_equals_the_plain_rule_in_every_remote_mode(world: World) -> None:
    with world.make_uow() as uow:
        session = uow.session
        ids = _pool(session, world)
        policy = load_policy(session, world.district_id)
        mine = _booking(session, world, ids["B"], SOON, booked_at=T4)
        plain_world = snapshot(session, world.district_id)
        # Each remote mode; a gender wish; March's last half hour and April's first (nobody has
        # minutes then); a saved booking, which does not clash with itself.
        probes = [_probe(world, m) for m in REMOTE] + [
            _probe(world, Mode.VIDEO, gender=Gender.FEMALE.value),
            _probe(world, Mode.PHONE, starts_at=APRIL_BEGINS - timedelta(minutes=30)),
            _probe(world, Mode.PHONE, starts_at=APRIL_BEGINS),
            mine,
        ]
        for request in probes:
            mode = Mode(request.mode)
            plain = reference(plain_world, request, policy, set(), mode)
            assert len(plain) >= 3
            for limit in (1, 2, 3, 5, len(plain), len(plain) + 4):
                assert candidates(session, request, policy, limit=limit) == plain[:limit]
            assert candidates(session, request, policy) == plain
            excluded = {plain[0].interpreter_id, plain[2].interpreter_id}
            skipping = reference(plain_world, request, policy, excluded, mode)
            assert candidates(session, request, policy, excluded, limit=3) == skipping[:3]
        assert ids["B"] in {c.interpreter_id for c in candidates(session, mine, policy)}


def test_nobody_eligible_gives_an_empty_wave(world: World) -> None:
    with world.make_uow() as uow:
        session = uow.session
        ids = _pool(session, world)
        policy = load_policy(session, world.district_id)
        request = _probe(world, Mode.PHONE)
        assert candidates(session, request, policy, list(ids.values()), limit=3) == []
        request.language = "uk"  # N speaks it, but N is the only one, and excluded
        assert candidates(session, request, policy, [ids["N"]], limit=3) == []
        assert [c.interpreter_id for c in candidates(session, request, policy, limit=3)] == [ids["N"]]


BASE = datetime(2026, 3, 1, tzinfo=BERLIN).astimezone(UTC) - timedelta(hours=3)
MODE_SETS = [format_modes(frozenset(m for n, m in enumerate(Mode) if bits >> n & 1)) for bits in range(1, 16)]
GENDERS = (Gender.FEMALE.value, Gender.MALE.value, None)
STATES = (RequestState.BOOKED, RequestState.COMPLETED, RequestState.SETTLED, RequestState.CANCELLED)
people = st.lists(
    st.tuples(
        st.sampled_from((True, True, True, False)),  # mostly active
        st.sampled_from(MODE_SETS),
        st.sampled_from(GENDERS),
        st.sampled_from((("ar",), ("uk",), ("ar", "uk"))),
        st.integers(0, 2),  # distance on a coarse grid: ties on travel in person
    ),
    min_size=1,
    max_size=10,
)
bookings = st.lists(
    st.tuples(
        st.integers(0, 9),  # whose (modulo the pool)
        st.integers(-8, 8),  # start in half days around the probe, or at the month's borders
        st.sampled_from((30, 60, 120)),
        st.sampled_from(STATES),
        st.sampled_from(tuple(Mode)),
        st.integers(0, 3),  # booked on one of four mornings: ties on last served
    ),
    max_size=25,
)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    pool=people,
    booked=bookings,
    away=st.lists(st.integers(0, 9), max_size=2),
    mode=st.sampled_from(tuple(Mode)),
    gender=st.sampled_from(GENDERS),
    at_border=st.booleans(),
    asked=st.sets(st.integers(0, 9), max_size=2),
    limit=st.integers(1, 12),
)
def test_any_pool_is_ranked_as_the_plain_rule(
    world: World,
    pool: list[tuple[bool, str, str | None, tuple[str, ...], int]],
    booked: list[tuple[int, int, int, RequestState, Mode, int]],
    away: list[int],
    mode: Mode,
    gender: str | None,
    at_border: bool,
    asked: set[int],
    limit: int,
) -> None:
    start = APRIL_BEGINS - timedelta(minutes=30) if at_border else BASE + timedelta(days=1)
    with world.make_uow() as uow:  # never committed: every example starts from the empty district
        session = uow.session
        ids = [
            _person(
                session,
                world,
                f"P{n}",
                languages=spoken,
                modes=modes,
                gender=sex,
                active=active,
                north=0.02 * d,
            )
            for n, (active, modes, sex, spoken, d) in enumerate(pool)
        ]
        for whose, half_days, minutes, state, other, morning in booked:
            starts = (
                start + timedelta(hours=12 * half_days)
                if half_days % 4
                else MARCH_BEGINS + timedelta(hours=half_days)
            )
            _booking(
                session,
                world,
                ids[whose % len(ids)],
                starts,
                booked_at=T0 + timedelta(days=morning),
                minutes=minutes,
                mode=other,
                state=state,
            )
        for whose in away:
            session.add(
                Absence(
                    interpreter_id=ids[whose % len(ids)],
                    starts_at=start - timedelta(hours=1),
                    ends_at=start + timedelta(minutes=30),
                    created_at=NOW,
                )
            )
        session.flush()
        policy = load_policy(session, world.district_id)
        request = _probe(world, mode, starts_at=start, gender=gender)
        excluded = {ids[n % len(ids)] for n in asked}
        plain = reference(snapshot(session, world.district_id), request, policy, excluded, mode)
        assert candidates(session, request, policy, excluded, limit=limit) == plain[:limit]
        assert candidates(session, request, policy, excluded) == plain
