"""Matching at 5,000 interpreters and 200,000 bookings, most common language, on SQLite and PostgreSQL.

The demo district grows by bulk inserts (bench/big_world.py): `--interpreters` more interpreters
with one to three languages each (the most common one, "ar", spoken by about 27 %), and
`--bookings` booked or settled requests over the two years before and the month after now. Timed:
`services.matching.candidates` for a new phone request in Arabic three days ahead, the call
`fill_offers` makes (a wave), each in its own transaction, committed (as a request arrives: the bot
commits the offers; a rollback would also make psycopg forget its prepared statements); and the same for
an in-person request, which is ranked by travel first (another path). Baseline in the same run: a
plain indexed SELECT over the same tables (the ids of the language's speakers).

Run: `.venv/bin/python -m bench.matching [--interpreters 5000] [--bookings 200000] [--rounds 20]
[--db both|sqlite|postgresql]`
"""

import argparse
import random
import time
from datetime import timedelta

from sqlalchemy import Engine, func, select

from bench.big_world import (
    DISTRICT,
    NOW,
    add_bookings,
    add_interpreters,
    bulk,
    databases,
    figures,
    request_row,
    school_ids,
    table,
)
from bot.heap import set_aside_start_up
from db.models import InterpreterLanguage, Request
from db.uow import UnitOfWork
from services.matching import candidates
from services.policy import load_policy
from services.vocabulary import Mode, RequestState


def new_request(engine: Engine, mode: Mode = Mode.PHONE) -> int:
    starts_at = NOW + timedelta(days=3, hours=1)
    row = request_row(school_ids(engine)[0], starts_at, RequestState.REQUESTED, None, "ar", mode.value)
    row.update(created_at=NOW, updated_at=NOW, booked_at=None, estimate_cents=0, wave=0)
    bulk(engine, Request, [row])
    with engine.connect() as connection:
        return int(connection.execute(select(func.max(table(Request).c.id))).scalar_one())


def matching(engine: Engine, request_id: int) -> tuple[float, int]:
    start = time.perf_counter()
    with UnitOfWork(engine) as uow:
        request = uow.session.get(Request, request_id)
        assert request is not None
        policy = load_policy(uow.session, DISTRICT)
        found = candidates(uow.session, request, policy, limit=policy.offer_wave_size)
        uow.commit()
    return time.perf_counter() - start, len(found)


def plain_select(engine: Engine) -> tuple[float, int]:
    languages = table(InterpreterLanguage)
    start = time.perf_counter()
    with UnitOfWork(engine) as uow:
        ids = uow.session.execute(
            select(languages.c.interpreter_id).where(languages.c.language == "ar")
        ).all()
    return time.perf_counter() - start, len(ids)


def setup(engine: Engine, interpreters: int, bookings: int) -> tuple[int, int, float]:
    """The world, and a new phone and a new in-person request in Arabic; their ids."""
    start = time.perf_counter()
    rng = random.Random(16)  # noqa: S311 - test data
    ids = add_interpreters(engine, interpreters, rng)
    add_bookings(engine, bookings, ids, rng)
    phone, in_person = new_request(engine), new_request(engine, Mode.IN_PERSON)
    if engine.dialect.name == "postgresql":
        vacuum(engine)
    return phone, in_person, time.perf_counter() - start


def vacuum(engine: Engine, tries: int = 5) -> None:
    """What autovacuum does after bulk inserts: statistics, and the visibility map, without which
    every index-only scan of a just-written table goes to the heap too.

    Until every page of the tables read is marked all-visible: a VACUUM right after the COPYs often
    marks none of `request` (a transaction of autovacuum's own may still hold the horizon back),
    and then the planner walks the bookings per speaker with ~1,700 heap fetches, ~2x slower.
    """
    for _ in range(tries):
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.exec_driver_sql("VACUUM ANALYZE")
            behind = connection.exec_driver_sql(
                "SELECT count(*) FROM pg_class WHERE relname IN ('request', 'interpreter',"
                " 'interpreter_language') AND relallvisible < relpages"
            ).scalar_one()
        if not behind:
            return
        time.sleep(1)
    print(
        f"PostgreSQL: {behind} tables not all-visible after {tries} VACUUMs (index-only scans read the heap)"
    )


def main(interpreters: int, bookings: int, rounds: int, which: str) -> None:
    with databases(which) as each:
        for label, engine in each:
            phone, in_person, took = setup(engine, interpreters, bookings)
            print(f"{label}: {interpreters} interpreters and {bookings} bookings inserted in {took:.1f} s")
            base: list[float] = []
            timed: list[float] = []
            near: list[float] = []
            speakers = found = found_near = 0
            matching(engine, phone)  # warm the caches, as a running bot has them
            matching(engine, in_person)
            set_aside_start_up()  # as `python -m bot run` does once started (bot/heap.py)
            for _ in range(rounds):
                seconds, speakers = plain_select(engine)
                base.append(seconds)
                seconds, found = matching(engine, phone)
                timed.append(seconds)
                seconds, found_near = matching(engine, in_person)
                near.append(seconds)
            engine.dispose()
            print(f"{label}: {speakers} speak the language; waves of {found} (in person {found_near})")
            print(figures(f"baseline: indexed SELECT of the speakers ({label})", base))
            print(figures(f"matching, most common language ({label})", timed, base))
            print(figures(f"the same in person ({label})", near, base))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--interpreters", type=int, default=5000)
    parser.add_argument("--bookings", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--db", choices=("both", "sqlite", "postgresql"), default="both")
    arguments = parser.parse_args()
    main(arguments.interpreters, arguments.bookings, arguments.rounds, arguments.db)
