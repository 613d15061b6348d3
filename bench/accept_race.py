"""50 interpreters press Accept on one request at once, on SQLite and PostgreSQL, vs. 50 trivial transactions.

Each round: a request offered to 50 interpreters (bulk-inserted offers), then all 50 Accepts are
handed at the same moment to the executor the Telegram transport handles updates on
(bot/db_thread.py: one thread on SQLite, `HANDLER_THREADS` on PostgreSQL). Each Accept is what the
bot's handler does (bot/conversation/interpreter.accept): one transaction, `accept_offer`, and for
a loser `taken_notice_pending`, then commit (or roll back). The time of each Accept runs from the
moment all 50 are handed over until its transaction is done, so it includes the waiting.

Baseline in the same run and on the same executor: 50 single-row UPDATE transactions at once.
A warm-up round goes first, printed apart and not counted: the first Accepts a process handles
compile the statements it then reuses (SQLAlchemy's cache), a cost paid once per process. The
bench sets its start-up aside from the garbage collector as `python -m bot run` does (bot/heap.py).
Prints the number of bookings each round made (must be 1), median, p95, max and the ratio, and
where the time goes: the winner's and the losers' own work and statements (the rest is queueing).

Run: `.venv/bin/python -m bench.accept_race [--accepts 50] [--rounds 5] [--db both|sqlite|postgresql]`
"""

import argparse
import asyncio
import functools
import random
import statistics
import threading
import time
from collections.abc import Callable
from datetime import timedelta

from sqlalchemy import Engine, event, func, select, text

from bench.big_world import NOW, add_interpreters, bulk, databases, figures, request_row, school_ids, table
from bot.db_thread import database_thread, run_in
from bot.heap import set_aside_start_up
from bot.telegram.app import HANDLER_THREADS
from db.models import Offer, Request
from db.uow import UnitOfWork
from services import offers
from services.errors import AlreadyTaken
from services.vocabulary import Mode, OfferState, RequestState


def offered_request(
    engine: Engine, interpreters: list[int], round_no: int
) -> tuple[int, list[tuple[int, int]]]:
    """A request offered to all `interpreters`; its id and the (offer id, interpreter id) pairs."""
    starts_at = NOW + timedelta(days=3, hours=round_no)
    row = request_row(school_ids(engine)[0], starts_at, RequestState.OFFERED, None, "ar", Mode.PHONE.value)
    row.update(created_at=NOW, updated_at=NOW, booked_at=None, estimate_cents=0)
    bulk(engine, Request, [row])
    with engine.connect() as connection:
        request_id = int(connection.execute(select(func.max(table(Request).c.id))).scalar_one())
    rows = [
        {
            "request_id": request_id,
            "interpreter_id": interpreter_id,
            "wave": 1,
            "rank": rank,
            "state": OfferState.OPEN.value,
            "pay_cents": 3000,
            "distance_m": 1000,
            "created_at": NOW,
            "expires_at": NOW + timedelta(days=1),
        }
        for rank, interpreter_id in enumerate(interpreters, start=1)
    ]
    bulk(engine, Offer, rows)
    with engine.connect() as connection:
        found = connection.execute(
            select(table(Offer).c.id, table(Offer).c.interpreter_id).where(
                table(Offer).c.request_id == request_id
            )
        )
        return request_id, [(int(o), int(i)) for o, i in found]


WARM_UP = 1  # rounds run first and printed apart: the process's first Accepts compile the statements
_seen = threading.local()  # statements of the Accept running on this thread (BEGIN apart)
WORK: list[tuple[bool, float, int]] = []  # each Accept: booked?, seconds of its own work, statements


def count_statements(engine: Engine) -> None:
    def counted(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        if not statement.startswith("BEGIN"):
            _seen.count = getattr(_seen, "count", 0) + 1

    event.listen(engine, "before_cursor_execute", counted)


def accept(engine: Engine, offer_id: int, interpreter_id: int) -> bool:
    """The bot's Accept, its work and statements noted in WORK; True when it booked."""
    _seen.count = 0
    began = time.perf_counter()
    booked = _accept(engine, offer_id, interpreter_id)
    WORK.append((booked, time.perf_counter() - began, _seen.count))
    return booked


def _accept(engine: Engine, offer_id: int, interpreter_id: int) -> bool:
    """The bot's Accept in one transaction; True when it booked."""
    with UnitOfWork(engine) as uow:
        try:
            offers.accept_offer(
                uow.session, offer_id=offer_id, interpreter_id=interpreter_id, actor="bench", now=NOW
            )
        except AlreadyTaken:
            offers.taken_notice_pending(uow.session, offer_id=offer_id, interpreter_id=interpreter_id)
            return False
        uow.commit()
        return True


def trivial(engine: Engine, interpreter_id: int) -> bool:
    with UnitOfWork(engine) as uow:
        uow.session.execute(
            text("UPDATE interpreter SET phone = :p WHERE id = :i"), {"p": "+49", "i": interpreter_id}
        )
        uow.commit()
        return True


async def at_once(engine: Engine, calls: list[Callable[[], bool]]) -> tuple[list[float], int]:
    """All calls handed to the handler executor at once; each one's seconds, and how many returned True."""
    executor = database_thread(engine, workers=HANDLER_THREADS, name="bench")
    start = time.perf_counter()

    async def one(call: Callable[[], bool]) -> tuple[float, bool]:
        result = await run_in(executor, call)
        return time.perf_counter() - start, result

    done = await asyncio.gather(*(one(call) for call in calls))
    if engine.dialect.name != "sqlite":
        executor.shutdown()
    return [seconds for seconds, _ in done], sum(1 for _, ok in done if ok)


def bookings_of(engine: Engine, request_id: int) -> int:
    with engine.connect() as connection:
        count = connection.execute(
            select(func.count())
            .select_from(table(Offer))
            .where(table(Offer).c.request_id == request_id, table(Offer).c.state == OfferState.ACCEPTED.value)
        ).scalar_one()
        state = connection.execute(
            select(table(Request).c.state).where(table(Request).c.id == request_id)
        ).scalar_one()
    assert state == RequestState.BOOKED.value, state
    return int(count)


async def race(engine: Engine, accepts: int, rounds: int) -> tuple[list[float], list[float], list[int]]:
    interpreters = add_interpreters(engine, accepts, random.Random(16))  # noqa: S311 - test data
    count_statements(engine)
    set_aside_start_up()  # what `python -m bot run` does once started (bot/heap.py)
    base: list[float] = []
    races: list[float] = []
    bookings: list[int] = []
    for round_no in range(-WARM_UP, rounds):
        seconds, _ = await at_once(engine, [functools.partial(trivial, engine, i) for i in interpreters])
        base += seconds
        request_id, pairs = offered_request(engine, interpreters, round_no + WARM_UP)
        random.Random(round_no).shuffle(pairs)  # noqa: S311 - test data
        seconds, won = await at_once(engine, [functools.partial(accept, engine, o, i) for o, i in pairs])
        races += seconds
        assert won == 1, f"{won} Accepts booked request {request_id}"
        bookings.append(bookings_of(engine, request_id))
        if round_no < 0:
            print(figures(f"warm-up round, not counted: {len(pairs)} Accepts", seconds))
            base.clear()
            races.clear()
            WORK.clear()
    return base, races, bookings


async def main(accepts: int, rounds: int, which: str) -> None:
    with databases(which) as each:
        for label, engine in each:
            WORK.clear()
            base, races, bookings = await race(engine, accepts, rounds)
            engine.dispose()
            print(f"{label}: bookings per request, the warm-up and {rounds} rounds: {bookings}")
            print(figures(f"baseline: {accepts} one-row UPDATEs at once ({label})", base))
            print(figures(f"{accepts} Accepts on one request at once ({label})", races, base))
            print(where_the_time_goes(label))


def where_the_time_goes(label: str) -> str:
    """The Accepts' own work (the rest of each one's time is queueing or waiting for a lock)."""
    won = [seconds * 1000 for booked, seconds, _ in WORK if booked]
    lost = [seconds * 1000 for booked, seconds, _ in WORK if not booked]
    return (
        f"  {label}: winner's work median {statistics.median(won):.1f} ms, "
        f"{sorted({c for booked, _, c in WORK if booked})} statements; losers' work median "
        f"{statistics.median(lost):.2f} ms, max {max(lost):.1f} ms, "
        f"statements {sorted({c for booked, _, c in WORK if not booked})}"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accepts", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--db", choices=("both", "sqlite", "postgresql"), default="both")
    arguments = parser.parse_args()
    asyncio.run(main(arguments.accepts, arguments.rounds, arguments.db))
