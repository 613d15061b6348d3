"""Matching's reads on PostgreSQL since session 11: fewer round trips, the month from a narrow index.

In person the eligible (speakers, absences, bookings at the time) are one statement on PostgreSQL,
and the contenders' minutes and last served another when they are few; with many tied on travel
the minutes are read first and last served only for the ties, as before. The nearest are found
from a heap with the distance written out once per place. Each way must give exactly the plain
rule's wave (tests/test_matching_at_size.py). Remote work sums the month's minutes from
ix_request_month_busy (migration 0015), which holds only the bookings that count.
"""

import importlib.util
import random
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, event, text
from sqlmodel import select

from db import models
from db.models import Absence, Request
from services import matching
from services.geo import distance_m
from services.matching import BUSY_STATES, candidates, eligible_count
from services.policy import load_policy
from services.vocabulary import Gender, Mode
from tests.test_matching_at_size import Pool, _probe, pool, reference, snapshot

__all__ = ["pool"]  # the fixture, used by name


def _statements(engine: Engine) -> tuple[list[str], Callable[..., None]]:
    seen: list[str] = []

    def record(_conn: object, _cursor: object, sql: str, *_args: object) -> None:
        seen.append(" ".join(sql.lower().split()))

    event.listen(engine, "before_cursor_execute", record)
    return seen, record


def test_the_nearest_first_walk_pairs_each_id_with_its_distance_m() -> None:
    rng = random.Random(11)
    for _ in range(200):
        place = (rng.uniform(47.0, 55.0), rng.uniform(5.0, 15.0))
        points = [(n, rng.uniform(47.0, 55.0), rng.uniform(5.0, 15.0)) for n in range(50)]
        points += [(50, *place), (51, place[0] + 1e-9, place[1]), (52, -place[0], place[1] - 180.0)]
        assert matching._nearness(place, points) == [
            (distance_m(lat, lon, *place), iid, lat, lon) for iid, lat, lon in points
        ]


def test_in_person_waves_equal_the_plain_rule_with_few_and_with_many_tied_on_travel(pool: Pool) -> None:
    with pool.world.make_uow() as uow:
        session = uow.session
        policy = load_policy(session, pool.world.district_id)
        world = snapshot(session, pool.world.district_id)
        free_travel = replace(policy, km_rate=0)  # everyone ties on travel: the two-read path
        request = _probe(pool, Mode.IN_PERSON)
        women = _probe(pool, Mode.IN_PERSON, gender=Gender.FEMALE)
        for probe, rules in ((request, policy), (request, free_travel), (women, free_travel)):
            plain = reference(world, probe, rules, set(), Mode.IN_PERSON)
            assert len(plain) > matching._READ_TOGETHER
            for limit in (1, 3, 5, 12):
                assert candidates(session, probe, rules, limit=limit) == plain[:limit]
            assert candidates(session, probe, rules) == plain
            assert eligible_count(session, probe, rules) == len(plain)
        # The cheapest few are fewer than the bound (the one-read path), all of them are not.
        few = matching._cheapest(
            matching._free(session, request, policy, Mode.IN_PERSON, ()), request, Mode.IN_PERSON, policy, 3
        )
        assert 3 <= len(few) <= matching._READ_TOGETHER
        assert plain[0].travel_cents == plain[-1].travel_cents == 0


def test_an_absence_and_an_exclusion_leave_the_eligible_read_in_one(pool: Pool) -> None:
    with pool.world.make_uow() as uow:
        session, engine = uow.session, uow.engine
        policy = load_policy(session, pool.world.district_id)
        request = _probe(pool, Mode.IN_PERSON)
        first = candidates(session, request, policy, limit=3)
        away = first[0].interpreter_id
        session.add(
            Absence(
                interpreter_id=away,
                starts_at=request.starts_at,
                ends_at=matching.request_end(request),
                created_at=request.created_at,
            )
        )
        session.flush()
        world = snapshot(session, pool.world.district_id)
        excluded = {first[1].interpreter_id}
        plain = reference(world, request, policy, excluded, Mode.IN_PERSON)
        assert away not in {c.interpreter_id for c in plain}
        seen, record = _statements(engine)
        try:
            wave = candidates(session, request, policy, excluded, limit=3)
        finally:
            event.remove(engine, "before_cursor_execute", record)
        assert wave == plain[:3]
        if engine.dialect.name == "postgresql":
            # The eligible in one statement (absent and busy inside it), then minutes and last served.
            assert len(seen) == 2
            assert " from absence " in seen[0]
            assert " join interpreter_language " in seen[0]
            assert "max(served.booked_at)" in seen[1]
        else:
            assert len(seen) == 5


def test_the_month_is_read_from_the_partial_index_of_bookings_that_count(pool: Pool) -> None:
    with pool.world.make_uow() as uow:
        session, engine = uow.session, uow.engine
        connection = session.connection()
        kept = connection.execute(
            text("SELECT sql FROM sqlite_master WHERE name = 'ix_request_month_busy'")
            if engine.dialect.name == "sqlite"
            else text("SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_request_month_busy'")
        ).scalar_one()
        plain = kept.replace("::text", "").replace("::character varying", "")
        assert "'booked', 'completed', 'settled'" in plain
        assert "interpreter_id is not null" in kept.lower()
        policy = load_policy(session, pool.world.district_id)
        request = _probe(pool, Mode.PHONE)
        world = snapshot(session, pool.world.district_id)
        seen: list[tuple[str, dict[str, Any]]] = []

        def record(_conn: object, _cursor: object, sql: str, params: dict[str, Any], *_args: object) -> None:
            seen.append((sql, params))

        event.listen(engine, "after_cursor_execute", record)
        try:
            wave = candidates(session, request, policy, limit=3)
        finally:
            event.remove(engine, "after_cursor_execute", record)
        assert wave == reference(world, request, policy, set(), Mode.PHONE)[:3]
        if engine.dialect.name != "postgresql":
            return
        ((ranking, values),) = seen  # remote work: one statement
        # The states are in the text, so that a plan for any values may use the partial index.
        assert "month.state IN ('booked', 'completed', 'settled')" in ranking
        # Read as a range (a pool this small would rather probe per speaker): the partial index must
        # be the one that serves it, which it can only be when the query implies its predicate.
        for setting in ("enable_seqscan", "enable_bitmapscan", "enable_nestloop"):
            connection.execute(text(f"SET LOCAL {setting} = off"))
        cursor = connection.connection.cursor()
        cursor.execute("EXPLAIN " + ranking, values)
        plan = "\n".join(row[0] for row in cursor.fetchall())
        assert "Index Only Scan using ix_request_month_busy on request month" in plan, plan


def test_the_partial_index_holds_the_bookings_matching_counts() -> None:
    # The model's and migration 0015's predicate, each written out: both must name the states that
    # count (else PostgreSQL quietly stops using the index; the answers stay right either way).
    expected = (
        "state IN (" + ", ".join(f"'{state}'" for state in BUSY_STATES) + ") AND interpreter_id IS NOT NULL"
    )
    path = (
        Path(__file__).resolve().parent.parent
        / "db"
        / "migrations"
        / "versions"
        / "0015_request_month_busy.py"
    )
    spec = importlib.util.spec_from_file_location("migration_0015", path)
    assert spec is not None
    assert spec.loader is not None
    migration = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(migration)
    assert expected == migration.MONTH_BUSY
    assert expected == models.MONTH_BUSY


def test_last_served_is_the_latest_booking_and_comes_back_aware(pool: Pool) -> None:
    # The aggregate keeps the column's type (db/types.py): no naive values from SQLite to mend.
    with pool.world.make_uow() as uow:
        session = uow.session
        booked = session.get(Request, pool.booked_id)
        assert booked is not None
        assert booked.interpreter_id is not None
        iid = booked.interpreter_id
        latest = max(
            r.booked_at
            for r in session.exec(select(Request).where(Request.interpreter_id == iid))
            if r.booked_at is not None
        )
        assert matching._last_served(session, [iid]) == {iid: latest}
        assert matching._minutes_and_last(session, booked, [iid])[1] == {iid: latest}
        assert latest.tzinfo is UTC
