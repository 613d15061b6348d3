"""Who is busy at a session's time is worked out in SQL on PostgreSQL, in Python on SQLite; both
must give the rule's answer (services/matching.py: another booking overlaps, padded by the travel
buffer when either job is in person; written work, bookings not (or no longer) held, and the
request itself never clash).

Here the edges are spelled out minute by minute (back to back, the buffer's end, an eight-hour
session reaching into the window's far end), and random bookings around the session are ranked
as the plain rule ranks them (tests/test_matching_at_size.reference), on SQLite and PostgreSQL.
The ranking statement names the language in its text on PostgreSQL: an odd one is quoted, and a
statement run often enough to be prepared still ranks by the rule. In person, a wave is the
nearest whichever way they live.
"""

from dataclasses import replace
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from db.models import Interpreter, Request
from services.matching import candidates, eligible_count
from services.policy import load_policy
from services.vocabulary import Mode, RequestState
from tests.builders import SOON, World, build_world
from tests.test_matching_at_size import MakeUow, reference, snapshot
from tests.test_matching_sql_ranking import T0, T1, T2, T3, _booking, _person, _probe

HOUR = timedelta(hours=1)
MINUTE = timedelta(minutes=1)


@pytest.fixture
def world(uow: MakeUow) -> World:
    return build_world(uow)


def test_the_edges_of_the_session_and_of_the_travel_buffer(world: World) -> None:
    with world.make_uow() as uow:
        session = uow.session
        policy = load_policy(session, world.district_id)
        buffer = policy.travel_buffer
        assert buffer == timedelta(minutes=30)
        names = "free back touching late minute ip_edge ip_in long long_done written cancelled self"
        ids = {name: _person(session, world, name) for name in names.split()}
        end = SOON + HOUR  # the probe's session: SOON for an hour
        # On the phone until the session begins: back to back is free, unless either is in person.
        _booking(session, world, ids["back"], SOON - HOUR, booked_at=T0)
        # On the phone from the session's end: free likewise.
        _booking(session, world, ids["touching"], end, booked_at=T0)
        # On the phone from a minute before the end, and until a minute after the start: busy.
        _booking(session, world, ids["late"], end - MINUTE, booked_at=T0)
        _booking(session, world, ids["minute"], SOON - HOUR + MINUTE, booked_at=T1)
        # In person until exactly the buffer before the start: free; a minute later: busy.
        ip_end = SOON - buffer
        _booking(session, world, ids["ip_edge"], ip_end - HOUR, booked_at=T0, mode=Mode.IN_PERSON)
        _booking(session, world, ids["ip_in"], ip_end - HOUR + MINUTE, booked_at=T0, mode=Mode.IN_PERSON)
        # Eight hours on the phone, ending a minute after the start (the window's far end), and
        # ending at the start.
        eight = 8 * 60
        _booking(session, world, ids["long"], SOON - 8 * HOUR + MINUTE, booked_at=T2, minutes=eight)
        _booking(session, world, ids["long_done"], SOON - 8 * HOUR, booked_at=T2, minutes=eight)
        # Written work at the same time, and a cancelled booking: never busy.
        _booking(session, world, ids["written"], SOON, booked_at=T3, mode=Mode.WRITTEN)
        _booking(session, world, ids["cancelled"], SOON, booked_at=T3, state=RequestState.CANCELLED)
        phone = _probe(world, Mode.PHONE)
        in_person = _probe(world, Mode.IN_PERSON)
        # The request itself, booked: no clash with itself.
        own = _booking(session, world, ids["self"], SOON, booked_at=T3, mode=Mode.PHONE)
        session.flush()
        name = {iid: n for n, iid in ids.items()}

        def free(probe: Request, mode: Mode) -> set[str]:
            return {name[c.interpreter_id] for c in candidates(session, probe, policy, mode=mode)}

        remote_busy = {"late", "minute", "ip_in", "long", "self"}
        assert free(phone, Mode.PHONE) == set(ids) - remote_busy
        assert free(phone, Mode.VIDEO) == set(ids) - remote_busy
        assert eligible_count(session, phone, policy) == len(ids) - len(remote_busy)
        # In person every booking is padded: back to back and the eight hours ending at the start
        # clash now; the in-person booking ending the buffer before the start still does not.
        padded_busy = remote_busy | {"back", "touching", "long_done"}
        assert free(in_person, Mode.IN_PERSON) == set(ids) - padded_busy
        assert eligible_count(session, in_person, policy) == len(ids) - len(padded_busy)
        assert free(phone, Mode.WRITTEN) == set(ids)
        assert "self" in free(own, Mode.PHONE)
        plain = snapshot(session, world.district_id)
        for probe, mode in ((phone, Mode.PHONE), (in_person, Mode.IN_PERSON), (own, Mode.PHONE)):
            assert candidates(session, probe, policy, mode=mode) == reference(
                plain, probe, policy, set(), mode
            )


def test_an_odd_language_is_quoted_and_a_prepared_statement_still_ranks_by_the_rule(world: World) -> None:
    with world.make_uow() as uow:
        session = uow.session
        policy = load_policy(session, world.district_id)
        ids = [_person(session, world, f"P{n}") for n in range(5)]
        quoted = _person(session, world, "Quote", languages=("x'y",))
        # Minutes this month for the first two; served once for the third: the order is 4 5 3 1 2.
        _booking(session, world, ids[0], SOON + 2 * HOUR, booked_at=T1, minutes=120)
        _booking(session, world, ids[1], SOON + 4 * HOUR, booked_at=T0, minutes=60)
        _booking(session, world, ids[2], SOON - 40 * 24 * HOUR, booked_at=T2)
        session.flush()
        request = _probe(world, Mode.PHONE)
        # psycopg prepares a statement on its sixth run on a connection: the same answer each time.
        for _ in range(8):
            wave = candidates(session, request, policy, limit=3)
            assert [c.interpreter_id for c in wave] == [ids[3], ids[4], ids[2]]
        assert [c.minutes_this_month for c in candidates(session, request, policy)] == [0, 0, 0, 60, 120]
        request.language = "x'y"
        assert [c.interpreter_id for c in candidates(session, request, policy, limit=3)] == [quoted]
        request.language = "x'; DROP TABLE request; --"
        assert candidates(session, request, policy, limit=3) == []
        request.language = "ar"
        assert len(candidates(session, request, policy)) == 5


STATES = (RequestState.BOOKED, RequestState.COMPLETED, RequestState.SETTLED, RequestState.CANCELLED)
around = st.lists(
    st.tuples(
        st.integers(0, 5),  # whose
        st.integers(-40, 8),  # start, in quarter hours from the probe's start
        st.sampled_from((15, 30, 60, 90, 480)),  # minutes
        st.sampled_from(STATES),
        st.sampled_from(tuple(Mode)),
        st.integers(0, 2),  # booked on one of three mornings: ties on last served
    ),
    max_size=14,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(booked=around, mode=st.sampled_from(tuple(Mode)), buffer_minutes=st.sampled_from((5, 30, 45)))
def test_bookings_around_the_session_make_busy_as_the_plain_rule(
    world: World,
    booked: list[tuple[int, int, int, RequestState, Mode, int]],
    mode: Mode,
    buffer_minutes: int,
) -> None:
    with world.make_uow() as uow:  # never committed: every example starts from the empty district
        session = uow.session
        policy = load_policy(session, world.district_id)
        policy = replace(policy, travel_buffer=timedelta(minutes=buffer_minutes))
        ids = [_person(session, world, f"P{n}", north=0.02 * (n % 2)) for n in range(6)]
        for whose, quarters, minutes, state, other, morning in booked:
            _booking(
                session,
                world,
                ids[whose],
                SOON + timedelta(minutes=15 * quarters),
                booked_at=T0 + timedelta(days=morning),
                minutes=minutes,
                mode=other,
                state=state,
            )
        session.flush()
        request = _probe(world, mode)
        plain = reference(snapshot(session, world.district_id), request, policy, set(), mode)
        assert candidates(session, request, policy) == plain
        assert candidates(session, request, policy, limit=2) == plain[:2]


def test_in_person_the_nearest_are_found_whichever_way_they_live(world: World) -> None:
    """In person the wave is the nearest (cheapest travel) in any direction: someone due east comes
    after the nearer ones to the north, before the far one."""
    with world.make_uow() as uow:
        session = uow.session
        policy = load_policy(session, world.district_id)
        north = {
            name: _person(session, world, name, north=km / 111.2)
            for name, km in (("A", 1), ("C", 2), ("D", 30))
        }
        east = _person(session, world, "B", north=0.0)
        person = session.get(Interpreter, east)
        assert person is not None
        person.longitude += 5 / 67.5  # about 5 km east at 53° north
        session.flush()
        request = _probe(world, Mode.IN_PERSON)
        ids = {**north, "B": east}
        name = {iid: n for n, iid in ids.items()}
        plain = reference(snapshot(session, world.district_id), request, policy, set(), Mode.IN_PERSON)
        assert [name[c.interpreter_id] for c in plain] == list("ACBD")
        for limit in range(1, 6):
            wave = candidates(session, request, policy, limit=limit)
            assert wave == plain[:limit]
        assert [c.distance_m // 1000 for c in plain] == [1, 2, 4, 29]
